package btreeio

import (
	"fmt"
	"sort"

	"bpcheck/bp"
)

// Lookup finds the key at exactly pos among the keys of the nodes at level
// in btree id (level 0: leaf keys; ≥ 1: btree node pointers), descending
// from the root by key range. ok is false when no such key exists. The
// journal overlay applies.
func (fs *FS) Lookup(id bp.BtreeID, level uint8, pos bp.Pos) (k bp.Key, val []byte, ok bool, err error) {
	return fs.lookup(id, level, pos, true)
}

// lookup is Lookup; retry allows the node reads on the way the retries of
// a live check (SetLive).
func (fs *FS) lookup(id bp.BtreeID, level uint8, pos bp.Pos, retry bool) (k bp.Key, val []byte, ok bool, err error) {
	r := fs.Root(id)
	if r == nil {
		return k, nil, false, nil
	}
	if level > r.Level {
		if level == r.Level+1 && r.Key.Pos == pos {
			return r.Key, r.Val, true, nil
		}
		return k, nil, false, nil
	}
	pk, pval, l := r.Key, r.Val, r.Level
	for {
		n, err := fs.readNode(id, l, &pk, pval, retry)
		if err != nil {
			return k, nil, false, err
		}
		i := sort.Search(len(n.Keys), func(i int) bool { return !n.Keys[i].Key.Pos.Less(pos) })
		if l == level {
			if i < len(n.Keys) && n.Keys[i].Key.Pos == pos {
				return n.Keys[i].Key, n.Keys[i].Val, true, nil
			}
			return k, nil, false, nil
		}
		if i >= len(n.Keys) {
			return k, nil, false, nil
		}
		child := &n.Keys[i]
		if child.Key.Type != bp.KeyBtreePtrV2 && child.Key.Type != bp.KeyBtreePtr {
			return k, nil, false, fmt.Errorf("%w: interior key %s of btree %s is a %s", ErrCorrupt, child.Key.Pos, id, child.Key.Type)
		}
		pk, pval, l = child.Key, child.Val, l-1
	}
}
