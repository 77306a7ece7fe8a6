package btreeio

import "bpcheck/bp"

// WalkFrom walks the subtree under btree pointer k (pointing at a node of
// the given level) down to minLevel, like Walk.
func (fs *FS) WalkFrom(id bp.BtreeID, level uint8, k *bp.Key, val []byte, minLevel uint8, v Visitor) error {
	return fs.walk(id, level, k, val, minLevel, v)
}

// WalkRange walks btree id like Walk but only into subtrees whose key
// range intersects [lo, hi]: interior pointers whose child's range lies
// wholly outside are skipped. Nodes handed to v may still hold keys
// outside the range; filtering keys is the visitor's job.
func (fs *FS) WalkRange(id bp.BtreeID, minLevel uint8, lo, hi bp.Pos, v Visitor) error {
	r := fs.Root(id)
	if r == nil {
		return nil
	}
	return fs.walkRange(id, r.Level, &r.Key, r.Val, minLevel, lo, hi, false, v)
}

// WalkLeafRange is WalkRange choosing leaves by their own ranges only
// (their pointer's: childLowerBound to its position): it reads every
// interior node, whatever its range. In a corrupt btree a leaf's range may
// reach below or above its ancestors' ranges; a walk that skipped an
// interior node by its range missed keys that a walk of the whole btree
// reads, so the keys a check's passes load depended on where the passes
// were cut. The loaders walk this way: each pass reads the interior nodes
// once per shard, about a thousandth of a btree's nodes.
func (fs *FS) WalkLeafRange(id bp.BtreeID, minLevel uint8, lo, hi bp.Pos, v Visitor) error {
	r := fs.Root(id)
	if r == nil {
		return nil
	}
	return fs.walkRange(id, r.Level, &r.Key, r.Val, minLevel, lo, hi, true, v)
}

// walkRange is WalkRange (byLeaf false) or WalkLeafRange below pointer k.
func (fs *FS) walkRange(id bp.BtreeID, level uint8, k *bp.Key, val []byte, minLevel uint8, lo, hi bp.Pos, byLeaf bool, v Visitor) error {
	n, err := fs.ReadNode(id, level, k, val)
	if err != nil {
		return v.NodeError(id, level, k, err)
	}
	defer fs.Release(n)
	if err := v.Node(n); err != nil {
		return err
	}
	if level == 0 || level <= minLevel {
		return nil
	}
	if level == 1 {
		return fs.visitLeaves(id, n, &lo, &hi, v)
	}
	childMin := n.Min
	for i := range n.Keys {
		ck := &n.Keys[i]
		if ck.Key.Type != bp.KeyBtreePtrV2 && ck.Key.Type != bp.KeyBtreePtr {
			continue
		}
		max := ck.Key.Pos
		cmin := childLowerBound(&ck.Key, ck.Val, childMin)
		childMin = max.Successor()
		if !byLeaf && (max.Less(lo) || hi.Less(cmin)) {
			continue // no break: a corrupt node's children's min_keys may be out of order
		}
		if err := fs.walkRange(id, level-1, &ck.Key, ck.Val, minLevel, lo, hi, byLeaf, v); err != nil {
			return err
		}
	}
	return nil
}

// childLowerBound is the lowest position the child that btree pointer k
// points to may hold: its min_key for a btree_ptr_v2 (which the child is
// read against, ReadNode), else the position after the previous
// sibling's key (prev). A range walk decides by it, not by prev alone:
// in a corrupt node whose siblings' ranges overlap, prev lies above the
// child's keys, and a walk would then skip a child that a walk of a wider
// range reads (its findings would depend on where passes are cut).
func childLowerBound(k *bp.Key, val []byte, prev bp.Pos) bp.Pos {
	if k.Type == bp.KeyBtreePtrV2 {
		if v, err := bp.DecodeBtreePtrV2(val); err == nil {
			return v.MinKey
		}
	}
	return prev
}
