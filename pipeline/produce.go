// The producers and the emitter: tasks walk the pointer btrees and emit one
// record per pointer into per-shard batches.

package pipeline

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"

	"bpcheck/accounting"
	"bpcheck/aio"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/report"
	"bpcheck/shard"
)

// batchSize is the number of records sent to a shard at once.
const batchSize = 1024

// batchPool recycles record batches between producers and shards.
var batchPool = sync.Pool{New: func() any {
	b := make([]shard.Ref, 0, batchSize)
	aio.Prefault(b) // fresh memory about to be filled: populated at once
	return &b
}}

func getBatch() []shard.Ref { return (*batchPool.Get().(*[]shard.Ref))[:0] }

func putBatch(b []shard.Ref) { batchPool.Put(&b) }

// task is a subtree to walk: the node that key points to, at level.
type task struct {
	btree bp.BtreeID
	level uint8
	key   bp.Key
	val   []byte
	// root marks the root pointer itself: its pointers need backpointers
	// at level+1, emitted by the task.
	root bool
	// topOnly: read only the node the key points to (its children are
	// tasks of their own).
	topOnly bool
	// leaves: instead of the node the key points to, walk these leaves
	// (a group of a level-1 root's children, copied when the root was
	// read), reading ahead in key order.
	leaves []btreeio.NodeKey
}

// minLevel is the lowest level a producer reads in btree id: leaves only
// in the data btrees; elsewhere the pointers are all in interior nodes.
func (c *checker) minLevel(id bp.BtreeID) uint8 {
	if id.HasDataPtrs(c.fs.SB.Version) {
		return 0
	}
	return 1
}

// rootTasks lists the producers' work: per btree the root pointer and its
// node, and when the root node's children must be read too, one task per
// child, so that producers share the big btrees. A root node that cannot
// be read stays one task, whose walk reports it.
func (c *checker) rootTasks() ([]task, error) {
	var tasks []task
	for _, r := range c.fs.Roots {
		t := task{btree: r.Btree, level: r.Level, key: r.Key, val: r.Val, root: true}
		if r.Level == 0 || r.Level-1 < c.minLevel(r.Btree) {
			tasks = append(tasks, t)
			continue
		}
		n, err := c.fs.ReadNode(r.Btree, r.Level, &r.Key, r.Val)
		if err != nil {
			tasks = append(tasks, t)
			continue
		}
		t.topOnly = true
		tasks = append(tasks, t)
		if r.Level == 1 {
			// The children are leaves: a task per leaf would read them
			// one at a time; groups of consecutive leaves are read ahead.
			tasks = append(tasks, c.leafGroupTasks(r, n)...)
			c.fs.Release(n)
			continue
		}
		for i := range n.Keys {
			k := &n.Keys[i]
			if k.Key.Type != bp.KeyBtreePtrV2 && k.Key.Type != bp.KeyBtreePtr {
				continue
			}
			tasks = append(tasks, task{btree: r.Btree, level: r.Level - 1, key: k.Key, val: append([]byte(nil), k.Val...)})
		}
		c.fs.Release(n)
	}
	return tasks, nil
}

// leafGroupTasks cuts the leaf children of level-1 root node n into
// groups of consecutive leaves (leafGroups), one task each, with copies
// of their pointers (the node's memory goes back to the pool).
func (c *checker) leafGroupTasks(r btreeio.Root, n *btreeio.Node) []task {
	var kids []btreeio.NodeKey
	for i := range n.Keys {
		k := &n.Keys[i]
		if k.Key.Type != bp.KeyBtreePtrV2 && k.Key.Type != bp.KeyBtreePtr {
			continue
		}
		kids = append(kids, btreeio.NodeKey{Key: k.Key, Val: append([]byte(nil), k.Val...)})
	}
	if len(kids) == 0 {
		return nil
	}
	return leafTasks(r.Btree, kids, c.opt.Workers)
}

