package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"bpcheck/aio"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/btreeio/btreeiotest"
	"bpcheck/gen"
	"bpcheck/internal/casedata"
	"bpcheck/internal/faultio"
	"bpcheck/pipeline"
	"bpcheck/report"
)

// leafInfo is what the tests need of a leaf node.
type leafInfo struct {
	Offset int64
	Max    bp.Pos
	Keys   int
}

// leafNodes collects the level-0 nodes of a btree (copies: nodes are only
// valid during the visit).
type leafNodes struct{ nodes []leafInfo }

func (l *leafNodes) Node(n *btreeio.Node) error {
	if n.Level == 0 {
		l.nodes = append(l.nodes, leafInfo{Offset: n.Offset, Max: n.Max, Keys: len(n.Keys)})
	}
	return nil
}
func (l *leafNodes) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// openFaulty opens a one-device case through a fault-injecting reader.
func openFaulty(t *testing.T, path string, faults []faultio.Fault) (*btreeio.FS, *faultio.ReaderAt) {
	t.Helper()
	var r *faultio.ReaderAt
	fs := openThrough(t, path, func(f io.ReaderAt) io.ReaderAt {
		r = &faultio.ReaderAt{R: f, Faults: faults}
		return r
	})
	return fs, r
}

// openThrough opens a one-device case, its roots loaded, reading the
// image through the reader wrap makes of the file.
func openThrough(t *testing.T, path string, wrap func(io.ReaderAt) io.ReaderAt) *btreeio.FS {
	t.Helper()
	fs := btreeiotest.OpenThrough(t, path, wrap)
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestUnreadableNodes makes one leaf of each of the extents, backpointers
// and alloc btrees unreadable in turn (EIO, a short read, a flipped bit):
// the report must be the clean run's (no findings) plus exactly one node
// read finding naming the btree, level and key range end of the lost node;
// nothing that only follows from the loss may be reported.
func TestUnreadableNodes(t *testing.T) {
	casedata.Require(t)
	path := casedata.CaseImages(t, "small")[0]
	clean, _ := openFaulty(t, path, nil)
	base, err := pipeline.Run(context.Background(), clean, pipeline.Options{Workers: 2})
	if err != nil || len(base.Findings) != 0 {
		t.Fatalf("clean run: %v, %d findings", err, len(base.Findings))
	}
	// The pointer and backpointer btrees, and the allocator's (lru,
	// freespace, bucket_gens, accounting): a lost leaf is the read error
	// and nothing else.
	for _, btree := range []bp.BtreeID{bp.BtreeExtents, bp.BtreeBackpointers, bp.BtreeAlloc, 10, bp.BtreeFreespace, bp.BtreeBucketGens, 20} {
		l := &leafNodes{}
		if err := clean.Walk(btree, 0, l); err != nil {
			t.Fatal(err)
		}
		if len(l.nodes) == 0 {
			t.Fatalf("btree %s has no leaves", btree)
		}
		victim := l.nodes[len(l.nodes)/2]
		if btree == 20 {
			victim = l.nodes[0] // the check reads the accounting keys before the inum ones only
		}
		cases := []struct {
			name  string
			fault faultio.Fault
			code  string
		}{
			{"eio", faultio.Fault{Kind: faultio.EIO, Off: victim.Offset + 4096, Len: 1}, report.BtreeNodeReadError},
			{"short", faultio.Fault{Kind: faultio.Short, Off: victim.Offset + 8192, Len: 1}, report.BtreeNodeReadError},
		}
		if victim.Keys >= 16 { // byte 200 lies in its keys
			cases = append(cases, struct {
				name  string
				fault faultio.Fault
				code  string
			}{"flip", faultio.Fault{Kind: faultio.Flip, Off: victim.Offset + 200, Bit: 3}, report.BsetBadCsum})
		}
		for _, tc := range cases {
			t.Run(btree.String()+"/"+tc.name, func(t *testing.T) {
				fs, r := openFaulty(t, path, []faultio.Fault{tc.fault})
				for _, budget := range []int64{0, base.EstimatedBytes / 6} {
					res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2, MemoryBudget: budget})
					if err != nil {
						t.Fatal(err)
					}
					if r.Hits.Load() == 0 {
						t.Fatal("fault never hit")
					}
					if len(res.Findings) != 1 {
						for _, f := range res.Findings {
							t.Logf("finding: %s %s level %d %s: %s", f.Code, f.Btree, f.Level, f.Pos, f.Detail)
						}
						t.Fatalf("budget %d: %d findings, want exactly the read error", budget, len(res.Findings))
					}
					f := res.Findings[0]
					if f.Code != tc.code || f.Btree != btree.String() || f.Level != 0 || f.Pos != victim.Max {
						t.Errorf("finding %s btree=%s level=%d pos=%s, want %s btree=%s level=0 pos=%s", f.Code, f.Btree, f.Level, f.Pos, tc.code, btree, victim.Max)
					}
					if len(res.Errors) != 1 {
						t.Errorf("%d errors, want 1: %v", len(res.Errors), res.Errors)
					}
					var be *btreeio.Error
					if !errors.As(res.Errors[0], &be) || be.Dev != path {
						t.Errorf("error does not name the device: %v", res.Errors[0])
					}
					if tc.name == "eio" && !errors.Is(res.Errors[0], syscall.EIO) {
						t.Errorf("EIO not kept in the error chain: %v", res.Errors[0])
					}
				}
			})
		}
	}
}

