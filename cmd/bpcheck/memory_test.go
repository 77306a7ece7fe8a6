package main

import (
	"bytes"
	"strings"
	"testing"

	"bpcheck/internal/casedata"
)

// TestParseMemory covers sizes with and without units and percentages.
func TestParseMemory(t *testing.T) {
	const total = 16 << 30
	for in, want := range map[string]int64{
		"8G": 8 << 30, "8GB": 8 << 30, "8GiB": 8 << 30, "512M": 512 << 20, "512MiB": 512 << 20,
		"4096": 4096, "4096B": 4096, "4k": 4096, "2T": 2 << 40, "50%": 8 << 30, "12.5%": 2 << 30,
	} {
		got, err := parseMemory(in, total)
		if err != nil || got != want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1G", "abc", "0%", "150%", "G", "1X", "99999999999T", "1k", "3", "NaN%", "nan%", "0.00000001%"} {
		if v, err := parseMemory(in, total); err == nil {
			t.Errorf("parseMemory(%q) = %d, want an error", in, v)
		}
	}
}

// TestTimeoutPartialReport: --timeout stops the check with a partial
// report naming what was not checked, and exit code 32.
func TestTimeoutPartialReport(t *testing.T) {
	casedata.Require(t)
	var out, errb bytes.Buffer
	args := append([]string{"check", "--timeout", "1ns", "--memory", "1M", "--json"}, casedata.CaseImages(t, "many-extents")...)
	if code := run(args, &out, &errb); code != exitInterrupted {
		t.Fatalf("exit %d, want %d: %s", code, exitInterrupted, errb.String())
	}
	if !strings.Contains(out.String(), `"interrupted":true`) || !strings.Contains(out.String(), `"not_checked":["buckets 0:0 to`) {
		t.Errorf("summary lacks the interruption: %s", out.String())
	}
	if !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("stderr: %s", errb.String())
	}
}

// TestTimeoutPartialReportText: the text report of an interrupted check
// says so, with the passes done (only stderr did).
func TestTimeoutPartialReportText(t *testing.T) {
	casedata.Require(t)
	var out, errb bytes.Buffer
	args := append([]string{"check", "--timeout", "1ns", "--memory", "1M"}, casedata.CaseImages(t, "many-extents")...)
	if code := run(args, &out, &errb); code != exitInterrupted {
		t.Fatalf("exit %d, want %d: %s", code, exitInterrupted, errb.String())
	}
	if !strings.Contains(out.String(), "Interrupted: 0 of ") || !strings.Contains(out.String(), "Not checked: buckets 0:0 to") {
		t.Errorf("the text report does not say it is partial:\n%s", out.String())
	}
}
