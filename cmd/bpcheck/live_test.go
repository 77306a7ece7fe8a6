package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bpcheck/internal/casedata"
)

// findingsAndSummary splits a --json report into its finding lines and
// its summary.
func findingsAndSummary(t *testing.T, out string) ([]string, map[string]any) {
	t.Helper()
	var fs []string
	var sum map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		switch m["message_type"] {
		case "finding":
			fs = append(fs, line)
		case "summary":
			sum = m
		}
	}
	return fs, sum
}

// withoutAccounting drops the accounting findings of a plain check: a
// live check does not compare accounting (the counters of a mounted
// filesystem move while it is read; the summary's not_checked says so).
func withoutAccounting(fs []string) []string {
	var out []string
	for _, f := range fs {
		if !strings.Contains(f, `"code":"accounting_mismatch"`) {
			out = append(out, f)
		}
	}
	return out
}

// TestLiveCheck: on a filesystem nobody writes, a live check reports the
// same findings as the plain check (accounting aside: not compared live), with the same exit code, confirmed on
// two re-reads of an idle journal, none transient; its summary, text and
// JSON, says so. A mounted member without --live is still refused
// (mountedDevices needs a mounted block device, which tests cannot make,
// so that branch is the plain one here).
func TestLiveCheck(t *testing.T) {
	casedata.Require(t)
	for _, name := range []string{"corrupt-mixed", "tiny"} {
		imgs := casedata.CaseImages(t, name)
		plain := runCLI(t, append(append([]string{"check", "--json"}, stableCheckArgs...), imgs...)...)
		live := runCLI(t, append(append([]string{"check", "--json", "--live"}, stableCheckArgs...), imgs...)...)
		if plain.code != live.code {
			t.Errorf("%s: exit %d plain, %d live", name, plain.code, live.code)
		}
		pf, _ := findingsAndSummary(t, plain.stdout)
		pf = withoutAccounting(pf)
		lf, ls := findingsAndSummary(t, live.stdout)
		if strings.Join(pf, "\n") != strings.Join(lf, "\n") {
			t.Errorf("%s: live findings differ from plain ones:\n%s\n---\n%s", name, strings.Join(lf, "\n"), strings.Join(pf, "\n"))
		}
		l, ok := ls["live"].(map[string]any)
		if !ok {
			t.Fatalf("%s: summary has no live object: %v", name, ls)
		}
		if l["transient"] != 0.0 || l["node_retries"] != 0.0 || l["rereads"] != 2.0 {
			t.Errorf("%s: live summary %v", name, l)
		}
		if len(pf) > 0 {
			if seqs, _ := l["journal_seqs"].([]any); len(seqs) != 3 || l["idle"] != true {
				t.Errorf("%s: journal seqs %v idle %v; want 3 seqs, idle", name, l["journal_seqs"], l["idle"])
			}
		}
		text := runCLI(t, append(append([]string{"check", "--live"}, stableCheckArgs...), imgs...)...)
		if !strings.Contains(text.stdout, "Live: 0 transient finding(s) dismissed") {
			t.Errorf("%s: text summary lacks the live line:\n%s", name, text.stdout)
		}
	}
}

func TestMaxReadRateFlag(t *testing.T) {
	casedata.Require(t)
	img := casedata.CaseImages(t, "tiny")[0]
	for _, bad := range []string{"fast", "-5M", "10X/s"} {
		if r := runCLI(t, "check", "--max-read-rate", bad, img); r.code != exitUsage || !strings.Contains(r.stderr, "--max-read-rate") {
			t.Errorf("--max-read-rate %s: exit %d, stderr %q", bad, r.code, r.stderr)
		}
	}
	for _, good := range []string{"100M", "100M/s", "1G", "0"} {
		if r := runCLI(t, "check", "--max-read-rate", good, img); r.code != exitClean {
			t.Errorf("--max-read-rate %s: exit %d, stderr %q", good, r.code, r.stderr)
		}
	}
	if v, err := parseRate("50M/s"); err != nil || v != 50<<20 {
		t.Errorf("parseRate(50M/s) = %d, %v", v, err)
	}
}

// TestLiveEncrypted: a live check of an encrypted filesystem reads its
// superblock again after unlocking and keeps the key: the same findings
// and exit code as the plain check.
func TestLiveEncrypted(t *testing.T) {
	casedata.Require(t)
	imgs := casedata.CaseImages(t, "enc-corrupt")
	pass := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pass, casedata.Passphrase(t, "enc-corrupt"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"check", "--json", "--passphrase-file", pass}, stableCheckArgs...)
	plain := runCLI(t, append(args, imgs...)...)
	live := runCLI(t, append(append(args, "--live"), imgs...)...)
	pf, _ := findingsAndSummary(t, plain.stdout)
	pf = withoutAccounting(pf)
	lf, _ := findingsAndSummary(t, live.stdout)
	if plain.code != live.code || len(pf) == 0 || strings.Join(pf, "\n") != strings.Join(lf, "\n") {
		t.Errorf("plain exit %d, %d findings; live exit %d, %d findings\nstderr: %s", plain.code, len(pf), live.code, len(lf), live.stderr)
	}
}
