package confirm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bpcheck/btreeio"
	"bpcheck/confirm"
	"bpcheck/internal/casedata"
	"bpcheck/internal/stateio"
	"bpcheck/pipeline"
	"bpcheck/report"
)

// livePairs are the pairs of states in testdata/live: a filesystem kept
// busy by the real bcachefs library (v1.36.1, livewriter: creates,
// appends, overwrites, truncates, deletes, journal flushes), copied at
// two moments while it ran. The faulted ones had two backpointers of
// files the writer never touches deleted beforehand.
var livePairs = []struct {
	name string
	devs int
}{
	{"one-dev-clean", 1}, {"one-dev-faulted", 1}, {"two-dev-clean", 2}, {"two-dev-faulted", 2},
}

// stateImages returns the decompressed images of one state of a pair.
func stateImages(t *testing.T, name string, state, devs int) []string {
	t.Helper()
	var out []string
	for d := range devs {
		out = append(out, casedata.Image(t, filepath.Join("..", "testdata", "live", name, fmt.Sprintf("snap%d-dev%d.img.zst", state, d))))
	}
	return out
}

// openMixed opens a pair through a stateio.Switch: the first n reads of
// all devices together come from state 0, the rest from state 1.
func openMixed(t *testing.T, name string, devs int, n int64) (*btreeio.FS, *stateio.Switch) {
	t.Helper()
	a, b := stateImages(t, name, 0, devs), stateImages(t, name, 1, devs)
	sw := &stateio.Switch{N: n}
	var ds []*btreeio.Device
	for i := range devs {
		fa, err := os.Open(a[i])
		if err != nil {
			t.Fatal(err)
		}
		fb, err := os.Open(b[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fa.Close(); fb.Close() })
		st, err := fa.Stat()
		if err != nil {
			t.Fatal(err)
		}
		d, err := btreeio.NewDevice(a[i], sw.Reader(fa, fb), st.Size())
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	fs, err := btreeio.Assemble(ds)
	if err != nil {
		t.Fatal(err)
	}
	return fs, sw
}

// stateFindings checks one state on its own.
func stateFindings(t *testing.T, name string, state, devs int) []string {
	t.Helper()
	fs, err := btreeio.Open(stateImages(t, name, state, devs))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	res, err := pipeline.Check(context.Background(), fs, pipeline.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("%s state %d: errors %v", name, state, res.Errors)
	}
	return identities(res.Findings)
}

// identities names findings by what they are about, not by the values
// they compare.
func identities(fs []report.Finding) []string {
	var out []string
	for i := range fs {
		f := &fs[i]
		out = append(out, fmt.Sprintf("%s %d:%d bp %s %s l%d %s", f.Code, f.Dev, f.Bucket, f.BP, f.Btree, f.Level, f.Pos))
	}
	return out
}

// TestMixedStatesConfirmed: a check that reads the first N reads from one
// state of a busy filesystem and the rest from a later one (N swept from
// the superblock to past the whole scan) reports, after confirmation,
// exactly the findings of the later state alone: none on the clean pairs,
// the two injected missing backpointers on the faulted ones, with no
// read error left. The mixed view does produce candidates, and every one
// of them that the later state does not hold is dismissed as transient.
func TestMixedStatesConfirmed(t *testing.T) {
	for _, p := range livePairs {
		t.Run(p.name, func(t *testing.T) {
			want := stateFindings(t, p.name, 1, p.devs)
			if strings.Contains(p.name, "faulted") != (len(want) == 2) {
				t.Fatalf("later state alone: %q", want)
			}
			if got := stateFindings(t, p.name, 0, p.devs); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("the injected faults differ between the states: %q and %q", got, want)
			}
			var candidates, transient, runs, rescans int
			var ns []int64
			for n := range int64(48) {
				ns = append(ns, n)
			}
			for _, n := range append(ns, 64, 96, 128, 1<<20) {
				fs, sw := openMixed(t, p.name, p.devs, n)
				fs.SetLive(btreeio.DefaultLiveRetries)
				if err := fs.LoadRoots(); err != nil {
					t.Fatalf("n=%d: %v", n, err)
				}
				res, scans, err := confirm.Scan(context.Background(), fs, pipeline.Options{Workers: 2}, confirm.DefaultRescans)
				if err != nil {
					t.Fatalf("n=%d: %v", n, err)
				}
				rescans += scans - 1
				scanReads := sw.Reads()
				cres, err := confirm.Run(context.Background(), fs, res.Findings, res.Errors, quick)
				if err != nil {
					t.Fatalf("n=%d: %v", n, err)
				}
				runs++
				candidates += len(res.Findings)
				transient += len(cres.Transient)
				if got := identities(cres.Confirmed); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("n=%d (scan %d reads): confirmed %q, want %q; transient %q", n, scanReads, got, want, identities(cres.Transient))
				}
				if len(cres.Errors) > 0 {
					t.Errorf("n=%d: errors after confirmation: %v", n, cres.Errors)
				}
				if len(res.Findings) != len(cres.Confirmed)+len(cres.Transient) {
					t.Errorf("n=%d: %d candidates, %d confirmed + %d transient", n, len(res.Findings), len(cres.Confirmed), len(cres.Transient))
				}
				fs.Close()
			}
			t.Logf("%s: %d mixed runs, %d rescans, %d candidate findings, %d transient", p.name, runs, rescans, candidates, transient)
			if transient == 0 && rescans == 0 {
				t.Errorf("no run of the mixed view produced a finding to dismiss or a scan to redo: the test proves nothing")
			}
		})
	}
}
