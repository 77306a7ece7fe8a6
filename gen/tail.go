package gen

import (
	"fmt"
	"math"
	"sort"

	"bpcheck/bp"
	"bpcheck/report"
)

// The tail: after the extent stream, the last (held) node of every
// streaming btree, the interior levels of every btree and the btrees whose
// keys describe the btree nodes themselves (backpointers of nodes, alloc
// keys of node buckets, freespace, lru) are built in memory. Their nodes
// need slots whose positions those very keys record, so the tail is built
// until it is a fixed point: built with the node list of the previous try,
// it must produce the same nodes (btree, level, max_key, in order; node k
// of the tail always gets slot k). Tails are small (one key per node or
// bucket), so a few tries cost little.

type tailSink struct {
	g      *generator
	allocs []nodeAlloc
	pre    [][]bp.Ptr
	nodes  []*nodeInfo
	base   int
	write  bool
}

func (t *tailSink) newBuf() *nodeBuf { return t.g.newBuf() }

func (t *tailSink) emit(btree bp.BtreeID, level uint8, n *nodeBuf, max bp.Pos) (*nodeInfo, error) {
	k := len(t.nodes)
	global := t.base + k
	var ptrs []bp.Ptr
	if k < len(t.pre) {
		ptrs = t.pre[k]
	} else {
		var err error
		if ptrs, err = t.g.placeNode(global, t.allocs); err != nil {
			return nil, err
		}
	}
	info := t.g.makeNode(btree, level, n, max, global, ptrs, t.write)
	t.nodes = append(t.nodes, info)
	return info, nil
}

type tailResult struct {
	nodes    []*nodeInfo
	roots    map[bp.BtreeID]*nodeInfo
	state    []nodeAlloc // node allocators after the tail
	findings []report.Finding
	free     []uint64 // free buckets per device
}

// tailKey is a key of a tail btree.
type tailKey struct {
	pos  bp.Pos
	size uint32
	typ  bp.KeyType // KeySet if 0
	val  []byte
}

func sameNodes(a, b []*nodeInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].btree != b[i].btree || a[i].level != b[i].level || a[i].max != b[i].max {
			return false
		}
	}
	return true
}

// finishTail builds the tail until it is a fixed point, then writes it.
func (g *generator) finishTail() (*tailResult, error) {
	var prev []*nodeInfo
	for iter := 0; ; iter++ {
		if iter == 64 {
			return nil, errNoConvergence
		}
		res, err := g.buildTail(prev, false)
		if err != nil {
			return nil, err
		}

		if sameNodes(res.nodes, prev) {
			break
		}
		prev = res.nodes
	}
	res, err := g.buildTail(prev, true)
	if err != nil {
		return nil, err
	}
	if !sameNodes(res.nodes, prev) {
		return nil, errNoConvergence
	}
	return res, nil
}

// droppedNodes picks the nodes whose backpointer the missing_node_bp
// fault drops: at random among the first stable nodes (those placed
// during the extent stream and the extents btree's tail, whose identity
// does not depend on the tail's fixed point), then the next nodes in
// order if more are asked for than there are stable ones.
func (g *generator) droppedNodes(stable, n int) map[int]bool {
	c := min(g.p.Inject[KindMissingNodeBP], n) // checked once the tail is final
	out := map[int]bool{}
	k := min(c, stable)
	r := newRNG(g.p.Seed, 3)
	for j := stable - k; j < stable; j++ {
		t := int(r.intn(uint64(j + 1)))
		if out[t] {
			t = j
		}
		out[t] = true
	}
	for j := stable; len(out) < c; j++ {
		out[j] = true
	}
	return out
}

func (g *generator) nodeBP(n *nodeInfo, p bp.Ptr, nodeSectors uint64) (bp.Pos, bp.Backpointer) {
	return bp.Pos{Inode: uint64(p.Dev), Offset: p.Offset << g.f.shift},
		bp.Backpointer{BtreeID: n.btree, Level: n.level + 1, DataType: bp.DataBtree, BucketLen: uint32(nodeSectors), Pos: n.max}
}

