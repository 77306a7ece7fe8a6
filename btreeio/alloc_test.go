package btreeio

import (
	"testing"

	"bpcheck/bp"
	"bpcheck/internal/casedata"
)

// TestNodeParseAllocs guards node parsing: parsing into a pooled node
// allocates a constant few objects per node, not one per key.
func TestNodeParseAllocs(t *testing.T) {
	casedata.Require(t)
	fs, err := Open(casedata.CaseImages(t, "many-extents"))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	r := fs.Root(bp.BtreeExtents)
	n, err := fs.ReadNode(bp.BtreeExtents, r.Level, &r.Key, r.Val)
	if err != nil {
		t.Fatal(err)
	}
	child := n.Keys[len(n.Keys)/2]
	ck, cv := child.Key, append([]byte(nil), child.Val...)
	fs.Release(n)
	leaf, err := fs.ReadNode(bp.BtreeExtents, r.Level-1, &ck, cv)
	if err != nil {
		t.Fatal(err)
	}
	keys := len(leaf.Keys)
	fs.Release(leaf)
	allocs := testing.AllocsPerRun(50, func() {
		l, err := fs.ReadNode(bp.BtreeExtents, r.Level-1, &ck, cv)
		if err != nil {
			t.Fatal(err)
		}
		fs.Release(l)
	})
	if allocs > 8 {
		t.Errorf("%v allocations to read and parse a node of %d keys", allocs, keys)
	}
	t.Logf("%v allocations per node of %d keys", allocs, keys)
}
