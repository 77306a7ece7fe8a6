package btreeio_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/gen"
)

// TestWalkLeafRangeLeafBelowAncestors: in a btree of three levels whose
// interior node I claims a range starting inside its first leaf L's range
// (I's min_key raised in its header and in the root's pointer to it,
// checksums resealed), L's pointer survives in I (its position, L's max,
// lies in I's range) and L holds keys below I's range. A walk of the whole
// btree reads them; a range walk of keys below I's min_key must read L
// too, or a check cut into passes would lose those keys that one pass
// sees. WalkLeafRange reads it; WalkRange, which skips I by its range,
// does not.
func TestWalkLeafRangeLeafBelowAncestors(t *testing.T) {
	dir := t.TempDir()
	if _, err := gen.Generate(dir, gen.Params{Devices: 1, DeviceSize: 1 << 30, BtreeNodeSize: 4 << 10,
		Extents: 20000, ExtentMin: 8, ExtentMax: 8, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dev0.img")
	id := bp.BtreeBackpointers

	fs := mustOpen(t, path)
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	root := fs.Root(id)
	if root == nil || root.Level != 2 {
		t.Fatalf("backpointers root %+v: want a btree of three levels", root)
	}
	rn, err := fs.ReadNode(id, root.Level, &root.Key, root.Val)
	if err != nil {
		t.Fatal(err)
	}
	var ip *btreeio.NodeKey
	for i, seen := 0, 0; i < len(rn.Keys) && ip == nil; i++ {
		if rn.Keys[i].Key.Type == bp.KeyBtreePtrV2 {
			if seen++; seen == 2 { // the second child: not the first, whose range starts at the root's
				ip = &btreeio.NodeKey{Key: rn.Keys[i].Key, Val: bytes.Clone(rn.Keys[i].Val)}
			}
		}
	}
	if ip == nil {
		t.Fatal("the root has fewer than two children")
	}
	in, err := fs.ReadNode(id, 1, &ip.Key, ip.Val)
	if err != nil {
		t.Fatal(err)
	}
	lp := btreeio.NodeKey{Key: in.Keys[0].Key, Val: bytes.Clone(in.Keys[0].Val)}
	leaf, err := fs.ReadNode(id, 0, &lp.Key, lp.Val)
	if err != nil {
		t.Fatal(err)
	}
	leaf.DecodeKeys()
	if len(leaf.Keys) < 4 {
		t.Fatalf("leaf L holds %d keys", len(leaf.Keys))
	}
	newMin := leaf.Keys[len(leaf.Keys)/2].Key.Pos // I's range starts inside L's
	below := leaf.Keys[len(leaf.Keys)/2-1].Key.Pos
	leafOff, rootOff, iOff := leaf.Offset, rn.Offset, in.Offset
	fs.Release(leaf)
	fs.Release(in)
	fs.Release(rn)
	fs.Close()

	// Patch the image: the root's pointer to I (its value lies in the
	// root node as is: bch_btree_ptr_v2's min_key at byte 20) and I's
	// header (min_key at byte 32).
	nodeBytes := int64(fs.SB.BtreeNodeSectors()) * btreeio.SectorSize
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	patch := func(off int64, edit func([]byte)) {
		buf := make([]byte, nodeBytes)
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		edit(buf)
		setFirstBsetCsum(buf)
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	patch(rootOff, func(b []byte) {
		at := bytes.Index(b, ip.Val)
		if at < 0 || bytes.Contains(b[at+1:], ip.Val) {
			t.Fatal("the root's pointer to I is not found once in the root node")
		}
		newMin.Put(b[at+20:])
	})
	patch(iOff, func(b []byte) { newMin.Put(b[32:]) })
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// Which leaves a walk reads, and the keys of L it sees.
	leaves := func(walk func(*btreeio.FS, btreeio.Visitor) error) (offs []int64, keysOfL int) {
		fs := mustOpen(t, path)
		defer fs.Close()
		if err := fs.LoadRoots(); err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		if err := walk(fs, rec); err != nil {
			t.Fatal(err)
		}
		if len(rec.errs) > 0 {
			t.Fatalf("node errors: %+v", rec.errs)
		}
		for _, n := range rec.nodes {
			if n.Level == 0 {
				offs = append(offs, n.Offset)
				if n.Offset == leafOff {
					keysOfL = len(n.Keys)
				}
			}
		}
		return offs, keysOfL
	}
	all, keysAll := leaves(func(fs *btreeio.FS, v btreeio.Visitor) error { return fs.Walk(id, 0, v) })
	if !slices.Contains(all, leafOff) || keysAll < 4 {
		t.Fatalf("the whole walk read L: %v with %d keys; want L and its keys below I's range", slices.Contains(all, leafOff), keysAll)
	}
	part, keysPart := leaves(func(fs *btreeio.FS, v btreeio.Visitor) error {
		return fs.WalkLeafRange(id, 0, bp.PosMin, below, v)
	})
	if !slices.Contains(part, leafOff) || keysPart != keysAll {
		t.Errorf("a range walk up to %v (below I's min_key %v) read L: %v (%d keys); the whole walk: %d keys",
			below, newMin, slices.Contains(part, leafOff), keysPart, keysAll)
	}
	if len(part) >= len(all) {
		t.Errorf("the range walk read %d leaves, the whole walk %d: want fewer", len(part), len(all))
	}
	pruned, _ := leaves(func(fs *btreeio.FS, v btreeio.Visitor) error {
		return fs.WalkRange(id, 0, bp.PosMin, below, v)
	})
	if slices.Contains(pruned, leafOff) {
		t.Error("WalkRange read L below its ancestors' range: the scenario no longer tells the walks apart")
	}
}