// emitter batches records per shard for one producer.
type emitter struct {
	c      *checker
	shards []*shard.Shard
	chans  []chan []shard.Ref
	bufs   [][]shard.Ref
	lo, hi shard.BucketKey
	ctx    context.Context
	count  bool // this pass counts statistics (pass 0)
	// noFast keeps every key on the general path (emitKeyPtrs), for the
	// test that compares it with emitExtentFast.
	noFast bool
	stats  Stats
	pass   int
	// his holds the shards' upper bucket bounds (shards[i].Hi), in order.
	his []shard.BucketKey
	// apply, when set, lets the producer apply a full batch to a loaded
	// shard itself while nobody else applies to it (see runPass), instead
	// of handing it to the shard's worker.
	apply *applyLocks
	// pk is the producer's scratch for keys decoded from a packed leaf
	// (the key being emitted and the one after it).
	pk [2]bp.Key
	// fast is emitExtentFast's scratch (a field, not a local, so that it
	// is not zeroed per extent).
	fast [fastPtrsMax]fastPtr
	// scratch of emitKeyPtrs, kept here so the hot loop fills memory in
	// place instead of copying returned structs
	ptrIt bp.PtrIter
	ptr   bp.DecodedPtr
	bpv   bp.Backpointer
	// acct sums the accounting the pointers imply (first pass only).
	acct *acctSums
	// The runs of fast-path extents not yet added to acct (acctExtent):
	// replicas entries in their slots (runSlot), each with its
	// signature and sectors, nRuns of them, all of one snapshot
	// (runSnap) where the era counts per snapshot. runSnapMask
	// keeps the snapshot where the era counts per snapshot (up to 1.31,
	// acctSums.snapshotCount, and from 1.39), else 0; runSnapKeys: the
	// era of 1.39's per-snapshot key counters.
	runs        [runSlots]acctRun
	nRuns       int
	runSnap     uint32
	runSnapMask uint32
	runSnapKeys bool
	// only, when set, limits the records to its buckets (a recheck).
	only *shard.BucketSet
	// track (each pass of a digest check, not its rechecks): the devices and bucket
	// numbers of the records of the data leaf being emitted are tracked
	// in leafDevs, leafBlo and leafBhi, and each leaf's ranges are logged
	// in leaves (leafRange), so that a recheck reads only the leaves that
	// may hold its buckets' pointers.
	track            bool
	leafDevs         uint64
	leafBlo, leafBhi uint64
	leaves           []leafRange
}

// recheck makes e a recheck's emitter: records only of the buckets of
// only; nothing counted, summed or reported again, nothing shown as
// progress (the pass's own walk did all that).
func (e *emitter) recheck(only *shard.BucketSet) {
	e.only, e.count, e.acct = only, false, nil
	e.runSnapMask, e.runSnapKeys = 0, false
}

// applyLocks serialise the application of records to the shards of a
// pass: each shard's worker and the producers that apply batches
// themselves take mu[i] to apply to shard i, which they may do once
// loaded[i] is set.
type applyLocks struct {
	mu     []sync.Mutex
	loaded []atomic.Bool
}

// inlineApply lets producers apply batches themselves (tests turn it off
// to compare); appliedInline counts the batches they applied.
var (
	inlineApply   = true
	appliedInline atomic.Int64
)

func newApplyLocks(n int) *applyLocks {
	return &applyLocks{mu: make([]sync.Mutex, n), loaded: make([]atomic.Bool, n)}
}

// newEmitter returns an emitter of records for the shards of one pass,
// which cover [lo, hi).
func newEmitter(ctx context.Context, c *checker, shards []*shard.Shard, chans []chan []shard.Ref, lo, hi shard.BucketKey, pass int) *emitter {
	e := &emitter{c: c, shards: shards, chans: chans, bufs: make([][]shard.Ref, len(shards)), lo: lo, hi: hi, ctx: ctx, count: pass == 0, pass: pass}
	if pass == 0 {
		e.acct = &acctSums{snapshotCount: c.fs.SB.Version <= bp.VersionBtreeNodeAccounting,
			snapshotKeys: c.fs.SB.Version >= bp.VersionPerDevFragmentationLRU}
		if e.acct.snapshotCount || e.acct.snapshotKeys {
			e.runSnapMask = ^uint32(0)
		}
		e.runSnapKeys = e.acct.snapshotKeys
	}
	e.his = make([]shard.BucketKey, len(shards))
	for i, sh := range shards {
		e.his[i] = sh.Hi
	}
	return e
}

// shardOf returns the index of the shard whose bucket range holds k, or
// len(e.shards) when none does: a binary search whose steps are
// conditional moves, not branches. Consecutive pointers often go to
// different shards at random (replicas, devices, files), and a
// mispredicted search step cost more than the whole search.
func (e *emitter) shardOf(k shard.BucketKey) int {
	his := e.his
	if len(his) == 0 {
		return 0
	}
	// step is half when his[base+half-1] <= k (no borrow in k - his[…]),
	// else 0: a mask, so that the compiler emits no branch.
	base, n := 0, len(his)
	for n > 1 {
		half := n >> 1
		_, borrow := bits.Sub64(uint64(k), uint64(his[base+half-1]), 0)
		base += half &^ -int(borrow)
		n -= half
	}
	_, borrow := bits.Sub64(uint64(k), uint64(his[base]), 0)
	return base + int(1-borrow)
}

