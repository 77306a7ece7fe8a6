package btreeio

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"testing"

	"bpcheck/aio"
	"bpcheck/bp"
)

// leafLog records the leaves a walk hands to its visitor, in order.
type leafLog struct{ lines []string }

func (l *leafLog) Node(n *Node) error {
	if n.Level == 0 {
		first := bp.Pos{}
		if len(n.Keys) > 0 {
			first = n.Keys[0].Key.Pos
		}
		l.lines = append(l.lines, fmt.Sprintf("%s@%d %d keys from %v", n.Dev, n.Offset, len(n.Keys), first))
	}
	return nil
}

func (l *leafLog) NodeError(id bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	l.lines = append(l.lines, fmt.Sprintf("error %v", err))
	return nil
}

// TestReadAheadFollowsTheCache plays page cache hits and misses under the
// asynchronous leaf reader, which defers leaves while the cache holds
// them and reads ahead again after a miss: every pattern must hand the
// visitor the same leaves in the same order as synchronous reads.
func TestReadAheadFollowsTheCache(t *testing.T) {
	fs := openLoaded(t, "many-extents")
	want := &leafLog{}
	if err := fs.Walk(bp.BtreeExtents, 0, want); err != nil {
		t.Fatal(err)
	}
	if len(want.lines) < 20 {
		t.Fatalf("only %d extents leaves: too few to exercise read-ahead", len(want.lines))
	}

	defer func() { cacheRead = readCached }()
	rng := rand.New(rand.NewSource(1))
	patterns := map[string]func(call int) bool{ // true: the page cache holds it
		"all cached":   func(int) bool { return true },
		"none cached":  func(int) bool { return false },
		"alternating":  func(call int) bool { return call%2 == 0 },
		"runs":         func(call int) bool { return call%7 < 4 },
		"random":       func(int) bool { return rng.Intn(3) != 0 },
		"first missed": func(call int) bool { return call != 0 },
	}
	// Depths 1 and 3 wrap the ring of read-ahead slots often; 4 is the
	// depth of the other patterns.
	depths := map[string]int{"random": 1, "runs": 3}
	for name, cached := range patterns {
		depth := 4
		if d, ok := depths[name]; ok {
			depth = d
		}
		for _, backend := range []aio.Backend{aio.IOUring, aio.PreadPool} {
			calls, hits := 0, 0
			cacheRead = func(f *os.File, buf []byte, off int64) (int, bool) {
				c := calls
				calls++
				if !cached(c) {
					return 0, false
				}
				n, ok := readCached(f, buf, off)
				if ok {
					hits++
				}
				return n, ok
			}
			fs.Prefetch, fs.Async, fs.AsyncBackend = depth, true, backend
			got := &leafLog{}
			err := fs.Walk(bp.BtreeExtents, 0, got)
			fs.CloseReaders()
			fs.Prefetch, fs.Async = 0, false
			if err != nil {
				t.Fatalf("%s, %v: %v", name, backend, err)
			}
			if calls == 0 {
				t.Fatalf("%s, %v: the asynchronous reader was not used", name, backend)
			}
			if name == "all cached" && calls != len(want.lines) {
				// Deferred leaves are each probed once, when their turn comes.
				t.Errorf("%s, %v: %d cache probes for %d leaves", name, backend, calls, len(want.lines))
			}
			if fmt.Sprint(got.lines) != fmt.Sprint(want.lines) {
				t.Fatalf("%s, %v, depth %d: leaves differ from synchronous reads\n got %d: %v\nwant %d: %v", name, backend, depth, len(got.lines), got.lines, len(want.lines), want.lines)
			}
			t.Logf("%s, %v, depth %d: %d leaves, %d probes, %d hits", name, backend, depth, len(got.lines), calls, hits)
		}
	}
}

// flakyReader is an aio.Reader whose Wait fails once, on its failAt-th
// call, keeping back the result it took then, and hands that result over
// late, with a call some leaves later: a broken reader that completes a
// read after the walk gave up on it.
type flakyReader struct {
	aio.Reader
	failAt, waits int
	late          []aio.Result
	lateAt        int
	delivered     bool
}

func (r *flakyReader) Wait(min int) ([]aio.Result, error) {
	r.waits++
	if r.waits == r.failAt {
		res, err := r.Reader.Wait(1)
		if err != nil {
			return nil, err
		}
		r.late = append(r.late, res...)
		r.lateAt = r.waits + 3
		return nil, errors.New("injected reader failure")
	}
	res, err := r.Reader.Wait(min)
	if r.late != nil && r.waits >= r.lateAt {
		res = append(res, r.late...)
		r.late, r.delivered = nil, true
	}
	return res, err
}

// TestReadAheadBrokenReader breaks the asynchronous reader in the middle
// of a walk that reads every leaf from the device (none cached): the leaf
// it failed on and the ones after it are read again synchronously, a
// result the broken reader delivers late is dropped (its read-ahead slot
// holds another leaf by then), and the visitor gets the same leaves in the
// same order as from synchronous reads.
func TestReadAheadBrokenReader(t *testing.T) {
	fs := openLoaded(t, "many-extents")
	want := &leafLog{}
	if err := fs.Walk(bp.BtreeExtents, 0, want); err != nil {
		t.Fatal(err)
	}
	defer func() { cacheRead, newReader = readCached, aio.New }()
	cacheRead = func(*os.File, []byte, int64) (int, bool) { return 0, false }
	for _, failAt := range []int{1, 2, 5, 17} {
		var made []*flakyReader
		newReader = func(o aio.Options) (aio.Reader, error) {
			r, err := aio.New(aio.Options{Backend: aio.PreadPool, QueueDepth: o.QueueDepth})
			if err != nil {
				return nil, err
			}
			f := &flakyReader{Reader: r, failAt: failAt}
			made = append(made, f)
			return f, nil
		}
		fs.Prefetch, fs.Async, fs.AsyncBackend = 2, true, aio.PreadPool
		got := &leafLog{}
		err := fs.Walk(bp.BtreeExtents, 0, got)
		fs.CloseReaders()
		fs.Prefetch, fs.Async = 0, false
		if err != nil {
			t.Fatalf("fail at wait %d: %v", failAt, err)
		}
		if fmt.Sprint(got.lines) != fmt.Sprint(want.lines) {
			t.Fatalf("fail at wait %d: leaves differ from synchronous reads\n got %d: %v\nwant %d: %v", failAt, len(got.lines), got.lines, len(want.lines), want.lines)
		}
		late := 0
		for _, f := range made {
			if f.delivered {
				late++
			}
		}
		if late == 0 {
			t.Errorf("fail at wait %d: no late result was delivered (%d readers): the test shows nothing", failAt, len(made))
		}
		t.Logf("fail at wait %d: %d readers, %d delivered a late result", failAt, len(made), late)
	}
}
