package btreeio

import (
	"slices"

	"bpcheck/bp"
)

// leafRead is a prefetched leaf: the node or the error of reading it.
type leafRead struct {
	n   *Node
	err error
}

// visitLeaves reads the leaf children of node n (level 1) and hands them to
// v in key order. With fs.Prefetch > 0 up to that many leaves are read
// ahead by goroutines while earlier ones are visited (like xfs_repair's
// prefetch): the reads overlap with each other and with the visitor's
// work, and the order of visits is unchanged.
func (fs *FS) visitLeaves(id bp.BtreeID, n *Node, lo, hi *bp.Pos, v Visitor) error {
	var ks []*NodeKey
	childMin := n.Min
	for i := range n.Keys {
		ck := &n.Keys[i]
		if ck.Key.Type != bp.KeyBtreePtrV2 && ck.Key.Type != bp.KeyBtreePtr {
			continue
		}
		cmin := childLowerBound(&ck.Key, ck.Val, childMin)
		childMin = ck.Key.Pos.Successor()
		if lo != nil && ck.Key.Pos.Less(*lo) || hi != nil && hi.Less(cmin) {
			continue // no break: see childLowerBound
		}
		ks = append(ks, ck)
	}
	if ls, ok := v.(LeafSharer); ok && len(ks) > 1 {
		kids := make([]NodeKey, len(ks))
		for i, k := range ks {
			kids[i] = NodeKey{Key: k.Key, Val: append([]byte(nil), k.Val...)}
		}
		return fs.WalkLeaves(id, ls.ShareLeaves(id, kids), v)
	}
	return fs.readLeaves(id, ks, v)
}

// WalkLeaves visits the leaves that the given btree pointers (keys of a
// level-1 node, in key order) point to, in that order, reading ahead as
// walks do (fs.Prefetch). A leaf that cannot be read is handed to
// v.NodeError with its pointer, as in Walk. Callers that split a wide
// node's children among several walkers pass each walker its share.
func (fs *FS) WalkLeaves(id bp.BtreeID, kids []NodeKey, v Visitor) error {
	ks := make([]*NodeKey, len(kids))
	for i := range kids {
		ks[i] = &kids[i]
	}
	return fs.readLeaves(id, ks, v)
}

// LeafFilter is a Visitor that may leave leaves unread: the walks skip
// every leaf for which SkipLeaf(id, k) is true, k being the key that
// points to it.
type LeafFilter interface {
	Visitor
	SkipLeaf(id bp.BtreeID, k *bp.Key) bool
}

// readLeaves reads the leaves ks point to and hands them to v in order
// (leaves a LeafFilter skips are left out).
func (fs *FS) readLeaves(id bp.BtreeID, ks []*NodeKey, v Visitor) error {
	if f, ok := v.(LeafFilter); ok {
		ks = slices.DeleteFunc(ks, func(k *NodeKey) bool { return f.SkipLeaf(id, &k.Key) })
	}
	type child struct {
		k   *NodeKey
		out chan leafRead
	}
	kids := make([]child, len(ks))
	for i := range ks {
		kids[i].k = ks[i]
	}
	if fs.Prefetch <= 0 {
		for _, c := range kids {
			if err := fs.visitLeaf(id, c.k, v); err != nil {
				return err
			}
		}
		return nil
	}
	if fs.Async {
		if ok, err := fs.asyncLeaves(id, ks, v); ok {
			return err
		}
	}
	start := func(c *child) {
		c.out = make(chan leafRead, 1)
		go func(k *NodeKey, out chan<- leafRead) {
			ln, err := fs.ReadNode(id, 0, &k.Key, k.Val)
			out <- leafRead{ln, err}
		}(c.k, c.out)
	}
	next := 0
	for ; next < len(kids) && next < fs.Prefetch; next++ {
		start(&kids[next])
	}
	for i := range kids {
		r := <-kids[i].out
		if next < len(kids) {
			start(&kids[next])
			next++
		}
		var err error
		if r.err != nil {
			err = v.NodeError(id, 0, &kids[i].k.Key, r.err)
		} else {
			err = v.Node(r.n)
			fs.Release(r.n)
		}
		if err != nil {
			// Drain the reads in flight before returning.
			for j := i + 1; j < next; j++ {
				if r := <-kids[j].out; r.n != nil {
					fs.Release(r.n)
				}
			}
			return err
		}
	}
	return nil
}

func (fs *FS) visitLeaf(id bp.BtreeID, k *NodeKey, v Visitor) error {
	ln, err := fs.ReadNode(id, 0, &k.Key, k.Val)
	if err != nil {
		return v.NodeError(id, 0, &k.Key, err)
	}
	defer fs.Release(ln)
	return v.Node(ln)
}
