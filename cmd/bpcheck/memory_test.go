package main

import "testing"

// TestParseMemory covers sizes with and without units and percentages.
func TestParseMemory(t *testing.T) {
	const total = 16 << 30
	for in, want := range map[string]int64{
		"8G": 8 << 30, "8GB": 8 << 30, "8GiB": 8 << 30, "512M": 512 << 20, "512MiB": 512 << 20,
		"4096": 4096, "4096B": 4096, "1k": 1024, "2T": 2 << 40, "50%": 8 << 30, "12.5%": 2 << 30,
	} {
		got, err := parseMemory(in, total)
		if err != nil || got != want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1G", "abc", "0%", "150%", "G", "1X", "99999999999T"} {
		if v, err := parseMemory(in, total); err == nil {
			t.Errorf("parseMemory(%q) = %d, want an error", in, v)
		}
	}
}
