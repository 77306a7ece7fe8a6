package btreeio

import (
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
	for name, cached := range patterns {
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
			fs.Prefetch, fs.Async, fs.AsyncBackend = 4, true, backend
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
				t.Fatalf("%s, %v: leaves differ from synchronous reads\n got %d: %v\nwant %d: %v", name, backend, len(got.lines), got.lines, len(want.lines), want.lines)
			}
			t.Logf("%s, %v: %d leaves, %d probes, %d hits", name, backend, len(got.lines), calls, hits)
		}
	}
}