func (g *generator) buildTail(prev []*nodeInfo, write bool) (*tailResult, error) {
	nd := len(g.devs)
	base := len(g.nodes)
	allocs := make([]nodeAlloc, nd)
	for i, d := range g.devs {
		allocs[i] = d.nodes
	}
	pre := make([][]bp.Ptr, len(prev))
	for k := range prev {
		ptrs, err := g.placeNode(base+k, allocs)
		if err != nil {
			return nil, err
		}
		pre[k] = ptrs
	}
	state := append([]nodeAlloc(nil), allocs...)
	t := &tailSink{g: g, allocs: allocs, pre: pre, base: base, write: write}
	res := &tailResult{roots: map[bp.BtreeID]*nodeInfo{}, state: state}
	all := append(append([]*nodeInfo(nil), g.nodes...), prev...)
	for k, n := range prev {
		// Positions of the previous try's nodes are the ones they get now.
		c := *n
		c.ptrs = pre[k]
		all[base+k] = &c
	}

	// extents: the held leaf, then the interior levels.
	w := g.ext.cloneTo(t)
	if err := w.finish(bp.SPosMax); err != nil {
		return nil, err
	}
	if err := g.addRoot(res, t, bp.BtreeExtents, append(append([]*nodeInfo(nil), g.ext.nodes...), w.nodes...)); err != nil {
		return nil, err
	}

	// inodes and dirents: the held leaves, then the interior levels.
	for _, sw := range []*btreeWriter{g.ns.inodes, g.ns.dirents} {
		w := sw.cloneTo(t)
		if err := w.finish(bp.SPosMax); err != nil {
			return nil, err
		}
		if err := g.addRoot(res, t, sw.btree, append(append([]*nodeInfo(nil), sw.nodes...), w.nodes...)); err != nil {
			return nil, err
		}
	}

	// backpointers: node backpointers and injected ones go after each
	// device's data backpointers (nodes sit above all data).
	dropped := g.droppedNodes(base+len(t.nodes), len(all))
	tailBPs := make([][]tailKey, nd)
	var v [bp.BackpointerBytes]byte
	addBP := func(pos bp.Pos, b *bp.Backpointer) {
		b.Encode(v[:], true)
		d := min(int(pos.Inode), nd-1)
		tailBPs[d] = append(tailBPs[d], tailKey{pos: pos, val: append([]byte(nil), v[:]...)})
	}
	for _, n := range all {
		for j, p := range n.ptrs {
			pos, b := g.nodeBP(n, p, g.nodeSectors)
			if dropped[n.global] && j == n.global%len(n.ptrs) {
				bucket := p.Offset / g.devs[p.Dev].bucketSectors
				res.findings = append(res.findings, g.finding(report.PtrToMissingBackpointer, int(p.Dev), bucket, &pos, n.btree, int(n.level)+1, &n.max,
					"btree node backpointer dropped"))
				continue
			}
			addBP(pos, &b)
		}
	}
	orphan := bp.Pos{Inode: 1, Offset: blockSectors, Snapshot: math.MaxUint32}
	res.free = make([]uint64, nd)
	for i, d := range g.devs {
		if lo := d.dataTop() + 1; state[i].lowest(d) > lo {
			res.free[i] = state[i].lowest(d) - lo
		} else {
			res.free[i] = 0
		}
	}
	for m := 0; m < g.p.Inject[KindMissingAlloc]; m++ {
		i := m % nd
		d := g.devs[i]
		b := d.dataTop() + 1 + uint64(m/nd)
		if b >= state[i].lowest(d) {
			return nil, fmt.Errorf("%w: no free bucket left on device %d for a missing_alloc fault", ErrDeviceFull, i)
		}
		pos := bp.Pos{Inode: uint64(i), Offset: b * d.bucketSectors << g.f.shift}
		val := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataUser, BucketLen: blockSectors, Pos: orphan}
		addBP(pos, &val)
		res.findings = append(res.findings, g.finding(report.BackpointerToMissingAlloc, i, b, &pos, bp.BtreeExtents, 0, &orphan, "backpointer in a bucket without alloc key"))
	}
	for m := 0; m < g.p.Inject[KindBPPastEnd]; m++ {
		i := m % nd
		d := g.devs[i]
		b := d.nbuckets + 4096 + uint64(m/nd)
		pos := bp.Pos{Inode: uint64(i), Offset: b * d.bucketSectors << g.f.shift}
		val := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataUser, BucketLen: blockSectors, Pos: orphan}
		addBP(pos, &val)
		res.findings = append(res.findings, g.finding(report.BackpointerToMissingAlloc, i, b, &pos, bp.BtreeExtents, 0, &orphan, "backpointer in a bucket past the device's end"))
	}
	for m := 0; m < g.p.Inject[KindMissingDevice]; m++ {
		pos := bp.Pos{Inode: uint64(nd), Offset: uint64(m+1) * blockSectors << g.f.shift}
		val := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataUser, BucketLen: blockSectors, Pos: orphan}
		addBP(pos, &val)
		res.findings = append(res.findings, g.finding(report.BackpointerToMissingDevice, -1, 0, &pos, bp.BtreeExtents, 0, &orphan, "backpointer for a device that does not exist"))
	}
	for i := range tailBPs {
		s := tailBPs[i]
		sort.Slice(s, func(a, b int) bool { return s[a].pos.Less(s[b].pos) })
	}
	if err := g.perDeviceBtree(res, t, bp.BtreeBackpointers, bp.KeyBackpointer, g.bps, tailBPs); err != nil {
		return nil, err
	}

	// alloc: the open data bucket, the node buckets, the superblock at the
	// end of the device.
	tailAlloc := make([][]tailKey, nd)
	var lru []tailKey
	for i, d := range g.devs {
		add := func(b uint64, dt bp.DataType, dirty, jseq, wtime uint64) {
			tailAlloc[i] = append(tailAlloc[i], tailKey{pos: bp.Pos{Inode: uint64(i), Offset: b}, val: allocVal(nil, dt, dirty, jseq, wtime)})
			if (dt == bp.DataUser || dt == bp.DataBtree) && dirty > 0 && dirty < d.bucketSectors {
				lru = append(lru, tailKey{pos: g.fragLRUPos(d, b, dirty)})
			}
		}
		if d.dataOpen {
			dirty := g.dataBucketDirty(d)
			if g.wrongDirt[i] {
				res.findings = append(res.findings, g.finding(report.AllocKeyDirtySectorsWrong, i, d.dataBucket, nil, 0, 0, nil,
					fmt.Sprintf("dirty_sectors %d, want %d", dirty, d.dataUsed+d.dataDup)))
			}
			add(d.dataBucket, bp.DataUser, dirty, g.journalSeq, g.src.clock)
		}
		d.nodeBuckets(&state[i], g.nodeSectors, func(b, slots uint64) {
			add(b, bp.DataBtree, slots*g.nodeSectors, g.journalSeq, g.src.clock)
		})
		for b := d.sbEndBucket; b < d.nbuckets; b++ {
			if n := d.sbSectorsIn(b); n > 0 {
				add(b, bp.DataSB, n, 0, 1)
			}
		}
		for m := i; m < g.p.Inject[KindAllocPastEnd]; m += nd {
			// A free bucket's key (no need_discard, no need_inc_gen: a
			// key the kernel's validation accepts).
			b := d.nbuckets + uint64(m/nd)
			a := bp.AllocV4{Flags: bp.AllocFlags(false, false, 8), DataType: bp.DataFree, IOTime: [2]uint64{1, 0}}
			v := make([]byte, bp.AllocV4Bytes)
			a.Put(v)
			pos := bp.Pos{Inode: uint64(i), Offset: b}
			tailAlloc[i] = append(tailAlloc[i], tailKey{pos: pos, val: v})
			res.findings = append(res.findings, g.finding(report.AllocKeyToMissingDevBucket, i, b, nil, bp.BtreeAlloc, 0, &pos, "alloc key past the device's last bucket"))
		}
	}
	if err := g.perDeviceBtree(res, t, bp.BtreeAlloc, bp.KeyAllocV4, g.alloc, tailAlloc); err != nil {
		return nil, err
	}

	// freespace: one extent-like key per free run (gens are all 0).
	var free []tailKey
	holes := g.p.Inject[KindFreespaceHole]
	for i, d := range g.devs {
		if res.free[i] > 0 {
			end := state[i].lowest(d)
			size := uint32(res.free[i])
			if holes > 0 && size > 1 {
				// The run's first buckets (up to 300, so that the hole
				// spans a group of 256), left out: a hole of the alloc
				// btree (free buckets have no alloc key) no freespace
				// key covers, one finding (the fsck repairs the run at
				// once).
				holes--
				first := end - uint64(size)
				n := min(size-1, 300)
				size -= n
				res.findings = append(res.findings, g.finding(report.FreespaceHoleMissing, i, first, nil, bp.BtreeFreespace, 0, &bp.Pos{},
					fmt.Sprintf("device %d buckets %d-%d", i, first, first+uint64(n))))
			}
			free = append(free, tailKey{pos: bp.Pos{Inode: uint64(i), Offset: end}, size: size})
		}
	}
	if holes > 0 {
		return nil, fmt.Errorf("gen: %d more freespace holes asked for than devices with free buckets", holes)
	}
	if err := g.smallBtree(res, t, bp.BtreeFreespace, free); err != nil {
		return nil, err
	}
	if g.ec != nil {
		lru = append(lru, g.ec.lru...)
	}
	sort.Slice(lru, func(a, b int) bool { return lru[a].pos.Less(lru[b].pos) })
	if n := g.p.Inject[KindMissingLRU]; n > 0 {
		// Drop n entries spread over the lru (bucket fragmentation
		// entries: their offset names a bucket).
		if n > len(lru) {
			return nil, fmt.Errorf("gen: %d lru entries to drop, but only %d partly filled buckets", n, len(lru))
		}
		drop := map[int]bool{}
		for j := 0; j < n; j++ {
			drop[j*len(lru)/n] = true
		}
		kept := lru[:0]
		for j, e := range lru {
			if !drop[j] {
				kept = append(kept, e)
				continue
			}
			pos := e.pos
			res.findings = append(res.findings, g.finding(report.AllocKeyToMissingLRUEntry, int(pos.Offset>>48), pos.Offset&(1<<48-1), nil, btreeLRU, 0, &pos,
				"fragmentation lru entry dropped"))
		}
		lru = kept
	}
	if err := g.smallBtree(res, t, btreeLRU, lru); err != nil {
		return nil, err
	}
	if g.ec != nil {
		if err := g.smallBtree(res, t, bp.BtreeStripes, g.stripeKeys()); err != nil {
			return nil, err
		}
		if g.f.bucketToStripe {
			if err := g.smallBtree(res, t, btreeBucketToStripe, g.bucketToStripeKeys()); err != nil {
				return nil, err
			}
		}
	}
	if err := g.fsBtrees(res, t); err != nil {
		return nil, err
	}
	if err := g.smallBtree(res, t, btreeAccounting, g.accountingKeys(all, state, res)); err != nil {
		return nil, err
	}
	res.nodes = t.nodes
	return res, nil
}

