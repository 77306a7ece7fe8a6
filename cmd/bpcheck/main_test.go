package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
	"bpcheck/report"
)

// update rewrites the golden files instead of comparing with them:
//
//	go test ./cmd/bpcheck -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// cliResult is what one run of the CLI produced.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the CLI in-process, as main does.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return cliResult{stdout: out.String(), stderr: errb.String(), code: code}
}

// stableCheckArgs pin everything about a check that would otherwise depend
// on the machine: the worker count (and with it the shard count) and the
// memory budget (and with it the number of passes).
var stableCheckArgs = []string{"--workers", "2", "--memory", "1G"}

const stableWorkers, stableBudget = 2, 1 << 30

// goldenCase is a case whose check output is kept in
// testdata/golden/<name>.{txt,jsonl}, with the exit code it must give.
type goldenCase struct {
	name string
	code int
}

var goldenCases = []goldenCase{
	{"tiny", exitClean},
	{"corrupt-mixed", exitProblems},
	{"a-corrupt", exitProblems},
	{"corrupt-missing-alloc", exitProblems},
	{"v111-corrupt-mixed", exitProblems},
	{"v113-corrupt-mixed", exitProblems},
	{"v120-corrupt-mixed", exitProblems},
	{"v128-corrupt-mixed", exitProblems},
	{"v131-corrupt-mixed", exitProblems},
	{"v133-corrupt-mixed", exitProblems},
	{"v135-corrupt-mixed", exitProblems},
	{"v137-corrupt-mixed", exitProblems},
	{"v138-corrupt-mixed", exitProblems},
	{"v139-corrupt-mixed", exitProblems},
}

// runDependent are the parts of a check's output that change from run to
// run or machine to machine; normalise replaces them with placeholders.
var runDependent = []struct {
	re   *regexp.Regexp
	repl string
}{
	// Text summary: "Run: 1 pass(es), 2 shard(s), 2 worker(s), memory budget 1073741824 bytes, 0.004 s".
	{regexp.MustCompile(`\b\d+ worker\(s\)`), "<workers> worker(s)"},
	{regexp.MustCompile(`memory budget \d+ bytes, [0-9.]+ s`), "memory budget <memory_budget> bytes, <seconds> s"},
	// JSON summary (placeholders stay valid JSON).
	{regexp.MustCompile(`"seconds":[-+0-9.eE]+`), `"seconds":"<seconds>"`},
	{regexp.MustCompile(`"memory_budget":\d+`), `"memory_budget":"<memory_budget>"`},
	{regexp.MustCompile(`"workers":\d+`), `"workers":"<workers>"`},
	// A passphrase's key derivation (unlock_seconds, the "Key:" line).
	{regexp.MustCompile(`"unlock_seconds":[-+0-9.eE]+`), `"unlock_seconds":"<seconds>"`},
	{regexp.MustCompile(`derived from the passphrase in [0-9.]+ s`), "derived from the passphrase in <seconds> s"},
}

// normalise replaces the run-dependent parts of output: the paths of the
// decompressed images (which live in a cache directory named by a hash)
// become $IMG0, $IMG1, ..., and the summary's seconds, memory budget and
// worker count become placeholders.
func normalise(out string, imgs []string) string {
	// Longest path first, so that no path is replaced inside another.
	order := make([]int, len(imgs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(imgs[order[a]]) > len(imgs[order[b]]) })
	for _, i := range order {
		name := fmt.Sprintf("$IMG%d", i)
		out = strings.ReplaceAll(out, imgs[i], name)
		if q, err := json.Marshal(imgs[i]); err == nil {
			out = strings.ReplaceAll(out, string(q[1:len(q)-1]), name)
		}
	}
	for _, r := range runDependent {
		out = r.re.ReplaceAllString(out, r.repl)
	}
	// JSON summary: the seconds of each phase (the phase names stay).
	out = phaseSecondsRE.ReplaceAllStringFunc(out, func(obj string) string {
		return jsonNumberValueRE.ReplaceAllString(obj, `$1"<seconds>"`)
	})
	return out
}

var (
	phaseSecondsRE    = regexp.MustCompile(`"phase_seconds":\{[^}]*\}`)
	jsonNumberValueRE = regexp.MustCompile(`("[^"]*":)[-+0-9.eE]+`)
)

// compareGolden compares got with the golden file at path, or rewrites the
// file with -update.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
		return
	}
	wantB, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("golden file %s missing: run go test ./cmd/bpcheck -update", path)
	} else if err != nil {
		t.Fatal(err)
	}
	if want := string(wantB); got != want {
		t.Errorf("output differs from %s (rewrite with go test ./cmd/bpcheck -update if the change is intended):\n%s", path, lineDiff(want, got))
	}
}