// TestCancelStopsWorkers cancels a check and checks that it stops with the
// context's error and leaves no goroutine behind.
func TestCancelStopsWorkers(t *testing.T) {
	casedata.Require(t)
	fs, _ := openFaulty(t, casedata.CaseImages(t, "many-extents")[0], nil)
	before := runtime.NumGoroutine()
	for _, delay := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), delay)
		res, err := pipeline.Run(ctx, fs, pipeline.Options{Workers: 8, MemoryBudget: 1 << 20})
		cancel()
		if err == nil && (res == nil || !res.Interrupted) {
			// The run may finish before the deadline on a fast machine.
			continue
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("delay %v: %v", delay, err)
		}
	}
	waitGoroutines(t, before, "left")
}

// TestProgress checks that the progress of a multi-pass check never
// exceeds 100 % while it runs and ends at exactly 100 %.
func TestProgress(t *testing.T) {
	casedata.Require(t)
	fs, _ := openFaulty(t, casedata.CaseImages(t, "many-extents")[0], nil)
	p := &pipeline.Progress{}
	done := make(chan struct{})
	var maxFrac float64
	var samples int
	go func() {
		defer close(done)
		for {
			s := p.Snapshot()
			if f := s.Fraction(); f > maxFrac {
				maxFrac = f
			}
			samples++
			if s.Stage == pipeline.StageDone {
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2, MemoryBudget: 1 << 20, Progress: p})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	s := p.Snapshot()
	if s.Fraction() != 1 || s.Done != s.Total || s.Total == 0 {
		t.Errorf("final progress %v", s)
	}
	if maxFrac > 1 {
		t.Errorf("progress reached %.3f", maxFrac)
	}
	if s.Passes != res.Passes || res.Passes < 2 {
		t.Errorf("progress passes %d, result %d", s.Passes, res.Passes)
	}
	t.Logf("%d samples, final %s", samples, s)
}

// rootPtr returns the first pointer of btree id's root, and the root.
func rootPtr(t *testing.T, fs *btreeio.FS, id bp.BtreeID) (bp.Ptr, *btreeio.Root) {
	t.Helper()
	r := fs.Root(id)
	if r == nil {
		t.Fatalf("no %v btree", id)
	}
	entries, _, err := bp.ValueEntries(r.Key.Type, r.Val)
	if err != nil {
		t.Fatal(err)
	}
	it := bp.NewPtrIter(entries, r.Key.Size, nil)
	d, ok, _ := it.Next()
	if !ok {
		t.Fatalf("%v root has no pointer", id)
	}
	return d.Ptr, r
}

// waitGoroutines waits up to 2 s for the goroutine count to fall back to
// before, and fails the test if it does not.
func waitGoroutines(t *testing.T, before int, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines %s, %d before", n, what, before)
	}
}

// TestTransientRootRead fails one read of the extents root node (a level-1
// root, whose leaves are split among several tasks) with EIO, each time a
// different one: a check either recovers (then it reports what a clean
// run does) or reports the lost node as an error; it never reports
// findings that only follow from leaves it silently skipped.
func TestTransientRootRead(t *testing.T) {
	casedata.Require(t)
	path := casedata.CaseImages(t, "many-extents")[0]
	probe, _ := openFaulty(t, path, nil)
	ptr, r := rootPtr(t, probe, bp.BtreeExtents)
	if r.Level != 1 {
		t.Fatalf("many-extents: extents root at level %d, want 1", r.Level)
	}
	rootOff := int64(ptr.Offset) * btreeio.SectorSize
	clean, err := pipeline.Run(context.Background(), probe, pipeline.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := render(clean)
	for nth := int64(1); nth <= 6; nth++ {
		fs, fr := openFaulty(t, path, []faultio.Fault{{Kind: faultio.EIO, Off: rootOff, Len: 1, Nth: nth}})
		res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2, Prefetch: 8, Async: true, AsyncBackend: aio.Auto})
		if err != nil {
			t.Fatal(err)
		}
		if fr.Hits.Load() == 0 {
			t.Logf("read %d of the root: not made", nth)
			continue
		}
		if len(res.Errors) == 0 {
			if got := render(res); got != want {
				t.Errorf("read %d of the root failed, no error reported, findings differ from a clean run:\n got: %.2000s\nwant: %s", nth, got, want)
			}
			continue
		}
		for _, f := range res.Findings {
			if f.Code != report.BtreeNodeReadError {
				t.Errorf("read %d of the root failed: finding %s beside the read error", nth, f.Code)
				break
			}
		}
		t.Logf("read %d of the root failed: %d errors, %d findings", nth, len(res.Errors), len(res.Findings))
	}
}

