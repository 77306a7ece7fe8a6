package btreeio

import (
	"testing"

	"bpcheck/bp"
	"bpcheck/internal/casedata"
)

// openLoaded opens a case of the shared test data with its roots loaded
// (skipping when the test data is absent); it is closed with the test.
func openLoaded(t *testing.T, name string) *FS {
	t.Helper()
	casedata.Require(t)
	fs, err := Open(casedata.CaseImages(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestNodeParseAllocs guards node parsing: parsing into a pooled node
// allocates a constant few objects per node, not one per key.
func TestNodeParseAllocs(t *testing.T) {
	fs := openLoaded(t, "many-extents")
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