func (e *emitter) emit(r *shard.Ref) error {
	i, dst := e.slot(r.Bucket)
	if dst == nil {
		return nil
	}
	*dst = *r
	return e.commit(i)
}

// slot returns a place for a record of bucket in the batch of shard i, or
// nil when no shard of this pass holds the bucket. The record is sent
// only when commit(i) is called.
func (e *emitter) slot(bucket shard.BucketKey) (i int, r *shard.Ref) {
	if e.track {
		e.seen(bucket)
	}
	if bucket < e.lo || bucket >= e.hi || e.only != nil && !e.only.Has(bucket) {
		return 0, nil
	}
	i = e.shardOf(bucket)
	if i >= len(e.shards) {
		return 0, nil
	}
	b := e.bufs[i]
	if len(b) == cap(b) { // a batch not yet taken, or a short one
		b = e.room(i)
	}
	// The batch's header is left as it is until commit: rewriting it for
	// every record cost more than the record.
	return i, &b[:len(b)+1][len(b)]
}

// room makes space for one more record in shard i's full (or not yet
// taken) batch and returns the batch.
func (e *emitter) room(i int) []shard.Ref {
	b := e.bufs[i]
	if cap(b) == 0 {
		// A whole batch at once: grown record by record, the first batch
		// of each shard was reallocated a dozen times (fresh memory,
		// page faults).
		b = getBatch()
	} else {
		b = append(b, shard.Ref{})[:len(b)]
	}
	e.bufs[i] = b
	return b
}

// commit adds the record slot last returned for shard i to its batch.
func (e *emitter) commit(i int) error {
	e.bufs[i] = e.bufs[i][:len(e.bufs[i])+1]
	if len(e.bufs[i]) >= batchSize {
		return e.flushOne(i)
	}
	return nil
}

func (e *emitter) flushOne(i int) error {
	if len(e.bufs[i]) == 0 {
		return nil
	}
	if a := e.apply; a != nil && inlineApply && a.loaded[i].Load() && a.mu[i].TryLock() {
		// The shard is loaded and nobody applies to it: apply the batch
		// here. Handing every batch over woke the shard's worker for
		// each (and parked it again): most of a check's thread wakeups
		// and context switches. The order in which records reach a
		// shard does not change its findings. A producer that never
		// blocks on a channel still stops at a cancel here.
		select {
		case <-e.ctx.Done():
			a.mu[i].Unlock()
			return e.ctx.Err()
		default:
		}
		e.shards[i].Apply(e.bufs[i])
		a.mu[i].Unlock()
		e.bufs[i] = e.bufs[i][:0]
		appliedInline.Add(1)
		return nil
	}
	select {
	case e.chans[i] <- e.bufs[i]:
	case <-e.ctx.Done():
		return e.ctx.Err()
	}
	e.bufs[i] = getBatch()
	return nil
}

func (e *emitter) flush() error {
	for i := range e.bufs {
		if err := e.flushOne(i); err != nil {
			return err
		}
	}
	return nil
}

// emitKeyPtrs emits the records of every pointer of key k held at level in
// btree (level ≥ 1: btree node pointers; 0: data pointers).
func (e *emitter) emitKeyPtrs(btree bp.BtreeID, level uint8, k *bp.Key, val []byte) error {
	if e.acct != nil && level == 0 {
		if e.acct.snapshotKeys && btree == bp.BtreeExtents && k.Pos.Snapshot != 0 {
			e.acct.snapKey(k)
		}
		if k.Type == bp.KeyReservation && len(val) >= 5 {
			// bch2_trigger_reservation: persistent_reserved by
			// nr_replicas (the value: le32 generation, u8 nr_replicas)
			// counts its size; from 1.39 the snapshot's sectors its
			// size times nr_replicas.
			e.acct.counters(accounting.PersistentReserved(val[4])).V[0] += int64(k.Size)
			if e.acct.snapshotKeys && btree == bp.BtreeExtents && k.Pos.Snapshot != 0 {
				e.acct.snapKeyCounters(k.Pos.Snapshot).V[2] += int64(k.Size) * int64(val[4])
			}
			return nil
		}
	}
	if level == 0 && !e.noFast && (k.Type == bp.KeyExtent || k.Type == bp.KeyReflinkV) {
		// The value entries as bp.ValueEntries finds them, without its
		// call (this runs once per extent); a short value goes below.
		if skip, _ := bp.EntriesStart(k.Type); len(val) >= skip {
			if done, err := e.emitExtentFast(btree, k, val[skip:]); done {
				return err
			}
		}
	}
	return e.emitKeyPtrsSlow(btree, level, k, val)
}

