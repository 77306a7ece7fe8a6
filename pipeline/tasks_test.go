package pipeline

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/gen"
)

// TestLeafGroups checks the cut of n leaves among producers: every leaf
// in exactly one group, in order, sizes never growing, at least
// minLeafGroup except the last, the first 1/(2·workers) of them.
func TestLeafGroups(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 16} {
		for _, n := range []int{1, 2, 7, 8, 9, 50, 207, 386, 1656, 100000} {
			ends := leafGroups(n, workers)
			at, prev := 0, n+1
			for i, e := range ends {
				size := e - at
				if size <= 0 || size > prev {
					t.Fatalf("n=%d workers=%d: group %d is %d leaves after %d", n, workers, i, size, prev)
				}
				if size < minLeafGroup && i != len(ends)-1 {
					t.Fatalf("n=%d workers=%d: group %d of %d leaves before the last", n, workers, i, size)
				}
				at, prev = e, size
			}
			if at != n {
				t.Fatalf("n=%d workers=%d: groups end at %d", n, workers, at)
			}
			if want := max(minLeafGroup, (n+2*workers-1)/(2*workers)); ends[0] != min(n, want) {
				t.Errorf("n=%d workers=%d: first group %d, want %d", n, workers, ends[0], min(n, want))
			}
		}
	}
}

// TestTaskQueue runs tasks that add tasks while they run, on several
// producers: every task runs exactly once, and the producers stop once
// the queue is empty and no task runs; a cancelled context wakes
// producers waiting for work.
func TestTaskQueue(t *testing.T) {
	q, stop := newTaskQueue(context.Background(), []task{{level: 3}, {level: 3}})
	defer stop()
	var ran atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				tk, ok := q.next()
				if !ok {
					return
				}
				ran.Add(1)
				if tk.level > 0 { // each task of level L adds two of level L-1
					time.Sleep(time.Millisecond)
					q.add(task{level: tk.level - 1}, task{level: tk.level - 1})
				}
				q.done()
			}
		}()
	}
	wg.Wait()
	if got, want := ran.Load(), int64(2*(1+2+4+8)); got != want {
		t.Errorf("%d tasks ran, want %d", got, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	q, stop = newTaskQueue(ctx, []task{{btree: bp.BtreeExtents}})
	defer stop()
	if _, ok := q.next(); !ok { // runs, never done: others must wait
		t.Fatal("no first task")
	}
	woke := make(chan bool)
	go func() {
		_, ok := q.next()
		woke <- ok
	}()
	select {
	case <-woke:
		t.Fatal("a producer did not wait while a task ran")
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	select {
	case ok := <-woke:
		if ok {
			t.Error("next gave a task after the cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancel did not wake the waiting producer")
	}
}

// TestLeafSharingSameFindings checks a filesystem whose extents root is
// at level 2 (generated with 16 KiB nodes and 200 000 extents), with faults: walks that
// share out the leaves of the level-1 nodes find what walks that keep
// them find, with one and several workers and passes, and leaves were
// shared.
func TestLeafSharingSameFindings(t *testing.T) {
	dir := t.TempDir()
	if _, err := gen.Generate(dir, gen.Params{Devices: 2, Replicas: 2, DeviceSize: 2 << 30, BtreeNodeSize: 16 << 10,
		Extents: 200000, ExtentMax: 16, Seed: 9, Inject: map[string]int{gen.KindMissingBP: 3, gen.KindDanglingBP: 2, gen.KindWrongBP: 2}}); err != nil {
		t.Fatal(err)
	}
	paths := []string{filepath.Join(dir, "dev0.img"), filepath.Join(dir, "dev1.img")}
	fs, err := btreeio.Open(paths)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	if r := fs.Root(bp.BtreeExtents); r == nil || r.Level < 2 {
		t.Fatalf("extents root %+v: want level 2 or more", r)
	}
	fs.Close()
	check := func(opt Options) (string, *Result) { return checkPaths(t, paths, opt) }
	defer func() { shareLeaves = true }()
	shareLeaves = false
	want, base := check(Options{Workers: 1})
	if len(base.Findings) < 7 {
		t.Fatalf("%d findings, want the injected faults'", len(base.Findings))
	}
	shareLeaves = true
	for _, opt := range []Options{
		{Workers: 1},
		{Workers: 2, Prefetch: 8, Async: true},
		{Workers: 5},
		{Workers: 3, MemoryBudget: base.EstimatedBytes / 4},
	} {
		before := sharedGroups.Load()
		got, res := check(opt)
		if got != want {
			t.Errorf("options %+v: findings differ from walks that keep their leaves:\n got: %s\nwant: %s", opt, got, want)
		}
		if sharedGroups.Load() == before {
			t.Errorf("options %+v: no leaves were shared", opt)
		}
		t.Logf("options %+v: %d passes, %d groups shared, %d findings", opt, res.Passes, sharedGroups.Load()-before, len(res.Findings))
	}
}