// fragLRUPos is the position of the fragmentation lru entry of bucket b
// of d holding dirty sectors (alloc_lru_idx_fragmentation): lru id
// 0xffff, the one fragmentation lru, before 1.39; 8192 + device from 1.39
// (per_dev_fragmentation_lru); the offset is bucket_to_u64.
func (g *generator) fragLRUPos(d *device, b, dirty uint64) bp.Pos {
	idx := dirty << 31 / d.bucketSectors
	id := uint64(0xffff)
	if g.f.perDevFragLRU {
		id = 1<<13 + uint64(d.idx)
	}
	return bp.Pos{Inode: id<<48 | idx, Offset: uint64(d.idx)<<48 | b}
}

// fsBtrees writes the root snapshot, snapshot tree, subvolume and the
// inode allocation cursor.
func (g *generator) fsBtrees(res *tailResult, t *tailSink) error {
	for _, b := range []struct {
		id  bp.BtreeID
		key tailKey
	}{
		{btreeSubvolumes, tailKey{pos: bp.Pos{Offset: rootSubvol}, typ: keySubvolume, val: subvolumeVal(g.f)}},
		{btreeSnapshots, tailKey{pos: bp.Pos{Offset: math.MaxUint32}, typ: keySnapshot, val: snapshotVal(g.f)}},
		{btreeSnapshotTrees, tailKey{pos: bp.Pos{Offset: 1}, typ: keySnapshotTree, val: snapshotTreeVal()}},
		{btreeLoggedOps, tailKey{pos: bp.Pos{Inode: 1, Offset: g.f.inodeCursor}, typ: keyInodeAllocCursor, val: inodeCursorVal(g.ns.nextIno)}},
	} {
		if err := g.smallBtree(res, t, b.id, []tailKey{b.key}); err != nil {
			return err
		}
	}
	return nil
}