// emitKeyPtrsSlow is emitKeyPtrs for the keys the fast path does not
// take. Its own function: its large frame and deferred accounting had
// been set up for every extent, fast or not (~2.5 % of a check's CPU).
func (e *emitter) emitKeyPtrsSlow(btree bp.BtreeID, level uint8, k *bp.Key, val []byte) error {
	c := e.c
	entries, ok, err := bp.ValueEntries(k.Type, val)
	if !ok {
		return nil
	}
	if e.count {
		e.stats.Keys++
		if level == 0 {
			e.stats.Extents++
		}
	}
	if err != nil {
		if e.count {
			c.addError(fmt.Errorf("btree %s level %d key %s: %w", btree.Name(c.fs.SB.Version), level, k.Pos, err))
		}
		return nil
	}
	var acct acctKey // the key's replicas entry (first pass), summed as the pointers go by
	if e.acct != nil {
		defer e.acct.finishKey(btree, level, k, &acct)
		acct.start(c.geo, level, k)
	}
	var reconcile uint32
	if level == 0 && c.anyRotational {
		reconcile = bp.ReconcilePhys(entries, c.fs.SB.ExtentTypeU64s)
	}
	it := &e.ptrIt
	it.Reset(entries, k.Size, c.fs.SB.ExtentTypeU64s)
	d := &e.ptr
	v := &e.bpv
	for {
		ok, err := it.NextInto(d)
		if err != nil && e.count {
			c.addError(fmt.Errorf("btree %s level %d key %s: %w", btree.Name(c.fs.SB.Version), level, k.Pos, err))
		}
		if !ok {
			return nil
		}
		if e.count {
			e.stats.Pointers++
			e.stats.PerDev[d.Ptr.Dev].Pointers++
		}
		m := c.fs.SB.Member(d.Ptr.Dev)
		if e.acct != nil && (m != nil || d.Ptr.Dev == 0xff) {
			e.acct.ptr(&acct, d)
		}
		if m == nil {
			if d.Ptr.Dev == 0xff && d.HasStripe && e.count && c.stripeBPsChecked() {
				// A removed device's erasure-coded pointer: its
				// backpointer is in stripe_backpointers.
				c.addStripeBP(btree, level, k, d)
			}
			if d.Ptr.Dev != 0xff && e.count && e.pass == 0 {
				c.addFinding(report.Finding{Code: report.PtrToInvalidDevice, Dev: -1, Btree: btree.Name(c.fs.SB.Version), Level: int(level), Pos: k.Pos,
					KeyType: k.Type.String(), Detail: fmt.Sprintf("pointer to device %d, which is not a member", d.Ptr.Dev)})
			}
			continue
		}
		bucket := shard.MakeBucketKey(uint64(d.Ptr.Dev), m.BucketOf(d.Ptr.Offset))
		if e.track {
			e.seen(bucket)
		}
		if bucket < e.lo || bucket >= e.hi {
			continue // another pass's buckets
		}
		bpPos := c.geo.ExpectedBPInto(v, btree, level, k, d, reconcile)
		si, r := e.slot(bucket)
		if r == nil {
			continue
		}
		// Field by field: the batch slot is written in place (a composite
		// literal is built on the stack and copied with wide loads that
		// stall on its narrow stores).
		r.Kind = shard.RefPtr
		r.KeyType = k.Type
		r.NeedsBP = level > 0 || c.geo.NeedsBP(d)
		r.Cached = d.Ptr.Cached
		r.Gen = d.Ptr.Gen
		r.DataType = v.DataType
		if d.Ptr.Cached {
			r.DataType = bp.DataCached
		}
		r.StripeBlock = 0
		r.Sectors = v.BucketLen
		r.StripeCount = 0
		r.Bucket = bucket
		r.BPOff = bpPos.Offset // its inode is the device, its snapshot 0
		v.Encode(r.BPVal[:], c.formatB)
		if err := e.commit(si); err != nil {
			return err
		}
	}
}

