package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestManPageUpToDate checks that docs/bpcheck.8 is the output of
// `bpcheck man`, and that it documents every command and the exit codes.
func TestManPageUpToDate(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"man"}, &out, &out); code != exitClean {
		t.Fatalf("exit %d", code)
	}
	page := out.String()
	for _, c := range commands {
		if !strings.Contains(page, ".SS "+c.name+"\n") {
			t.Errorf("man page lacks command %s", c.name)
		}
	}
	if !strings.Contains(page, "32  interrupted") {
		t.Error("man page lacks the exit codes")
	}
	committed, err := os.ReadFile("../../docs/bpcheck.8")
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != page {
		t.Error("docs/bpcheck.8 is out of date: run `go run ./cmd/bpcheck man > docs/bpcheck.8`")
	}
}