// lineDiff describes the first difference of two texts with some context.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "first difference at line %d (want %d lines, got %d):\n", i+1, len(w), len(g))
	for j := max(0, i-2); j < i; j++ {
		fmt.Fprintf(&b, "    %s\n", w[j])
	}
	for j := i; j < min(len(w), i+3); j++ {
		fmt.Fprintf(&b, "  - %s\n", w[j])
	}
	for j := i; j < min(len(g), i+3); j++ {
		fmt.Fprintf(&b, "  + %s\n", g[j])
	}
	return b.String()
}

// TestCheckGolden runs `check` and `check --json` on real cases and
// compares the normalised output with the golden files.
func TestCheckGolden(t *testing.T) {
	casedata.Require(t)
	sawMissingBP, jsonRuns := false, 0
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			imgs := casedata.CaseImages(t, gc.name)
			for _, asJSON := range []bool{false, true} {
				ext := "txt"
				args := append([]string{"check"}, stableCheckArgs...)
				if asJSON {
					ext = "jsonl"
					args = append(args, "--json")
				}
				args = append(args, imgs...)
				t.Run(ext, func(t *testing.T) {
					r := runCLI(t, args...)
					if r.code != gc.code {
						t.Errorf("exit code %d, want %d; stderr:\n%s", r.code, gc.code, r.stderr)
					}
					if r.stderr != "" {
						t.Errorf("unexpected stderr:\n%s", r.stderr)
					}
					if asJSON {
						jsonRuns++
						msgs := checkJSONLines(t, r.stdout, r.code, imgs)
						for _, m := range msgs {
							if m["message_type"] == "finding" && m["code"] == report.PtrToMissingBackpointer {
								sawMissingBP = true
							}
						}
					} else {
						want := fmt.Sprintf("%d worker(s), memory budget %d bytes, ", stableWorkers, stableBudget)
						if !strings.Contains(r.stdout, want) {
							t.Errorf("text summary does not say %q", want)
						}
					}
					compareGolden(t, filepath.Join("testdata", "golden", gc.name+"."+ext), normalise(r.stdout, imgs))
				})
			}
		})
	}
	// (Only when every case ran: -run may select some.)
	if jsonRuns == len(goldenCases) && !sawMissingBP {
		t.Error("no golden case produced a ptr_to_missing_backpointer finding: its fields were not checked")
	}
}

// findingFields are the fields a finding may have, with their JSON kind.
var findingFields = map[string]string{
	"message_type": "string",
	"code":         "string",
	"dev":          "number",
	"bucket":       "number",
	"bp":           "string",
	"btree":        "string",
	"level":        "number",
	"pos":          "string",
	"key_type":     "string",
	"got":          "string",
	"want":         "string",
	"detail":       "string",
}

// posRE is a bpos as bpcheck prints it: inode:offset:snapshot.
var posRE = regexp.MustCompile(`^\d+:\d+:\d+$`)

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// checkJSONLines checks the JSON Lines output of a check: every line is
// one JSON object with a known message_type; findings carry the fields of
// the schema; the one summary comes last and agrees with the findings, the
// exit code and the options given. It returns the decoded lines.
func checkJSONLines(t *testing.T, out string, code int, imgs []string) []map[string]any {
	t.Helper()
	if out == "" || !strings.HasSuffix(out, "\n") {
		t.Fatalf("JSON output empty or not newline-terminated: %q", out)
	}
	var msgs []map[string]any
	byCode := map[string]int{}
	var summary map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %d does not parse: %v\n%s", i+1, err, line)
		}
		if dec.More() {
			t.Fatalf("line %d holds more than one JSON value: %s", i+1, line)
		}
		msgs = append(msgs, m)
		if summary != nil {
			t.Errorf("line %d follows the summary: %s", i+1, line)
		}
		switch mt := m["message_type"]; mt {
		case "finding":
			checkFinding(t, i+1, m)
			if c, ok := m["code"].(string); ok {
				byCode[c]++
			}
		case "error":
			if e, ok := m["error"].(string); !ok || e == "" || len(m) != 2 {
				t.Errorf("line %d: error message needs exactly a non-empty \"error\" string: %s", i+1, line)
			}
		case "summary":
			summary = m
		default:
			t.Errorf("line %d: message_type %v, want finding, error or summary", i+1, mt)
		}
	}
	if summary == nil {
		t.Fatal("no summary line")
	}
	num := func(key string) int64 {
		t.Helper()
		n, ok := summary[key].(json.Number)
		if !ok {
			t.Errorf("summary %s = %v, want a number", key, summary[key])
			return -1
		}
		v, err := n.Int64()
		if err != nil {
			t.Errorf("summary %s = %v, want an integer", key, n)
		}
		return v
	}
	if got := num("exit_code"); got != int64(code) {
		t.Errorf("summary exit_code %d, process exit code %d", got, code)
	}
	nFindings := 0
	for _, n := range byCode {
		nFindings += n
	}
	if got := num("findings"); got != int64(nFindings) {
		t.Errorf("summary findings %d, %d finding lines", got, nFindings)
	}
	if got := num("workers"); got != stableWorkers {
		t.Errorf("summary workers %d, --workers %d", got, stableWorkers)
	}
	if got := num("memory_budget"); got != stableBudget {
		t.Errorf("summary memory_budget %d, --memory 1G = %d", got, stableBudget)
	}
	if got := num("devices"); got != int64(len(imgs)) {
		t.Errorf("summary devices %d, %d images", got, len(imgs))
	}
	if s, ok := summary["seconds"].(json.Number); !ok || strings.HasPrefix(s.String(), "-") {
		t.Errorf("summary seconds %v, want a non-negative number", summary["seconds"])
	}
	bc, _ := summary["by_code"].(map[string]any)
	if len(bc) != len(byCode) {
		t.Errorf("summary by_code %v, finding lines count %v", bc, byCode)
	}
	for c, n := range byCode {
		if got, _ := bc[c].(json.Number); got.String() != fmt.Sprint(n) {
			t.Errorf("summary by_code[%s] = %v, %d finding lines", c, bc[c], n)
		}
	}
	pd, _ := summary["per_device"].([]any)
	if len(pd) != len(imgs) {
		t.Errorf("summary per_device has %d entries, want %d", len(pd), len(imgs))
	}
	for i, d := range pd {
		dm, _ := d.(map[string]any)
		if dm["path"] != imgs[i] {
			t.Errorf("per_device[%d].path = %v, want %s", i, dm["path"], imgs[i])
		}
	}
	return msgs
}

