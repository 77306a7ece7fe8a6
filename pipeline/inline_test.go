package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
	"bpcheck/report"
	"bpcheck/shard"
)

// checkCase runs a check of a case and renders its findings and errors.
func checkCase(t *testing.T, name string, opt Options) (string, *Result) {
	t.Helper()
	return checkPaths(t, casedata.CaseImages(t, name), opt)
}

// checkPaths runs a check of the filesystem on the given images and
// renders its findings and errors.
func checkPaths(t *testing.T, paths []string, opt Options) (string, *Result) {
	t.Helper()
	fs, err := btreeio.Open(paths)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), fs, opt)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range res.Findings {
		report.WriteText(&b, &res.Findings[i])
	}
	for _, e := range res.Errors {
		b.WriteString("error: " + e.Error() + "\n")
	}
	return b.String(), res
}

// TestInlineApplySameFindings checks the producers' applying of full
// batches to loaded shards themselves (emitter.flushOne): the findings
// are those of handing every batch to the shards' workers, with one and
// several passes and workers, and producers did apply batches (on the
// largest case).
func TestInlineApplySameFindings(t *testing.T) {
	casedata.Require(t)
	defer func() { inlineApply = true }()
	for _, name := range []string{"corrupt-mixed", "a-corrupt-mixed", "many-extents"} {
		inlineApply = false
		want, base := checkCase(t, name, Options{Workers: 2})
		for _, opt := range []Options{
			{Workers: 1},
			{Workers: 2},
			{Workers: 4, Shards: 3},
			{Workers: 2, Prefetch: 8, Async: true},
			{Workers: 3, MemoryBudget: base.EstimatedBytes / 5},
		} {
			inlineApply = true
			before := appliedInline.Load()
			got, res := checkCase(t, name, opt)
			inline := appliedInline.Load() - before
			if got != want {
				t.Errorf("%s, options %+v: findings differ from batches handed to the workers:\n got: %s\nwant: %s", name, opt, got, want)
			}
			// (On the small cases the producers may all be done before
			// a shard is loaded: nothing to apply then.)
			if inline == 0 && name == "many-extents" {
				t.Errorf("%s, options %+v: no batch was applied by a producer (%d pointers, %d shards)", name, opt, res.Stats.Pointers, res.Shards)
			}
			t.Logf("%s, options %+v: %d passes, %d batches applied by producers, %d pointers", name, opt, res.Passes, inline, res.Stats.Pointers)
		}
	}
}

// TestInlineApplyStopsAtCancel: a producer that applies its batches itself
// never blocks on a shard's channel, so it must see a cancel where it
// would have applied one, and leave the shard's lock free.
func TestInlineApplyStopsAtCancel(t *testing.T) {
	casedata.Require(t)
	fs, err := btreeio.Open(casedata.CaseImages(t, "many-extents"))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	c := newChecker(fs, Options{Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	all := ^shard.BucketKey(0)
	sh := shard.New(c.cfg, 0, all)
	e := newEmitter(ctx, c, []*shard.Shard{sh}, []chan []shard.Ref{make(chan []shard.Ref)}, 0, all, 0)
	e.apply = newApplyLocks(1)
	e.apply.loaded[0].Store(true)
	e.bufs[0] = append(getBatch(), shard.Ref{Bucket: shard.MakeBucketKey(0, 1)})
	cancel()
	before := appliedInline.Load()
	if err := e.flushOne(0); !errors.Is(err, context.Canceled) {
		t.Errorf("flush after cancel: %v, want %v", err, context.Canceled)
	}
	if appliedInline.Load() != before {
		t.Errorf("a batch was applied after the cancel")
	}
	if !e.apply.mu[0].TryLock() {
		t.Errorf("the shard's apply lock is left held")
	}
}