// TestNoReadersOutliveRun: the async readers a check pools (pread-pool
// goroutines, io_uring rings) are closed when Run returns.
func TestNoReadersOutliveRun(t *testing.T) {
	casedata.Require(t)
	fs, _ := openFaulty(t, casedata.CaseImages(t, "many-extents")[0], nil)
	before := runtime.NumGoroutine()
	if _, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 4, Prefetch: 8, Async: true, AsyncBackend: aio.PreadPool}); err != nil {
		t.Fatal(err)
	}
	waitGoroutines(t, before, "after Run")
}

// TestLostStripesNode makes the stripes btree of a generated erasure-coded
// filesystem unreadable: the read error is reported, and nothing that
// only follows from the stripes not being counted (data types, parity
// sectors, stripe refcounts of the stripe buckets).
func TestLostStripesNode(t *testing.T) {
	dir := t.TempDir()
	if _, err := gen.Generate(dir, gen.Params{Devices: 3, Replicas: 1, DeviceSize: 256 << 20, BtreeNodeSize: 16 << 10,
		Extents: 2000, ExtentMax: 64, ECStripes: 6, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := 0; i < 3; i++ {
		paths = append(paths, filepath.Join(dir, fmt.Sprintf("dev%d.img", i)))
	}
	fs, err := btreeio.Open(paths)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	ptr, _ := rootPtr(t, fs, bp.BtreeStripes)
	fs.Close()
	// Open the device holding the stripes root through a faulty reader.
	var devs []*btreeio.Device
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		st, _ := f.Stat()
		var ra io.ReaderAt = f
		if i == int(ptr.Dev) {
			ra = &faultio.ReaderAt{R: f, Faults: []faultio.Fault{{Kind: faultio.EIO, Off: int64(ptr.Offset) * btreeio.SectorSize, Len: 1}}}
		}
		dev, err := btreeio.NewDevice(p, ra, st.Size())
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, dev)
	}
	fs, err = btreeio.Assemble(devs)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) == 0 {
		t.Fatal("no read error reported for the stripes root")
	}
	for _, f := range res.Findings {
		if f.Code != report.BtreeNodeReadError {
			t.Errorf("finding beside the lost stripes node: %s dev %d bucket %d btree %s %s", f.Code, f.Dev, f.Bucket, f.Btree, f.Detail)
		}
	}
}

// TestBadKeysInLoadedLeaves gives one leaf of the backpointers btree, and
// in a second run one of the alloc btree, a key whose u64s is 0 (the
// nocsum case has no checksums to notice the edit): the kernel drops the
// rest of that bset, and so does bpcheck. The check must say so, as an
// error naming the device, the node's byte offset and the btree, once
// however many shards and passes read the leaf, with or without
// read-ahead; and the pointers into what was dropped must be reported as
// missing their backpointers or alloc keys.
func TestBadKeysInLoadedLeaves(t *testing.T) {
	casedata.Require(t)
	path := casedata.CaseImages(t, "nocsum")[0]
	clean, _ := openFaulty(t, path, nil)
	base, err := pipeline.Run(context.Background(), clean, pipeline.Options{Workers: 2})
	if err != nil || len(base.Findings) != 0 || len(base.Errors) != 0 {
		t.Fatalf("clean run: %v, %d findings, %d errors", err, len(base.Findings), len(base.Errors))
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		btree bp.BtreeID
		code  string
	}{
		{bp.BtreeBackpointers, report.PtrToMissingBackpointer},
		{bp.BtreeAlloc, report.PtrToMissingAllocKey},
	} {
		t.Run(tc.btree.String(), func(t *testing.T) {
			l := &leafNodes{}
			if err := clean.Walk(tc.btree, 0, l); err != nil {
				t.Fatal(err)
			}
			if len(l.nodes) == 0 {
				t.Fatal("no leaves")
			}
			victim := l.nodes[0]
			// The second key of the first bset: u64s made 0 by flipping
			// each of its set bits.
			k0 := victim.Offset + btreeio.NodeHeaderBytes
			k1 := k0 + 8*int64(raw[k0])
			var faults []faultio.Fault
			for bit := uint8(0); bit < 8; bit++ {
				if raw[k1]>>bit&1 != 0 {
					faults = append(faults, faultio.Fault{Kind: faultio.Flip, Off: k1, Bit: bit})
				}
			}
			fs, r := openFaulty(t, path, faults)
			for _, opt := range []pipeline.Options{
				{Workers: 2},
				{Workers: 2, Shards: 3, Prefetch: pipeline.DefaultPrefetch},
				{Workers: 2, Shards: 3, MemoryBudget: base.EstimatedBytes / 4},
				{Workers: 1, MemoryBudget: base.EstimatedBytes / 4, Prefetch: pipeline.DefaultPrefetch},
			} {
				res, err := pipeline.Run(context.Background(), fs, opt)
				if err != nil {
					t.Fatal(err)
				}
				if r.Hits.Load() == 0 {
					t.Fatal("fault never hit")
				}
				name := fmt.Sprintf("shards %d, budget %d, prefetch %d (%d passes)", opt.Shards, opt.MemoryBudget, opt.Prefetch, res.Passes)
				if len(res.Errors) != 1 {
					t.Fatalf("%s: %d errors, want the bad key's once: %v", name, len(res.Errors), res.Errors)
				}
				msg := res.Errors[0].Error()
				for _, want := range []string{path, fmt.Sprintf("byte %d", victim.Offset), "btree " + tc.btree.String(), fmt.Sprintf("key at byte %d of bset 0 has u64s 0", k1-victim.Offset)} {
					if !strings.Contains(msg, want) {
						t.Errorf("%s: error %q does not say %q", name, msg, want)
					}
				}
				missing := 0
				for _, f := range res.Findings {
					if f.Code == tc.code {
						missing++
					}
				}
				if missing == 0 {
					t.Errorf("%s: no %s finding for the keys dropped (%d findings)", name, tc.code, len(res.Findings))
				}
				t.Logf("%s: %d %s findings", name, missing, tc.code)
			}
		})
	}
}