// checkFinding checks one finding line against the schema.
func checkFinding(t *testing.T, line int, m map[string]any) {
	t.Helper()
	for k, v := range m {
		kind, ok := findingFields[k]
		if !ok {
			t.Errorf("line %d: finding has undocumented field %q", line, k)
			continue
		}
		if jsonKind(v) != kind {
			t.Errorf("line %d: finding field %s is a %s, want %s", line, k, jsonKind(v), kind)
		}
		if s, ok := v.(string); ok && s == "" {
			t.Errorf("line %d: finding field %s is empty (empty fields are omitted)", line, k)
		}
	}
	code, _ := m["code"].(string)
	if _, known := report.Advice[code]; !known {
		t.Errorf("line %d: finding code %q is not a known code", line, code)
	}
	has := func(k string) bool { _, ok := m[k]; return ok }
	if has("dev") != has("bucket") {
		t.Errorf("line %d: dev and bucket come together: %v", line, m)
	}
	if has("btree") != has("level") || has("btree") != has("pos") {
		t.Errorf("line %d: btree, level and pos come together: %v", line, m)
	}
	for _, k := range []string{"bp", "pos"} {
		if s, ok := m[k].(string); ok && !posRE.MatchString(s) {
			t.Errorf("line %d: %s %q is not inode:offset:snapshot", line, k, s)
		}
	}
	var required []string
	switch code {
	case report.PtrToMissingBackpointer:
		required = []string{"dev", "bucket", "bp", "btree", "level", "pos", "want", "detail"}
	case report.BackpointerToMissingPtr, report.BackpointerToMissingAlloc:
		required = []string{"dev", "bucket", "bp", "btree", "level", "pos", "got", "detail"}
	case report.AllocKeyDirtySectorsWrong, report.AllocKeyCachedSectorsWrong, report.AllocKeyStripeSectorsWrong, report.AllocKeyDataTypeWrong:
		required = []string{"dev", "bucket", "got", "want", "detail"}
	case report.PtrToMissingAllocKey:
		required = []string{"dev", "bucket", "btree", "level", "pos", "detail"}
	}
	for _, k := range required {
		if !has(k) {
			t.Errorf("line %d: %s finding lacks %q: %v", line, code, k, m)
		}
	}
}

// TestJSONDoc checks that docs/json.md names every field the JSON output
// has (in the golden files) and every finding code bpcheck knows.
func TestJSONDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	mentioned := func(name string) bool { return bytes.Contains(doc, []byte("`"+name+"`")) }
	for code := range report.Advice {
		if !mentioned(code) {
			t.Errorf("docs/json.md does not list finding code %s", code)
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.jsonl"))
	if len(files) == 0 {
		t.Skip("no golden JSON files yet")
	}
	fields := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			collectKeys(m, fields)
		}
	}
	for f := range fields {
		if !mentioned(f) {
			t.Errorf("docs/json.md does not describe field %s", f)
		}
	}
}

// collectKeys adds the keys of m and of the objects nested in it, except
// the keys of by_code maps (finding codes, checked separately).
func collectKeys(m map[string]any, into map[string]bool) {
	for k, v := range m {
		into[k] = true
		if k == "by_code" {
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			collectKeys(v, into)
		case []any:
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					collectKeys(em, into)
				}
			}
		}
	}
}

