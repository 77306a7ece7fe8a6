package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"bpcheck/internal/casedata"
)

// TestUnlockSeconds: a check that derives the key from a passphrase says
// how long that took (unlock_seconds, a "Key:" line), apart from the
// check's own seconds; a check that needs no passphrase says nothing of it.
func TestUnlockSeconds(t *testing.T) {
	casedata.Require(t)
	encSmall := casedata.CaseImages(t, "enc-small")[0]
	pass := filepath.Join(casedata.CaseDir(t, "enc-small"), "passphrase.txt")
	tiny := casedata.CaseImages(t, "tiny")[0]
	summary := func(args ...string) map[string]any {
		t.Helper()
		r := runCLI(t, append([]string{"check", "--json"}, args...)...)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		var s map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil || s["message_type"] != "summary" {
			t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
		}
		return s
	}
	s := summary("--passphrase-file", pass, encSmall)
	if u, ok := s["unlock_seconds"].(float64); !ok || u <= 0 {
		t.Errorf("with a passphrase: unlock_seconds %v, want a positive number", s["unlock_seconds"])
	}
	if _, ok := summary(tiny)["unlock_seconds"]; ok {
		t.Error("without encryption: unlock_seconds is present")
	}
	r := runCLI(t, "check", "--passphrase-file", pass, encSmall)
	if !strings.Contains(r.stdout, "Key: derived from the passphrase in ") {
		t.Errorf("the text summary has no Key line:\n%s", r.stdout)
	}
}
