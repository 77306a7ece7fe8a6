package pipeline_test

import (
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/gen"
	"bpcheck/internal/casedata"
	"bpcheck/pipeline"
)

// gateReader holds reads that overlap [off, off+n) until open is closed,
// and closes hit at the first such read.
type gateReader struct {
	r      io.ReaderAt
	off, n int64
	hit    chan struct{}
	open   chan struct{}
	once   sync.Once
}

func (g *gateReader) ReadAt(p []byte, off int64) (int, error) {
	if off < g.off+g.n && g.off < off+int64(len(p)) {
		g.once.Do(func() { close(g.hit) })
		<-g.open
	}
	return g.r.ReadAt(p, off)
}

func openGated(t *testing.T, path string, g *gateReader) *btreeio.FS {
	t.Helper()
	return openThrough(t, path, func(f io.ReaderAt) io.ReaderAt {
		g.r = f
		return g
	})
}

// TestCancelWhileLoading cancels a check while one loader is held on its
// last backpointer leaf, after the producers have had time to finish
// (with 32 shards their records fit the shards' channels): Run must
// either report the interruption or give the findings of an uncancelled
// run. (A shard worker that gave up on the cancel dropped the held
// shard's records, and the pass then completed with thousands of false
// findings and no error.)
func TestCancelWhileLoading(t *testing.T) {
	casedata.Require(t)
	path := casedata.CaseImages(t, "many-extents")[0]
	fs0 := openGated(t, path, &gateReader{hit: make(chan struct{}), open: make(chan struct{})})
	opt := pipeline.Options{Workers: 2, Shards: 32}
	base, err := pipeline.Run(context.Background(), fs0, opt)
	if err != nil {
		t.Fatal(err)
	}
	var leaves leafNodes
	if err := fs0.Walk(bp.BtreeBackpointers, 0, &leaves); err != nil {
		t.Fatal(err)
	}
	last := leaves.nodes[len(leaves.nodes)-1]
	nodeBytes := int64(fs0.SB.BtreeNodeSectors()) * btreeio.SectorSize

	for round := 0; round < 3; round++ {
		g := &gateReader{off: last.Offset, n: nodeBytes, hit: make(chan struct{}), open: make(chan struct{})}
		fs := openGated(t, path, g)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-g.hit
			time.Sleep(300 * time.Millisecond) // the producers finish meanwhile
			cancel()
			time.Sleep(100 * time.Millisecond) // the held shard's worker sees the cancel
			close(g.open)
		}()
		res, err := pipeline.Run(ctx, fs, opt)
		cancel()
		if err != nil || res.Interrupted {
			t.Logf("round %d: interrupted (%v)", round, err)
			continue
		}
		if got, want := render(res), render(base); got != want {
			t.Fatalf("round %d: the cancelled run returned no error and %d findings; the uncancelled one %d", round, len(res.Findings), len(base.Findings))
		}
		t.Logf("round %d: complete, findings as uncancelled", round)
	}
}

// countingGate is a gateReader that also counts the reads of a set of
// offsets that start once counting is on.
type countingGate struct {
	gateReader
	watch    map[int64]bool
	counting atomic.Bool
	after    atomic.Int64
}

func (c *countingGate) ReadAt(p []byte, off int64) (int, error) {
	if c.counting.Load() && c.watch[off] {
		c.after.Add(1)
	}
	return c.gateReader.ReadAt(p, off)
}

// TestCancelStopsLoaders cancels a check while the backpointer loader is
// held on its first leaf, reading one node at a time: the loader must
// stop there, not walk the rest of its range (it did: a Ctrl-C or
// --timeout waited for a whole shard's backpointers to be read).
func TestCancelStopsLoaders(t *testing.T) {
	dir := t.TempDir()
	if _, err := gen.Generate(dir, gen.Params{Devices: 1, DeviceSize: 512 << 20, BtreeNodeSize: 4096, Extents: 20000, ExtentMax: 8, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dev0.img")
	fs0, err := btreeio.Open([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs0.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	var leaves leafNodes
	if err := fs0.Walk(bp.BtreeBackpointers, 0, &leaves); err != nil {
		t.Fatal(err)
	}
	fs0.Close()
	if len(leaves.nodes) < 50 {
		t.Fatalf("%d backpointer leaves: too few to tell", len(leaves.nodes))
	}
	g := &countingGate{gateReader: gateReader{off: leaves.nodes[0].Offset, n: 4096, hit: make(chan struct{}), open: make(chan struct{})}, watch: map[int64]bool{}}
	for _, l := range leaves.nodes {
		g.watch[l.Offset] = true
	}
	fs := openThrough(t, path, func(f io.ReaderAt) io.ReaderAt {
		g.r = f
		return g
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-g.hit
		cancel()
		g.counting.Store(true)
		close(g.open)
	}()
	res, err := pipeline.Run(ctx, fs, pipeline.Options{Workers: 1, Shards: 1})
	if err == nil && !res.Interrupted {
		t.Fatal("the cancelled check neither failed nor says it was interrupted")
	}
	if n := g.after.Load(); n > 1 {
		t.Errorf("%d of %d backpointer leaves read after the cancel", n, len(leaves.nodes))
	}
}

// TestCancelDuringAccountingRead cancels a check once its passes are
// done while its read of the accounting btree (beside the passes) has not
// ended: the result is an interrupted report with every pass's findings
// and the accounting named as not compared (Run returned the cancel's
// error and no report: exit 8, nothing printed).
func TestCancelDuringAccountingRead(t *testing.T) {
	casedata.Require(t)
	paths := casedata.CaseImages(t, "corrupt-missing-bp")
	base := runCase(t, "corrupt-missing-bp", pipeline.Options{Workers: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold := func(ctx context.Context) { // until the cancel (never past 10 s: a failing run must end)
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
	}
	defer pipeline.SetAccountingHooks(hold, cancel)()
	fs := openThrough(t, paths[0], func(f io.ReaderAt) io.ReaderAt { return f })
	res, err := pipeline.Run(ctx, fs, pipeline.Options{Workers: 2})
	if res == nil {
		t.Fatalf("no report: %v", err)
	}
	if !res.Interrupted || err == nil || res.PassesDone != res.Passes {
		t.Fatalf("interrupted %v after %d of %d passes, error %v", res.Interrupted, res.PassesDone, res.Passes, err)
	}
	var want, got []string
	for _, f := range base.Findings {
		if f.Code != "accounting_mismatch" {
			want = append(want, f.Code)
		}
	}
	for _, f := range res.Findings {
		got = append(got, f.Code)
	}
	if len(want) == 0 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("findings %v, want the passes' %v", got, want)
	}
	if !slices.ContainsFunc(res.NotChecked, func(s string) bool { return strings.HasPrefix(s, "accounting: not compared (interrupted") }) {
		t.Errorf("not checked: %q", res.NotChecked)
	}
}
