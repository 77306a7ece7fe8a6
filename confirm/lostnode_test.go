package confirm_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"bpcheck/allocinfo"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/btreeio/btreeiotest"
	"bpcheck/confirm"
	"bpcheck/internal/casedata"
	"bpcheck/pipeline"
	"bpcheck/report"
)

// flipReader flips a bit of the node at off while bad is set.
type flipReader struct {
	r   io.ReaderAt
	off int64
	bad atomic.Bool
}

func (b *flipReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := b.r.ReadAt(p, off)
	at := b.off + 100
	if b.bad.Load() && off <= at && at < off+int64(len(p)) {
		p[at-off] ^= 0x40
	}
	return n, err
}

// leafSpans collects the offsets and key ranges of a btree's leaves.
type leafSpans struct {
	offs       []int64
	mins, maxs []bp.Pos
}

func (l *leafSpans) Node(n *btreeio.Node) error {
	if n.Level == 0 {
		l.offs, l.mins, l.maxs = append(l.offs, n.Offset), append(l.mins, n.Min), append(l.maxs, n.Max)
	}
	return nil
}
func (l *leafSpans) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// TestLostLeafThatReadsAgainIsAnError: a leaf unreadable through every
// scan (a node being rewritten) that reads at confirmation hid a real
// finding the scan could not judge. Its error stays, saying so (exit 8):
// it was dropped as transient and the check looked clean.
func TestLostLeafThatReadsAgainIsAnError(t *testing.T) {
	casedata.Require(t)
	src := casedata.CaseImages(t, "corrupt-missing-bp")[0]
	clean := btreeiotest.OpenThrough(t, src, func(r io.ReaderAt) io.ReaderAt { return r })
	clean.SetLive(btreeio.DefaultLiveRetries)
	if err := clean.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	base, err := pipeline.Run(context.Background(), clean, pipeline.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var hidden *report.Finding
	for i := range base.Findings {
		if base.Findings[i].Code == report.PtrToMissingBackpointer && base.Findings[i].Level == 0 {
			hidden = &base.Findings[i]
		}
	}
	if hidden == nil {
		t.Fatalf("no leaf finding to hide: %v", base.Findings)
	}
	id, _ := bp.ParseBtreeID(hidden.Btree)
	var ls leafSpans
	if err := clean.Walk(id, 0, &ls); err != nil {
		t.Fatal(err)
	}
	fr := &flipReader{off: -1}
	for i := range ls.offs {
		if !hidden.Pos.Less(ls.mins[i]) && !ls.maxs[i].Less(hidden.Pos) {
			fr.off = ls.offs[i]
		}
	}
	fr.bad.Store(true)
	fs := btreeiotest.OpenThrough(t, src, func(r io.ReaderAt) io.ReaderAt { fr.r = r; return fr })
	fs.SetLive(btreeio.DefaultLiveRetries)
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	res, _, err := confirm.Scan(context.Background(), fs, pipeline.Options{Workers: 2}, confirm.DefaultRescans)
	if err != nil {
		t.Fatal(err)
	}
	fr.bad.Store(false) // the rewrite is over
	cres, err := confirm.Run(context.Background(), fs, res.Findings, res.Errors, quick)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range cres.Confirmed {
		if f.Code == hidden.Code && f.Pos == hidden.Pos {
			t.Fatalf("the hidden finding was judged after all: %v", f)
		}
	}
	found := false
	for _, e := range cres.Errors {
		found = found || strings.Contains(e.Error(), "was not judged")
	}
	if !found {
		t.Errorf("errors %v: the leaf that hid a finding is not one", cres.Errors)
	}
}

// TestDamagedDerivedNodeKeepsRereads: a node of a derived btree (read
// whole by every re-read) that cannot be read by the scan nor the
// re-reads does not void them: a candidate that does not hold is still
// found transient (it was confirmed, every re-read being thrown away),
// and the node's error is reported once.
func TestDamagedDerivedNodeKeepsRereads(t *testing.T) {
	casedata.Require(t)
	src := casedata.CaseImages(t, "corrupt-missing-bp")[0]
	clean := btreeiotest.OpenThrough(t, src, func(r io.ReaderAt) io.ReaderAt { return r })
	if err := clean.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	fr := &flipReader{off: -1}
	for _, id := range []bp.BtreeID{allocinfo.BtreeLRU, bp.BtreeFreespace, allocinfo.BtreeNeedDiscard, bp.BtreeBucketGens} {
		var ls leafSpans
		if err := clean.Walk(id, 0, &ls); err != nil {
			t.Fatal(err)
		}
		if len(ls.offs) > 0 && fr.off < 0 {
			fr.off = ls.offs[0]
		}
	}
	if fr.off < 0 {
		t.Fatal("no derived btree leaf")
	}
	fr.bad.Store(true)
	fs := btreeiotest.OpenThrough(t, src, func(r io.ReaderAt) io.ReaderAt { fr.r = r; return fr })
	fs.SetLive(btreeio.DefaultLiveRetries)
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var fake report.Finding
	for _, f := range res.Findings {
		if f.Dev == 0 && f.Code == report.PtrToMissingBackpointer {
			fake = f
			fake.Bucket += 3 // a candidate that does not hold
			break
		}
	}
	if fake.Code == "" {
		t.Fatalf("no finding to move: %v", res.Findings)
	}
	cres, err := confirm.Run(context.Background(), fs, append(append([]report.Finding(nil), res.Findings...), fake), res.Errors, quick)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range cres.Confirmed {
		if f.Code == fake.Code && f.Dev == fake.Dev && f.Bucket == fake.Bucket {
			t.Errorf("a candidate that does not hold was confirmed (inconclusive %v)", cres.Inconclusive)
		}
	}
	if cres.Inconclusive || len(cres.Errors) != len(res.Errors) {
		t.Errorf("inconclusive %v, %d errors for the scan's %d: %v", cres.Inconclusive, len(cres.Errors), len(res.Errors), cres.Errors)
	}
}

// TestMissingKeyFindingsHold: two findings name a key that is missing by
// definition (a stripe LRU entry that should be there; a stripe
// backpointer no pointer claims names its extent). On a filesystem that
// does not change, the missing LRU entry holds (it was found "gone" on
// every re-read because its key is absent), and a stripe backpointer
// that does not exist does not.
func TestMissingKeyFindingsHold(t *testing.T) {
	casedata.Require(t)
	fs, res := scanLive(t, "corrupt-missing-bp")
	lru := report.Finding{Code: report.AllocKeyToMissingLRUEntry, Dev: -1, Btree: allocinfo.BtreeLRU.Name(fs.SB.Version),
		Pos: bp.Pos{Inode: uint64(1<<16-2)<<48 | 7, Offset: 1<<48 | 9}, Detail: "missing stripes lru entry"}
	stripeBP := report.Finding{Code: report.BackpointerToMissingPtr, Dev: -1, HasBP: true, BP: bp.Pos{Inode: 255, Offset: 12345},
		Btree: bp.BtreeExtents.Name(fs.SB.Version), Pos: bp.Pos{Inode: 999999, Offset: 8, Snapshot: 1<<32 - 1}}
	cres, err := confirm.Run(context.Background(), fs, append(append([]report.Finding(nil), res.Findings...), lru, stripeBP), res.Errors, quick)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, f := range cres.Confirmed {
		if f.Dev < 0 {
			held[f.Code] = true
		}
	}
	if !held[lru.Code] {
		t.Error("a stripe LRU entry still missing was called transient")
	}
	if held[stripeBP.Code] {
		t.Error("a stripe backpointer that does not exist was confirmed")
	}
}
