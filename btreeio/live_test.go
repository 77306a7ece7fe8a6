package btreeio_test

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/btreeio/btreeiotest"
	"bpcheck/internal/casedata"
)

// flakyReader serves a node's bytes with a byte flipped for the first bad
// reads that meet [off, off+n), and the true bytes after: a node in the
// middle of being rewritten, as a check of a mounted filesystem meets it.
//
// With stale set, a bad read returns the bytes of another node (at
// stale) instead: the node's space read before the node was written
// there, a seq that does not match the pointer.
type flakyReader struct {
	r     io.ReaderAt
	off   int64
	bad   int
	stale int64
	mu    sync.Mutex
	met   int
}

func (f *flakyReader) ReadAt(p []byte, off int64) (int, error) {
	at := f.off + 200 // inside the first bset's keys
	if off <= at && at < off+int64(len(p)) {
		f.mu.Lock()
		f.met++
		bad := f.met <= f.bad
		f.mu.Unlock()
		if bad && f.stale != 0 && off == f.off {
			return f.r.ReadAt(p, f.stale)
		}
		n, err := f.r.ReadAt(p, off)
		if bad {
			p[at-off] ^= 0x40
		}
		return n, err
	}
	return f.r.ReadAt(p, off)
}

// leafOffsets walks btree id and returns the byte offsets of its leaves.
type leafOffsets struct {
	offs []int64
	errs []error
}

func (l *leafOffsets) Node(n *btreeio.Node) error {
	if n.Level == 0 {
		l.offs = append(l.offs, n.Offset)
	}
	return nil
}

func (l *leafOffsets) NodeError(_ bp.BtreeID, _ uint8, _ *bp.Key, err error) error {
	l.errs = append(l.errs, err)
	return nil
}

// TestLiveRetry: a leaf whose first read has a bad checksum (a node being
// rewritten) or another node's bytes (a seq that does not match the
// pointer: the space read before the node was written) is an error in a
// plain check and is read on retry in a live one, where the walk then
// sees every leaf; a leaf bad on every read stays an error after the
// bounded retries.
func TestLiveRetry(t *testing.T) {
	src := casedata.CaseImages(t, "small")[0]
	clean := btreeiotest.OpenThrough(t, src, func(r io.ReaderAt) io.ReaderAt { return r })
	if err := clean.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	var all leafOffsets
	if err := clean.Walk(bp.BtreeExtents, 0, &all); err != nil {
		t.Fatal(err)
	}
	if len(all.offs) < 2 || len(all.errs) != 0 {
		t.Fatalf("clean walk: %d leaves, errors %v", len(all.offs), all.errs)
	}
	target, other := all.offs[len(all.offs)/2], all.offs[0]
	for _, tc := range []struct {
		name       string
		live       bool
		bad        int
		stale      bool
		wantErrs   int
		wantRetry  int64
		wantRecovr int64
	}{
		{"plain, torn once", false, 1, false, 1, 0, 0},
		{"live, torn once", true, 1, false, 0, 1, 1},
		{"live, torn on every read", true, 1 << 20, false, 1, 1, 0},
		{"plain, stale once", false, 1, true, 1, 0, 0},
		{"live, stale once", true, 1, true, 0, 1, 1},
		{"live, stale on every read", true, 1 << 20, true, 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := btreeiotest.OpenThrough(t, src, func(r io.ReaderAt) io.ReaderAt {
				f := &flakyReader{r: r, off: target, bad: tc.bad}
				if tc.stale {
					f.stale = other
				}
				return f
			})
			if tc.live {
				fs.SetLive(btreeio.DefaultLiveRetries)
			}
			if err := fs.LoadRoots(); err != nil {
				t.Fatal(err)
			}
			var got leafOffsets
			if err := fs.Walk(bp.BtreeExtents, 0, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.errs) != tc.wantErrs {
				t.Fatalf("%d node errors (%v), want %d", len(got.errs), got.errs, tc.wantErrs)
			}
			for _, err := range got.errs {
				if want := btreeio.ErrBadChecksum; !tc.stale && !errors.Is(err, want) {
					t.Errorf("error %v is not a bad checksum", err)
				}
				if tc.stale && !strings.Contains(err.Error(), "pointer wants") {
					t.Errorf("error %v is not a seq mismatch", err)
				}
			}
			if tc.wantErrs == 0 && len(got.offs) != len(all.offs) {
				t.Errorf("%d leaves visited, want %d", len(got.offs), len(all.offs))
			}
			if r, ok := fs.LiveRetries(); r != tc.wantRetry || ok != tc.wantRecovr {
				t.Errorf("retried %d, recovered %d; want %d, %d", r, ok, tc.wantRetry, tc.wantRecovr)
			}
		})
	}
}
