package confirm_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"bpcheck/btreeio"
	"bpcheck/confirm"
	"bpcheck/internal/casedata"
	"bpcheck/pipeline"
	"bpcheck/report"
)

var quick = confirm.Options{Settle: 20 * time.Millisecond, Poll: 5 * time.Millisecond}

func findingLines(fs []report.Finding) []string {
	var out []string
	for i := range fs {
		f := fs[i]
		out = append(out, fmt.Sprintf("%s %d:%d bp=%v %s bp %s l%d %s got=%s want=%s", f.Code, f.Dev, f.Bucket, f.HasBP, f.BP, f.Btree, f.Level, f.Pos, f.Got, f.Want))
	}
	return out
}

// TestStaticFindingsConfirmed: on a filesystem nobody writes, every
// finding of the real corrupt cases holds on both re-reads, with the same
// values, and the journal is idle: the re-judgement of a bucket from its
// backpointers, its alloc key and the keys found from the roots agrees
// with the full check.
func TestStaticFindingsConfirmed(t *testing.T) {
	for _, name := range []string{"corrupt-missing-bp", "corrupt-missing-alloc", "corrupt-missing-extent", "corrupt-mixed", "unclean"} {
		t.Run(name, func(t *testing.T) {
			fs, res := scanLive(t, name)
			cres, err := confirm.Run(context.Background(), fs, res.Findings, res.Errors, quick)
			if err != nil {
				t.Fatal(err)
			}
			if len(cres.Transient) != 0 {
				t.Errorf("transient on a static filesystem: %q", findingLines(cres.Transient))
			}
			got, want := findingLines(cres.Confirmed), findingLines(res.Findings)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("confirmed:\n%q\nscan:\n%q", got, want)
			}
			if !cres.Idle || len(cres.Seqs) != 3 || cres.Seqs[0] != cres.Seqs[2] {
				t.Errorf("journal seqs %v idle %v; want three equal seqs, idle", cres.Seqs, cres.Idle)
			}
		})
	}
}

// TestCancelled: a confirmation whose context ends returns the context's
// error (the CLI then reports the check as interrupted, without the
// unconfirmed candidates); with no candidate it reads nothing and cannot
// fail.
func TestCancelled(t *testing.T) {
	fs, res := scanLive(t, "corrupt-missing-bp")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := confirm.Run(ctx, fs, res.Findings, res.Errors, quick); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled confirmation: %v", err)
	}
	cres, err := confirm.Run(ctx, fs, nil, nil, quick)
	if err != nil || len(cres.Seqs) != 1 {
		t.Errorf("no candidates: %v, seqs %v", err, cres.Seqs)
	}
}

// scanLive opens a case for a live check and scans it; the case must
// have findings to confirm. The filesystem is closed when the test ends.
func scanLive(t *testing.T, name string) (*btreeio.FS, *pipeline.Result) {
	t.Helper()
	fs, err := btreeio.Open(casedata.CaseImages(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	fs.SetLive(btreeio.DefaultLiveRetries)
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) == 0 {
		t.Fatal("no findings to confirm")
	}
	return fs, res
}