// TestExitCodes checks the exit code of each class of outcome.
func TestExitCodes(t *testing.T) {
	casedata.Require(t)
	tiny := casedata.CaseImages(t, "tiny")[0]
	small := casedata.CaseImages(t, "small")[0]
	twoDev := casedata.CaseImages(t, "two-dev")
	mixed := casedata.CaseImages(t, "corrupt-mixed")
	dir := t.TempDir()
	zeros := filepath.Join(dir, "zeros.img")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	nonexistent := filepath.Join(dir, "no-such-device.img")
	tinyImg, err := os.ReadFile(tiny)
	if err != nil {
		t.Fatal(err)
	}
	small4k := filepath.Join(dir, "4k.img")
	if err := os.WriteFile(small4k, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.img") // the superblock, not the nodes
	if err := os.WriteFile(cut, tinyImg[:1<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	newer := withVersion(t, tiny, 1<<10|40)
	// corrupt-missing-bp as the kernel leaves it while check_extents_to_backpointers
	// (stable pass 14) is pending with ptr_to_missing_backpointer (147) silent,
	// and as an unfinished upgrade from 1.13 leaves it: the real v1.36.1 fsck
	// -n reports nothing on either and exits 0.
	missingBP := casedata.CaseImages(t, "corrupt-missing-bp")[0]
	silent := withSB(t, missingBP, func(sb []byte) { setExtBits(t, sb, 147, 14) })
	upgrading := withSB(t, missingBP, func(sb []byte) {
		w := binary.LittleEndian.Uint64(sb[144+40:])
		binary.LittleEndian.PutUint64(sb[144+40:], w&^0xffff|1<<10|13)
	})
	encSmall := casedata.CaseImages(t, "enc-small")[0]
	encCorrupt := casedata.CaseImages(t, "enc-corrupt")[0]
	passFile := filepath.Join(casedata.CaseDir(t, "enc-corrupt"), "passphrase.txt")
	wrongPass := filepath.Join(dir, "wrong-passphrase.txt")
	if err := os.WriteFile(wrongPass, []byte("not it\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	check := func(args ...string) []string { return append([]string{"check"}, args...) }
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // a substring stderr must contain
	}{
		{"clean", check(tiny), exitClean, ""},
		{"clean/json", check("--json", tiny), exitClean, ""},
		{"clean/direct", check("--direct", tiny), exitClean, ""},
		{"clean/direct-false", check("--direct=false", tiny), exitClean, ""},
		{"problems/direct", check(append([]string{"--direct=true"}, mixed...)...), exitProblems, ""},
		{"problems", check(mixed...), exitProblems, ""},
		{"problems/json", check(append([]string{"--json"}, mixed...)...), exitProblems, ""},
		{"problems/joined", check(strings.Join(mixed, ":")), exitProblems, ""},

		{"usage/no-args", nil, exitUsage, "Usage: bpcheck COMMAND"},
		{"usage/option-after-device", check(tiny, "--json"), exitUsage, "--json after the devices: options go before them"},
		{"clean/device-after-double-dash", check("--json", "--", tiny), exitClean, ""},
		{"clean/check-help", check("--help"), exitClean, "Usage: bpcheck check"},
		{"usage/help-unknown-command", []string{"help", "nosuch"}, exitUsage, `unknown command "nosuch"`},
		{"usage/list-level", []string{"list", "-l", "300", tiny}, exitUsage, "a btree level is 0 to 255"},
		{"operational/list-unreadable", []string{"list", "-b", "extents", cut}, exitOperational, "past the device end"},
		{"usage/unknown-command", []string{"frobnicate", tiny}, exitUsage, `unknown command "frobnicate"`},
		{"usage/unknown-flag", check("--frobnicate", tiny), exitUsage, "flag provided but not defined: -frobnicate"},
		{"usage/bad-memory", check("--memory", "12X", tiny), exitUsage, "bad memory size"},
		{"usage/zero-memory", check("--memory", "0", tiny), exitUsage, "bad memory size"},
		{"usage/bad-memory-percent", check("--memory", "150%", tiny), exitUsage, "bad memory percentage"},
		{"usage/nan-memory-percent", check("--memory", "NaN%", tiny), exitUsage, "bad memory percentage"},
		{"usage/tiny-memory", check("--memory", "3", tiny), exitUsage, "at least 4K"},
		{"usage/zero-workers", check("--workers", "0", tiny), exitUsage, "--workers must be at least 1"},
		{"usage/bad-direct", check("--direct=sometimes", tiny), exitUsage, "want auto, true or false"},
		{"usage/bad-ionice", check("--ionice", "sometimes", tiny), exitUsage, "want idle, best-effort or none"},
		{"usage/bad-io-before-open", check("--io", "bogus", nonexistent), exitUsage, "want auto, uring, pool or threads"},
		{"usage/directory", check(dir), exitUsage, "is a directory, not a block device or a regular file"},
		{"usage/too-small", check(small4k), exitUsage, "too small for the superblock"},
		{"clean/ionice-idle", check("--ionice", "idle", tiny), exitClean, ""},
		{"usage/no-device", check(), exitUsage, "no device given"},
		{"usage/not-bcachefs", check(zeros), exitUsage, "not a bcachefs"},
		{"usage/incomplete-set", check(twoDev[0]), exitUsage, "incomplete"},
		{"usage/same-device-twice", check(tiny, tiny), exitUsage, "given twice"},
		{"usage/same-device-twice-joined", check(tiny + ":" + tiny), exitUsage, "given twice"},
		{"usage/two-filesystems", check(tiny, small), exitUsage, "belongs to filesystem"},
		{"usage/list-unknown-btree", []string{"list", "-b", "frobnicate", tiny}, exitUsage, `unknown btree "frobnicate"`},
		{"usage/show-super-not-bcachefs", []string{"show-super", zeros}, exitUsage, "not a bcachefs"},
		{"usage/newer-version", check(newer), exitUsage, "has metadata version 1.40, newer than 1.39, the newest bpcheck knows (bcachefs-tools v1.39.2): pass --allow-newer"},
		{"usage/newer-version-list", []string{"list", newer}, exitUsage, "pass --allow-newer"},
		{"usage/newer-version-list-journal", []string{"list-journal", newer}, exitUsage, "pass --allow-newer"},
		{"problems/missing-bp", check(missingBP), exitProblems, ""},
		{"clean/errors-silent", check(silent), exitClean, ""},
		{"clean/upgrade-unfinished", check(upgrading), exitClean, ""},
		{"problems/encrypted", check("--passphrase-file", passFile, encCorrupt), exitProblems, ""},
		{"clean/encrypted", check("--passphrase-file", passFile, encSmall), exitClean, ""},
		{"clean/encrypted-list", []string{"list", "--passphrase-file", passFile, "-b", "backpointers", encSmall}, exitClean, ""},
		{"clean/encrypted-list-journal", []string{"list-journal", "--passphrase-file", passFile, encSmall}, exitClean, ""},
		{"operational/encrypted-no-key", check(encSmall), exitOperational, "is encrypted with a passphrase: give --key-file FILE"},
		{"operational/encrypted-wrong-passphrase", check("--passphrase-file", wrongPass, encSmall), exitOperational, "wrong passphrase for "},
		{"operational/encrypted-list-no-key", []string{"list", encSmall}, exitOperational, "--passphrase-file"},
		{"clean/newer-version-allowed", check("--allow-newer", newer), exitClean, "warning: newer metadata version than bpcheck knows"},
		{"clean/newer-version-list-allowed", []string{"list", "--allow-newer", newer}, exitClean, "read with the rules of 1.39"},

		{"operational/nonexistent", check(nonexistent), exitOperational, "no such file or directory"},
		{"operational/nonexistent-member", check(tiny, nonexistent), exitOperational, "no such file or directory"},
		{"operational/list-nonexistent", []string{"list", nonexistent}, exitOperational, "no such file or directory"},
		{"operational/show-super-nonexistent", []string{"show-super", nonexistent}, exitOperational, "no such file or directory"},
	}
	t.Cleanup(func() { resetIOPriority(t) }) // clean/ionice-idle
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.args...)
			if r.code != tc.code {
				t.Errorf("bpcheck %s: exit code %d, want %d; stderr:\n%s", strings.Join(tc.args, " "), r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.stderr, r.stderr)
			}
			if tc.code >= exitOperational && r.stderr == "" {
				t.Error("an error exit without a message on stderr")
			}
		})
	}
}