// TestTransientFirstPassRead: an extents leaf that fails to read once
// (the first read, in the first pass) and reads in the later passes.
// Each pass's records come from the leaves that pass read, and a digest
// pass's recheck must read exactly those: the digest check must report
// what the exact one does, pass for pass. (The producers logged their
// leaves in the first pass only, so a later pass's recheck skipped the
// leaf its digest sums had counted: false findings, true ones lost.)
func TestTransientFirstPassRead(t *testing.T) {
	defer pipeline.SetDigestPlanning(false)() // the passes of an exact check
	dir := t.TempDir()
	p := gen.Params{Devices: 1, DeviceSize: 128 << 20, BtreeNodeSize: 16 << 10, Extents: 20000, ExtentMax: 16, Seed: 51,
		Inject: map[string]int{gen.KindMissingBP: 80}}
	if _, err := gen.Generate(dir, p); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dev0.img")
	fs0 := openThrough(t, path, func(f io.ReaderAt) io.ReaderAt { return f })
	var leaves leafNodes
	if err := fs0.Walk(bp.BtreeExtents, 0, &leaves); err != nil {
		t.Fatal(err)
	}
	nodeBytes := int64(fs0.SB.BtreeNodeSectors()) * btreeio.SectorSize
	for _, li := range []int{len(leaves.nodes) * 3 / 4, len(leaves.nodes) - 5} {
		off := leaves.nodes[li].Offset
		var outs [2]string
		var passes int
		for k, exact := range []bool{true, false} {
			fr := &faultio.ReaderAt{Faults: []faultio.Fault{
				{Kind: faultio.EIO, Off: off, Len: nodeBytes, Nth: 1}, // and its retry
				{Kind: faultio.EIO, Off: off, Len: nodeBytes, Nth: 1}}}
			fs := openThrough(t, path, func(f io.ReaderAt) io.ReaderAt { fr.R = f; return fr })
			res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2, MemoryBudget: 300 << 10, Exact: exact})
			if err != nil {
				t.Fatal(err)
			}
			if fr.Hits.Load() == 0 {
				t.Fatalf("leaf %d: no read failed", li)
			}
			outs[k] = render(res)
			for _, e := range res.Errors {
				outs[k] += "error: " + e.Error() + "\n"
			}
			passes = res.Passes
		}
		if passes < 3 {
			t.Fatalf("%d passes: too few to tell", passes)
		}
		if outs[0] != outs[1] {
			ex, dg := strings.Split(outs[0], "\n"), strings.Split(outs[1], "\n")
			var only []string
			for _, l := range ex {
				if !slices.Contains(dg, l) {
					only = append(only, "exact only:  "+l)
				}
			}
			for _, l := range dg {
				if !slices.Contains(ex, l) {
					only = append(only, "digest only: "+l)
				}
			}
			t.Errorf("leaf %d of %d, %d passes: the digest check's findings differ from the exact one's:\n%s", li, len(leaves.nodes), passes, strings.Join(only, "\n"))
		}
	}
}