// emitStripePtrs emits the records of a stripe key's block pointers
// (v1.36.1 mark_stripe_buckets / mark_stripe_bp): every block is one
// stripe reference of its bucket; a parity block also puts the stripe's
// sectors in the bucket's dirty_sectors. From 1.22 (stripe_backpointers)
// every block needs a backpointer at the end of its block
// (bch2_extent_ptr_to_bp_pos for stripes), parity blocks of type parity,
// data blocks of type user, bucket_len the stripe key's size (0).
func (e *emitter) emitStripePtrs(btree bp.BtreeID, k *bp.Key, val []byte) error {
	c := e.c
	st, ptrs, err := bp.DecodeStripe(val)
	if e.count {
		e.stats.Keys++
	}
	if err != nil {
		if e.count {
			c.addError(fmt.Errorf("btree %s key %s: %w", btree.Name(c.fs.SB.Version), k.Pos, err))
		}
		return nil
	}
	needsBP := c.formatB && c.fs.SB.Version >= bp.VersionStripeBackpointers
	if e.acct != nil {
		var devs [256]uint8
		n := 0
		for i := 0; i < int(st.NrBlocks) && 8*i+8 <= len(ptrs); i++ {
			devs[n] = uint8(binary.LittleEndian.Uint64(ptrs[8*i:]) >> 48)
			n++
		}
		e.acct.stripe(k, &st, val, devs[:min(n, 16)])
	}
	for i := 0; i < int(st.NrBlocks); i++ {
		ptr := bp.DecodePtr(binary.LittleEndian.Uint64(ptrs[8*i:]))
		m := c.fs.SB.Member(ptr.Dev)
		if m == nil || m.BucketSize == 0 {
			continue
		}
		if e.count {
			e.stats.Pointers++
			e.stats.PerDev[ptr.Dev].Pointers++
		}
		v := bp.Backpointer{BtreeID: btree, Level: 0, DataType: bp.DataUser, BucketGen: ptr.Gen, BucketLen: k.Size, Pos: k.Pos}
		if c.fs.SB.Version >= bp.VersionErasureCoding && c.rotational[ptr.Dev] && st.NeedsReconcile() {
			// 1.37+: a stripe that needs reconciling is hipri work
			// (bch2_bkey_reconcile_work_id), recorded in its blocks'
			// backpointers on rotational members.
			v.Flags |= 1
		}
		var sectors, count uint32
		if i >= int(st.NrBlocks)-int(st.NrRedundant) {
			v.DataType = bp.DataParity
			sectors = uint32(st.Sectors)
		}
		if n, ok := st.BlockCount(val, i); ok {
			count = uint32(n) + 1
		}
		r := shard.Ref{
			Kind:        shard.RefStripe,
			Bucket:      shard.MakeBucketKey(uint64(ptr.Dev), ptr.Offset/uint64(m.BucketSize)),
			BPOff:       (ptr.Offset+uint64(st.Sectors))<<c.shift - 1,
			KeyType:     k.Type,
			NeedsBP:     needsBP,
			Gen:         ptr.Gen,
			DataType:    v.DataType,
			Sectors:     sectors,
			StripeBlock: uint8(i),
			StripeCount: count,
		}
		v.Encode(r.BPVal[:], c.formatB)
		if err := e.emit(&r); err != nil {
			return err
		}
	}
	return nil
}

// producer is a btreeio.Visitor that emits the records of the nodes it
// is handed.
type producer struct {
	e         *emitter
	dataBtree bool
	// q, when set, takes the leaves of wide level-1 nodes that this
	// producer's walk shares out (ShareLeaves).
	q *taskQueue
	// skip: Node skips the keys up to skipTo, which PackedLeaf emitted
	// before it met a key it leaves to the general rules.
	skip   bool
	skipTo bp.Pos
}

func (p *producer) Node(n *btreeio.Node) error {
	e := p.e
	p.countNode(n)
	if e.count {
		for _, pr := range n.Problems {
			e.c.addError(pr)
		}
	}
	if n.Level == 0 && !p.dataBtree {
		return nil
	}
	if e.track {
		e.leafStart()
		defer e.leafEnd(n)
	}
	if e.only != nil && !e.c.nodeLogged(n) {
		// A recheck: the pass could not read this node (leafSkip); its
		// children, if read now, were logged or are ignored in turn.
		p.skip = false
		return nil
	}
	skip, skipTo := p.skip, p.skipTo
	p.skip = false
	for i := range n.Keys {
		k := &n.Keys[i]
		if skip && !skipTo.Less(k.Key.Pos) {
			continue // emitted by PackedLeaf
		}
		if n.Level > 0 && k.Key.Type != bp.KeyBtreePtrV2 && k.Key.Type != bp.KeyBtreePtr {
			continue
		}
		if n.Level == 0 && k.Key.Type == bp.KeyStripe {
			if err := e.emitStripePtrs(n.BtreeID, &k.Key, k.Val); err != nil {
				return err
			}
			continue
		}
		if err := e.emitKeyPtrs(n.BtreeID, n.Level, &k.Key, k.Val); err != nil {
			return err
		}
	}
	return nil
}