// withVersion returns a copy of the image at path whose primary superblock
// says metadata version v (checksum resealed).
func withVersion(t *testing.T, path string, v uint16) string {
	t.Helper()
	return withSB(t, path, func(sb []byte) { binary.LittleEndian.PutUint16(sb[16:], v) })
}

// withSB returns a copy of the image at path whose primary superblock
// edit changed (checksum resealed).
func withSB(t *testing.T, path string, edit func(sb []byte)) string {
	t.Helper()
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sb := img[4096:]
	edit(sb)
	if err := btreeio.SealSuperblock(sb); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "edited.img")
	if err := os.WriteFile(out, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// setExtBits sets error id errID in the ext field's errors_silent and
// stable recovery pass pass in its recovery_passes_required, as the
// kernel leaves them while passes are pending.
func setExtBits(t *testing.T, sb []byte, errID, pass int) {
	t.Helper()
	le := binary.LittleEndian
	for off := 752; off+8 <= 752+8*int(le.Uint32(sb[124:])); {
		n := 8 * int(le.Uint32(sb[off:]))
		if le.Uint32(sb[off+4:]) == btreeio.FieldExt {
			w := off + 8 + 16 + 8*(errID/64)
			le.PutUint64(sb[w:], le.Uint64(sb[w:])|1<<(errID%64))
			w = off + 8 + 8*(pass/64)
			le.PutUint64(sb[w:], le.Uint64(sb[w:])|1<<(pass%64))
			return
		}
		if n == 0 {
			break
		}
		off += n
	}
	t.Fatal("no ext field")
}

// TestHelp checks that help exits 0 and documents the exit codes.
func TestHelp(t *testing.T) {
	codeLines := []string{"0   no problems found", "4   problems found", "8   operational error", "16  usage error", "32  interrupted"}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"help", "check"}} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			r := runCLI(t, args...)
			if r.code != exitClean {
				t.Errorf("exit code %d, want 0", r.code)
			}
			if r.stderr != "" {
				t.Errorf("help wrote to stderr:\n%s", r.stderr)
			}
			if !strings.Contains(r.stdout, "Exit codes:") {
				t.Errorf("help does not mention the exit codes:\n%s", r.stdout)
			}
			for _, l := range codeLines {
				if !strings.Contains(r.stdout, l) {
					t.Errorf("help lacks exit code line %q", l)
				}
			}
		})
	}
	r := runCLI(t, "help", "check")
	for _, want := range []string{"Usage: bpcheck check", "--json", "--memory", "--workers"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help check does not mention %q", want)
		}
	}
	for _, c := range commands {
		if r := runCLI(t, "help", c.name); r.code != exitClean || r.stdout != c.usage {
			t.Errorf("help %s: exit code %d, output is not its usage", c.name, r.code)
		}
	}
}

