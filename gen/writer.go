package gen

import (
	"bpcheck/bp"
)

// nodeInfo is what a parent pointer, a backpointer and an alloc key need
// to know about a written node.
type nodeInfo struct {
	btree          bp.BtreeID
	level          uint8
	min, max       bp.Pos
	seq            uint64
	sectorsWritten uint16
	ptrs           []bp.Ptr
	global         int // index in allocation order over the whole filesystem
	keys           int
}

// ptrVal is the btree_ptr_v2 value pointing at n.
func (n *nodeInfo) ptrVal(b []byte) []byte {
	var h [bp.BtreePtrV2Bytes]byte
	v := bp.BtreePtrV2{Seq: n.seq, SectorsWritten: n.sectorsWritten, MinKey: n.min}
	v.Put(h[:])
	b = append(b, h[:]...)
	for _, p := range n.ptrs {
		b = appendU64(b, p.Encode())
	}
	return b
}

func appendU64(b []byte, v uint64) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
}

// sink turns a full nodeBuf into a node: it places it, writes it (or only
// plans it) and takes ownership of the buffer.
type sink interface {
	emit(btree bp.BtreeID, level uint8, n *nodeBuf, max bp.Pos) (*nodeInfo, error)
	newBuf() *nodeBuf
}

// btreeWriter streams keys in order into the nodes of one level of one
// btree: a node is emitted when the next key would fill it past the fill
// target; its max_key is its last key, and the next node starts at that
// key's successor (bch2_btree_node split). The last node is held until
// finish, which gives it its final max_key.
type btreeWriter struct {
	btree bp.BtreeID
	level uint8
	sink  sink
	cur   *nodeBuf
	last  bp.Pos
	nodes []*nodeInfo
}

func newBtreeWriter(s sink, btree bp.BtreeID, level uint8, min bp.Pos) *btreeWriter {
	w := &btreeWriter{btree: btree, level: level, sink: s, cur: s.newBuf()}
	w.cur.reset(min)
	return w
}

func (w *btreeWriter) empty() bool { return len(w.nodes) == 0 && len(w.cur.keys) == 0 }

// cloneTo returns a writer that continues w's held node (copied) into
// sink s, with no emitted nodes of its own yet.
func (w *btreeWriter) cloneTo(s sink) *btreeWriter {
	return &btreeWriter{btree: w.btree, level: w.level, sink: s, cur: w.cur.clone(), last: w.last}
}

func (w *btreeWriter) add(pos bp.Pos, size uint32, typ bp.KeyType, val []byte) error {
	return w.addVer(pos, size, 0, typ, val)
}

// addVer adds a key of version ver (version.lo; the extents of encrypted
// filesystems).
func (w *btreeWriter) addVer(pos bp.Pos, size uint32, ver uint64, typ bp.KeyType, val []byte) error {
	n := w.cur
	ku := n.keyU64sWith(pos, size, ver)
	if len(n.keys) > 0 && !n.fits(ku, len(val), n.goalU64s) {
		if err := w.flush(w.last); err != nil {
			return err
		}
		w.cur.reset(w.last.Successor())
		ku = w.cur.keyU64sWith(pos, size, ver)
	}
	w.cur.add(pos, size, ver, typ, val, ku)
	w.last = pos
	return nil
}

// flush emits the current node with the given max_key.
func (w *btreeWriter) flush(max bp.Pos) error {
	info, err := w.sink.emit(w.btree, w.level, w.cur, max)
	if err != nil {
		return err
	}
	w.nodes = append(w.nodes, info)
	w.cur = w.sink.newBuf()
	return nil
}

// finish emits the held node with max_key max, splitting it when the
// wider key format that max brings does not fit.
func (w *btreeWriter) finish(max bp.Pos) error {
	for len(w.cur.keys) > 0 {
		if _, u := w.cur.withMax(max); u <= w.cur.capU64s {
			return w.flush(max)
		}
		// Emit the first half with its own last key as max_key, and
		// rebuild the rest as a new node.
		old := w.cur
		h := len(old.keys) / 2
		if h == 0 {
			h = 1
		}
		first, rest := w.sink.newBuf(), w.sink.newBuf()
		first.capU64s, first.goalU64s = old.capU64s, old.goalU64s
		rest.capU64s, rest.goalU64s = old.capU64s, old.goalU64s
		first.reset(old.min)
		first.addAll(old, old.keys[:h])
		rest.reset(old.keys[h-1].pos.Successor())
		rest.addAll(old, old.keys[h:])
		w.cur = first
		if err := w.flush(old.keys[h-1].pos); err != nil {
			return err
		}
		w.cur = rest
	}
	return nil
}

// buildInterior builds the interior levels above leaves (in key order)
// and returns the root.
func buildInterior(s sink, btree bp.BtreeID, leaves []*nodeInfo) (*nodeInfo, error) {
	cur := leaves
	var val []byte
	for len(cur) > 1 {
		w := newBtreeWriter(s, btree, cur[0].level+1, bp.PosMin)
		for _, c := range cur {
			val = c.ptrVal(val[:0])
			if err := w.add(c.max, 0, bp.KeyBtreePtrV2, val); err != nil {
				return nil, err
			}
		}
		if err := w.finish(bp.SPosMax); err != nil {
			return nil, err
		}
		cur = w.nodes
	}
	return cur[0], nil
}