// countNode counts a node for the progress display and (pass 0) the
// statistics.
func (p *producer) countNode(n *btreeio.Node) {
	e := p.e
	if e.only == nil {
		e.c.opt.Progress.addNode()
	}
	if e.count {
		e.stats.Nodes++
		e.stats.NodeBytes += int64(n.SectorsWritten) * btreeio.SectorSize
	}
}

// PackedLeaf emits the records of a data btree leaf straight from its
// packed bset, decoding one key ahead of the one it emits: a key is
// emitted once the next key sorts after it, so a deleted key followed by
// a key at its position emits only the latter, and deleted keys are not
// emitted, exactly the keys the decoded node would hold. A key out of
// order, at the position of a key that is not deleted, or one that does
// not decode is a problem of the node: the keys emitted so far
// are the decoded node's first keys, so PackedLeaf returns false and Node
// takes the decoded node from the first key after them (its problems are
// then reported after the errors of the keys already emitted).
func (p *producer) PackedLeaf(n *btreeio.Node) (bool, error) {
	u, data, ok := n.Packed()
	if !ok || n.Level != 0 || !p.dataBtree {
		return false, nil
	}
	e := p.e
	if e.track {
		e.leafStart()
		defer e.leafEnd(n)
	}
	if e.only != nil && !e.c.nodeLogged(n) {
		return true, nil // the pass could not read it (leafSkip)
	}
	cur, next := &e.pk[0], &e.pk[1]
	var curVal []byte
	have, emitted := false, false
	var last bp.Pos // the last key emitted
	emit := func(k *bp.Key, val []byte) error {
		emitted, last = true, k.Pos
		switch k.Type {
		case bp.KeyDeleted:
			return nil
		case bp.KeyStripe:
			return e.emitStripePtrs(n.BtreeID, k, val)
		}
		return e.emitKeyPtrs(n.BtreeID, 0, k, val)
	}
	for off := 0; off < len(data); {
		if data[off] == 0 {
			return p.handOver(emitted, last)
		}
		val, err := u.DecodeKeyInto(next, data[off:])
		if err != nil || n.Max.Less(next.Pos) || !have && next.Pos.Less(n.Min) {
			// Undecodable, or outside the node's range: Node drops it
			// and reports it. Keys only increase, so only the first can
			// lie before the node's min.
			return p.handOver(emitted, last)
		}
		if have {
			switch next.Pos.Cmp(cur.Pos) {
			case -1:
				return p.handOver(emitted, last)
			case 0:
				if !btreeio.RepeatReplaces(cur.Type, next.Type) {
					// Node drops the later key and reports it.
					return p.handOver(emitted, last)
				}
			case 1:
				if err := emit(cur, curVal); err != nil {
					return true, err
				}
			}
		}
		cur, next = next, cur
		curVal, have = val, true
		off += int(data[off]) * 8
	}
	if have {
		if err := emit(cur, curVal); err != nil {
			return true, err
		}
	}
	p.countNode(n)
	return true, nil
}

// handOver leaves the rest of a leaf to Node: the keys up to last, if
// any were emitted, are skipped there.
func (p *producer) handOver(emitted bool, last bp.Pos) (bool, error) {
	p.skip, p.skipTo = emitted, last
	return false, nil
}

// SkipLeaf leaves a data leaf unread in a recheck when the first pass
// logged the buckets of all its records and none is rechecked
// (btreeio.LeafFilter).
func (p *producer) SkipLeaf(id bp.BtreeID, k *bp.Key) bool {
	e := p.e
	if e.only == nil || !p.dataBtree {
		return false
	}
	if e.c.leafSkip(id, k.Pos, e.only) {
		return true
	}
	e.c.recheckLeaves.Add(1)
	return false
}

func (p *producer) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	c := p.e.c
	c.nodeLost(&c.lost.Owners, btree, level, parent, err)
	return nil
}