// TestReadOnly runs every command on a writable copy of tiny's image (so
// that a stray write would succeed and show) and on the cached image, and
// checks after each command that content, size, mode and mtime are
// unchanged.
func TestReadOnly(t *testing.T) {
	casedata.Require(t)
	cached := casedata.CaseImages(t, "tiny")[0]
	data, err := os.ReadFile(cached)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "dev0.img")
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	data = nil
	// An mtime in the past: a write now would move it, whatever the
	// file system's timestamp granularity.
	past := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(img, past, past); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{img, cached} {
		before := casedata.StateOf(t, path)
		for _, args := range [][]string{
			{"check", path},
			{"check", "--json", path},
			{"check", "--direct", path},
			{"check", "--live", "--max-read-rate", "64M/s", path},
			{"check", "--workers", "1", "--memory", "64K", path},
			{"check", path, path},
			{"list", "-b", "extents", path},
			{"list", "-b", "backpointers", path},
			{"list", "-b", "alloc", path},
			{"list-journal", "-a", path},
			{"show-super", path},
		} {
			r := runCLI(t, args...)
			if after := casedata.StateOf(t, path); after != before {
				t.Fatalf("bpcheck %s (exit %d) changed %s: before %+v, after %+v", strings.Join(args, " "), r.code, path, before, after)
			}
		}
	}
}

// TestListMatchesBcachefs checks `list -b BTREE` on tiny against the
// `bcachefs list` dumps of the real tools, byte for byte.
func TestListMatchesBcachefs(t *testing.T) {
	casedata.Require(t)
	imgs := casedata.CaseImages(t, "tiny")
	for _, btree := range []string{"extents", "backpointers", "alloc"} {
		t.Run(btree, func(t *testing.T) {
			dump, ok := casedata.ListDump(t, "tiny", btree)
			if !ok {
				t.Fatalf("tiny has no %s dump", btree)
			}
			keys := casedata.SplitKeys(dump)
			if len(keys) == 0 {
				t.Fatalf("the %s dump holds no keys", btree)
			}
			want := strings.Join(keys, "\n") + "\n"
			r := runCLI(t, append([]string{"list", "-b", btree}, imgs...)...)
			if r.code != exitClean || r.stderr != "" {
				t.Fatalf("exit code %d, stderr:\n%s", r.code, r.stderr)
			}
			if r.stdout != want {
				t.Errorf("list -b %s differs from bcachefs list:\n%s", btree, lineDiff(want, r.stdout))
			}
		})
	}
}