// addRoot builds the interior levels over leaves and records the root.
func (g *generator) addRoot(res *tailResult, t *tailSink, id bp.BtreeID, leaves []*nodeInfo) error {
	if len(leaves) == 0 {
		return nil
	}
	root, err := buildInterior(t, id, leaves)
	if err != nil {
		return err
	}
	res.roots[id] = root
	return nil
}

// perDeviceBtree finishes a btree kept per device (backpointers, alloc):
// each device's part continues its streaming writer with the tail keys
// and ends where the next device's part begins.
func (g *generator) perDeviceBtree(res *tailResult, t *tailSink, id bp.BtreeID, typ bp.KeyType, ws []*btreeWriter, tail [][]tailKey) error {
	nd := len(g.devs)
	nonempty := make([]bool, nd)
	first := -1
	for i := range ws {
		nonempty[i] = !ws[i].empty() || len(tail[i]) > 0
		if nonempty[i] && first < 0 {
			first = i
		}
	}
	var leaves []*nodeInfo
	for i := 0; i < nd; i++ {
		if !nonempty[i] {
			continue
		}
		w := ws[i].cloneTo(t)
		if i == first && i > 0 {
			// The first part of the btree starts at POS_MIN.
			if len(ws[i].nodes) > 0 {
				return fmt.Errorf("gen: btree %s: device %d holds the first keys but its nodes start at %s", id, i, devStart(i))
			}
			old := w.cur
			w.cur = t.newBuf()
			w.cur.reset(bp.PosMin)
			w.cur.addAll(old, old.keys)
		}
		for _, k := range tail[i] {
			if err := w.add(k.pos, k.size, typ, k.val); err != nil {
				return err
			}
		}
		end := bp.SPosMax
		for e := i + 1; e < nd; e++ {
			if nonempty[e] {
				end = bp.Pos{Inode: uint64(e - 1), Offset: math.MaxUint64, Snapshot: math.MaxUint32}
				break
			}
		}
		if err := w.finish(end); err != nil {
			return err
		}
		leaves = append(leaves, ws[i].nodes...)
		leaves = append(leaves, w.nodes...)
	}
	return g.addRoot(res, t, id, leaves)
}

// smallBtree writes a btree made entirely in the tail. It always has a
// root, empty if need be: whether the lru has keys depends on whether the
// lowest btree bucket is full, which depends on the number of nodes, so
// an lru that came and went with its own node would keep the tail from
// settling.
func (g *generator) smallBtree(res *tailResult, t *tailSink, id bp.BtreeID, keys []tailKey) error {
	w := newBtreeWriter(t, id, 0, bp.PosMin)
	if len(keys) == 0 {
		info, err := t.emit(id, 0, w.cur, bp.SPosMax)
		if err != nil {
			return err
		}
		res.roots[id] = info
		return nil
	}
	for _, k := range keys {
		typ := k.typ
		if typ == 0 {
			typ = bp.KeySet
		}
		if err := w.add(k.pos, k.size, typ, k.val); err != nil {
			return err
		}
	}
	if err := w.finish(bp.SPosMax); err != nil {
		return err
	}
	return g.addRoot(res, t, id, w.nodes)
}