// TestShowSuper checks the facts show-super prints for tiny.
func TestShowSuper(t *testing.T) {
	casedata.Require(t)
	imgs := casedata.CaseImages(t, "tiny")
	r := runCLI(t, append([]string{"show-super"}, imgs...)...)
	if r.code != exitClean || r.stderr != "" {
		t.Fatalf("exit code %d, stderr:\n%s", r.code, r.stderr)
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Version:\s+1\.36$`),
		regexp.MustCompile(`extent_bp_shift 16\b`),
		regexp.MustCompile(`(?m)^Clean:\s+true$`),
	} {
		if !re.MatchString(r.stdout) {
			t.Errorf("show-super output does not match %s:\n%s", re, r.stdout)
		}
	}
}

// TestGoldenFilesUsed fails on golden files no test writes any more.
func TestGoldenFilesUsed(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*"))
	for _, f := range files {
		base := filepath.Base(f)
		name := strings.TrimSuffix(strings.TrimSuffix(base, ".txt"), ".jsonl")
		if !slices.ContainsFunc(goldenCases, func(c goldenCase) bool { return c.name == name }) {
			t.Errorf("stale golden file %s", f)
		}
	}
}

// TestDemoGenerated runs the README's main command on a small generated
// filesystem: it must find exactly as many problems as the generator's
// manifest lists, with every fault kind that needs no stripes injected.
func TestDemoGenerated(t *testing.T) {
	r := runCLI(t, "demo", "--extents", "3000")
	if r.code != exitProblems {
		t.Fatalf("demo: exit %d, want %d; stderr:\n%s", r.code, exitProblems, r.stderr)
	}
	found := regexp.MustCompile(`(?m)^Summary: (\d+) finding\(s\)`).FindStringSubmatch(r.stdout)
	want := regexp.MustCompile(`(?m)^The generator's manifest expects (\d+) finding\(s\)`).FindStringSubmatch(r.stdout)
	if found == nil || want == nil {
		t.Fatalf("demo output lacks the summary or the manifest counts:\n%s", r.stdout)
	}
	if found[1] != want[1] || found[1] == "0" {
		t.Errorf("demo found %s findings, the manifest expects %s:\n%s", found[1], want[1], r.stdout)
	}
}

// TestDemoCase runs the README's second command: demo --case decompresses
// a real case with the zstd command and checks it (corrupt-mixed: exit 4,
// as many findings as the real fsck's expect.json lists).
func TestDemoCase(t *testing.T) {
	dir := casedata.Require(t)
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("no zstd command: demo --case needs it (apt install zstd)")
	}
	r := runCLI(t, "demo", "--case", "corrupt-mixed", "--testdata", dir)
	if r.code != exitProblems {
		t.Fatalf("demo --case: exit %d, want %d; stderr:\n%s", r.code, exitProblems, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^Summary: [1-9]\d* finding\(s\)`).MatchString(r.stdout) {
		t.Errorf("demo --case found nothing:\n%s", r.stdout)
	}
}

// TestExactFlag: check --exact keeps every backpointer (the summary says
// "matching": "exact") and reports what the default digest matching
// reports, line for line, with the same exit code.
func TestExactFlag(t *testing.T) {
	casedata.Require(t)
	for _, name := range []string{"corrupt-mixed", "a-corrupt", "v139-corrupt-mixed"} {
		t.Run(name, func(t *testing.T) {
			imgs := casedata.CaseImages(t, name)
			var findings [2][]string
			var codes [2]int
			for i, exact := range []bool{false, true} {
				args := append([]string{"check", "--json"}, stableCheckArgs...)
				if exact {
					args = append(args, "--exact")
				}
				r := runCLI(t, append(args, imgs...)...)
				codes[i] = r.code
				for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("--exact %v: %v: %s", exact, err, line)
					}
					switch m["message_type"] {
					case "finding":
						findings[i] = append(findings[i], line)
					case "summary":
						want := map[bool]string{false: "digest", true: "exact"}[exact]
						if m["matching"] != want {
							t.Errorf("--exact %v: matching %v, want %s", exact, m["matching"], want)
						}
						if rc, _ := m["rechecked"].(float64); exact && rc != 0 || !exact && rc == 0 {
							t.Errorf("--exact %v: %v buckets rechecked", exact, m["rechecked"])
						}
					}
				}
			}
			if codes[0] != codes[1] {
				t.Errorf("exit codes %d (digest) and %d (--exact)", codes[0], codes[1])
			}
			if strings.Join(findings[0], "\n") != strings.Join(findings[1], "\n") {
				t.Errorf("findings differ:\ndigest:\n%s\n--exact:\n%s", strings.Join(findings[0], "\n"), strings.Join(findings[1], "\n"))
			}
		})
	}
}

// TestCheckReportsOpenProblems: what opening the filesystem meets that
// hides part of it is an error of the check (exit 8 added), named in the
// report with its device and byte offset: a member shorter than its
// buckets (it checked clean, exit 0).
func TestCheckReportsOpenProblems(t *testing.T) {
	casedata.Require(t)
	dir := t.TempDir()
	tiny := casedata.CaseImages(t, "tiny")[0]
	img, err := os.ReadFile(tiny)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.img")
	cut := int64(len(img)) * 3 / 4
	if err := os.WriteFile(short, img[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, asJSON := range []bool{false, true} {
		args := []string{"check", short}
		if asJSON {
			args = []string{"check", "--json", short}
		}
		r := runCLI(t, args...)
		if r.code&exitOperational == 0 {
			t.Errorf("json %v: exit code %d, want 8 in it; stdout:\n%s", asJSON, r.code, r.stdout)
		}
		for _, w := range []string{short, fmt.Sprintf("byte %d: device", cut), "device too small"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("json %v: report does not name %q:\n%s", asJSON, w, r.stdout)
			}
		}
	}
}

// TestDamagedJournalEntryReplayed: a journal entry of the replayed range
// whose checksum is bad is replayed, as recovery replays it, and said so
// in a note. The judge: the real fsck of v1.36.1 on the unclean case with
// a bucket's dirty_sectors patched in seq 143's alloc key (232 to 200,
// checksum left) logged "invalid journal checksum(s) at seq 143", read
// all 11 journal keys and reported "bucket 0:850 gen 0 data type user has
// wrong dirty_sectors: got 200, should be 232" (bpcheck skipped the
// entry: 2 keys, no such finding).
func TestDamagedJournalEntryReplayed(t *testing.T) {
	casedata.Require(t)
	unclean := casedata.CaseImages(t, "unclean")[0]
	fs, err := btreeio.Open([]string{unclean})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	// The first alloc key of a replayed entry, and where its
	// dirty_sectors lies on the device.
	var at int64 = -1
	var bucket uint64
	var dirty uint32
	for _, js := range fs.Journal.Replay {
		for _, e := range js.Entries {
			if at >= 0 || e.Type != btreeio.JEntryBtreeKeys || e.BtreeID != bp.BtreeAlloc {
				continue
			}
			k, val, err := bp.DecodeUnpacked(e.Payload)
			if err != nil || k.Type != bp.KeyAllocV4 {
				continue
			}
			a, err := bp.DecodeAllocV4(val)
			if err != nil || a.DirtySectors < 16 {
				continue
			}
			at = js.Offset + 56 + int64(e.Offset) + 8 + 8*int64(k.U64s) - int64(len(val)) + 16
			bucket, dirty = k.Pos.Offset, a.DirtySectors
		}
	}
	fs.Close()
	if at < 0 {
		t.Fatal("no alloc key in the replayed journal entries")
	}
	img, err := os.ReadFile(unclean)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(img[at:]); got != dirty {
		t.Fatalf("dirty_sectors at byte %d is %d, want %d", at, got, dirty)
	}
	binary.LittleEndian.PutUint32(img[at:], dirty-32) // the checksum left as it was
	damaged := filepath.Join(t.TempDir(), "damaged-journal.img")
	if err := os.WriteFile(damaged, img, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "check", damaged)
	if r.code&exitOperational != 0 {
		t.Errorf("exit code %d: a bad checksum alone is no error", r.code)
	}
	for _, want := range []string{fmt.Sprintf("alloc_key_dirty_sectors_wrong: bucket 0:%d:", bucket), fmt.Sprintf("got:  %d\n", dirty-32),
		fmt.Sprintf("want: %d\n", dirty), "has a bad checksum; replayed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
}

// failWriter fails every write, as a full disk or a closed pipe does.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestCheckReportWriteError: a report that cannot be written is an
// operational error (exit 8 added, a message on stderr), not a clean
// check nobody saw.
func TestCheckReportWriteError(t *testing.T) {
	casedata.Require(t)
	tiny := casedata.CaseImages(t, "tiny")[0]
	mixed := casedata.CaseImages(t, "corrupt-mixed")
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"check", tiny}, exitOperational},
		{[]string{"check", "--json", tiny}, exitOperational},
		{append([]string{"check", "--json"}, mixed...), exitOperational | exitProblems},
	} {
		var errb bytes.Buffer
		code := run(tc.args, failWriter{}, &errb)
		if code != tc.code || !strings.Contains(errb.String(), "writing the report: no space left on device") {
			t.Errorf("bpcheck %s: exit code %d (want %d), stderr %q", strings.Join(tc.args, " "), code, tc.code, errb.String())
		}
	}
}

// TestTimeoutLiftsReadRate: --timeout under --max-read-rate ends the
// check when it fires: the reads' debts are not slept out (tiny's
// metadata at 1 KiB/s take ~45 s; the check took them all).
func TestTimeoutLiftsReadRate(t *testing.T) {
	casedata.Require(t)
	tiny := casedata.CaseImages(t, "tiny")[0]
	start := time.Now()
	r := runCLI(t, "check", "--max-read-rate", "1K", "--timeout", "200ms", tiny)
	if r.code != exitInterrupted {
		t.Errorf("exit code %d, want %d; stderr %s", r.code, exitInterrupted, r.stderr)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the check ran %v past a 200 ms timeout", d)
	}
}

// TestDeviceNamedLikeOption: after "--" a device path may start with
// '-'; without it, such an argument after the devices is a misplaced
// option (usage error).
func TestDeviceNamedLikeOption(t *testing.T) {
	casedata.Require(t)
	tiny := casedata.CaseImages(t, "tiny")[0]
	dir := t.TempDir()
	if err := os.Symlink(tiny, filepath.Join(dir, "-tiny.img")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if r := runCLI(t, "check", "--", "-tiny.img"); r.code != exitClean {
		t.Errorf("check -- -tiny.img: exit %d, stderr %s", r.code, r.stderr)
	}
	if r := runCLI(t, "check", tiny, "-tiny.img"); r.code != exitUsage {
		t.Errorf("check DEV -tiny.img: exit %d, want %d", r.code, exitUsage)
	}
}
