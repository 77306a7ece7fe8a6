// Package pipeline runs bpcheck's check: producers walk every btree's
// interior nodes and the leaves of the data btrees and stream pointer
// records, sharded by bucket range, to per-shard workers that hold their
// slice of the backpointers and alloc btrees in RAM (package shard). A
// filesystem whose backpointers do not fit the memory budget is checked in
// several passes over bucket ranges, with the same findings.
package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"bpcheck/aio"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/listfmt"
	"bpcheck/report"
	"bpcheck/shard"
)

// DefaultPrefetch is how many leaves a walk reads ahead unless told
// otherwise (`bpcheck check --prefetch`).
const DefaultPrefetch = 8

// Options tune a check.
type Options struct {
	// Workers is the number of producer goroutines (default GOMAXPROCS).
	Workers int
	// MemoryBudget is the most memory the shards of one pass may pin, in
	// bytes; the plan uses as many passes as needed.
	MemoryBudget int64
	// Shards is the number of shards per pass (default: Workers).
	Shards int
	// Progress, if set, is updated as the check runs.
	Progress *Progress
	// Prefetch is how many leaves each walk reads ahead (0: none; the
	// command's default is DefaultPrefetch); Run lowers it under a small
	// MemoryBudget. Leaves are visited with their keys packed only on
	// read-ahead walks.
	Prefetch int
	// Async reads the prefetched leaves through package aio with
	// AsyncBackend (io_uring where the kernel allows, else a pread pool).
	Async        bool
	AsyncBackend aio.Backend
}

// Stats counts what a check read.
type Stats struct {
	Nodes, NodeBytes, Keys, Extents, Pointers int64
	Backpointers, AllocKeys, Buckets          int64
	// PerDev counts per member device: pointers into it (from keys read
	// in pass 0) and its backpointers.
	PerDev [256]DevStats
	// LoadNodes and LoadBytes count the backpointer and alloc leaves the
	// loaders read (all passes; a leaf straddling two shards counts twice).
	LoadNodes, LoadBytes int64
}

// DevStats are the counts of one device.
type DevStats struct {
	Pointers, Backpointers int64
}

// Result is the outcome of a check.
type Result struct {
	Findings []report.Finding
	// Errors are read errors: nodes or devices that could not be read.
	// The check went on past them.
	Errors []error
	Stats  Stats
	Passes int
	Shards int
	// EstimatedBytes is the planned memory of all shards together.
	EstimatedBytes int64
	Duration       time.Duration
	// Interrupted is set when the context ended the check early; then
	// PassesDone passes are complete and NotChecked names the bucket
	// ranges of the others.
	Interrupted bool
	PassesDone  int
	NotChecked  []string
	// Phases is the wall time spent per stage, summed over passes.
	Phases Phases
}

// Phases is the wall time per stage of a check.
type Phases struct {
	Plan    time.Duration // sizing the backpointers btree
	Load    time.Duration // backpointers and alloc keys into the shards
	Produce time.Duration // walking the pointer btrees, shards applying records
	Finish  time.Duration // unmatched backpointers, alloc comparisons
}

// batchSize is the number of records sent to a shard at once.
const batchSize = 1024

// batchPool recycles record batches between producers and shards.
var batchPool = sync.Pool{New: func() any { b := make([]shard.Ref, 0, batchSize); return &b }}

func getBatch() []shard.Ref { return (*batchPool.Get().(*[]shard.Ref))[:0] }

func putBatch(b []shard.Ref) { batchPool.Put(&b) }

// Run checks fs. Its roots must be loaded. Findings are sorted; the result
// is the same for any worker count, shard count or number of passes. When
// ctx ends the check early, Run returns the partial result (complete
// passes only, Interrupted set) together with the context's error.
func Run(ctx context.Context, fs *btreeio.FS, opt Options) (*Result, error) {
	start := time.Now()
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.Shards <= 0 {
		opt.Shards = opt.Workers
	}
	if opt.MemoryBudget <= 0 {
		opt.MemoryBudget = 1 << 62
	}
	// Leaves read ahead are held outside the shards' budget: under a small
	// budget the read-ahead depth shrinks so that the nodes in flight
	// stay within an eighth of it (else the collector, held to the budget,
	// runs without pause). Loaders and producers walk at the same time, up
	// to Workers of each.
	if nodeBytes := int64(fs.SB.BtreeNodeSectors()) * btreeio.SectorSize; opt.Prefetch > 0 && nodeBytes > 0 {
		most := opt.MemoryBudget / 8 / (nodeBytes * 2 * int64(opt.Workers))
		opt.Prefetch = int(max(1, min(int64(opt.Prefetch), most)))
	}
	fs.Prefetch, fs.Async, fs.AsyncBackend = opt.Prefetch, opt.Async, opt.AsyncBackend
	// The async readers pooled during the check (rings, pool goroutines)
	// do not outlive it.
	defer fs.CloseReaders()
	c := newChecker(fs, opt)
	if opt.Progress != nil {
		opt.Progress.start.Store(start)
		opt.Progress.setStage(StagePlan)
	}
	// The planner's read errors are met again, and reported, by the loaders.
	plan, _ := makePlan(fs, opt.MemoryBudget, opt.Shards)
	c.phases.Plan = time.Since(start)
	res := &Result{Passes: len(plan.Passes), EstimatedBytes: plan.EstimatedBytes}
	if fs.Root(bp.BtreeStripes) != nil || fs.SB.Features[0]&(1<<4) != 0 {
		res.NotChecked = append(res.NotChecked, "erasure coding: the stripe index and redundancy of alloc keys before 1.35, block sector counts in buckets shared by several stripes, and the stripe data itself (parity is not recomputed)")
	}
	c.planProgress(opt.Progress, len(plan.Passes))
	tasks, err := c.rootTasks()
	if err != nil {
		return nil, err
	}
	var runErr error
	for pi, spans := range plan.Passes {
		err := ctx.Err()
		if err == nil {
			res.Shards += len(spans)
			if p := opt.Progress; p != nil {
				p.pass.Store(int32(pi + 1))
			}
			err = c.runPass(ctx, pi, spans, tasks)
		}
		if err != nil {
			if ctx.Err() == nil {
				return nil, err
			}
			// Interrupted: the passes done so far are complete and their
			// findings stand; the rest is not checked.
			runErr = err
			res.Interrupted = true
			for _, sp := range plan.Passes[pi:] {
				res.NotChecked = append(res.NotChecked, fmt.Sprintf("buckets %s to %s", keyString(sp[0].lo), keyString(sp[len(sp)-1].hi)))
			}
			break
		}
		res.PassesDone++
	}
	report.Sort(c.findings)
	res.Findings = c.findings
	res.Errors = c.errs
	c.stats.LoadNodes, c.stats.LoadBytes = c.loadNodes.Load(), c.loadBytes.Load()
	res.Stats = c.stats
	res.Phases = c.phases
	res.Duration = time.Since(start)
	if p := opt.Progress; p != nil && !res.Interrupted {
		p.nodesDone.Store(p.nodesTotal.Load())
		p.setStage(StageDone)
	}
	return res, runErr
}

func keyString(k shard.BucketKey) string {
	if k == ^shard.BucketKey(0) {
		return "the end"
	}
	return fmt.Sprintf("%d:%d", k.Dev(), k.Bucket())
}

type checker struct {
	fs       *btreeio.FS
	opt      Options
	geo      *bp.Geometry
	cfg      *shard.Config
	printer  *listfmt.Printer
	formatB  bool
	shift    uint
	mu       sync.Mutex
	findings []report.Finding
	errs     []error
	// problemNodes are the loaded leaves whose problems were reported.
	problemNodes map[nodeAt]bool
	stats        Stats
	lost         shard.Lost // what unreadable nodes hid in the current pass
	// reportedLost remembers the unreadable nodes already reported.
	reportedLost map[shard.LostRange]bool
	phases       Phases
	// anyRotational: some member has the ROTATIONAL flag, so format B
	// backpointers of data pointers carry RECONCILE_PHYS flags.
	anyRotational bool
	// rotational: per device index, the member exists and is rotational
	// (bp.Geometry.Rotational, as an array for the fast path).
	rotational [256]bool
	// loadNodes, loadBytes count the loaders' leaves (Stats.Load*).
	loadNodes, loadBytes atomic.Int64
}

// nodeLost records a node that could not be read: its subtree's range goes
// into the pass's lost ranges; the first time it is met it becomes a
// finding (and the error is kept for the report).
func (c *checker) nodeLost(list *[]shard.LostRange, btree bp.BtreeID, level uint8, parent *bp.Key, err error) {
	r := shard.LostRange{Btree: btree, Level: level, Max: bp.SPosMax}
	if parent != nil {
		r.Max = parent.Pos
	}
	var re *btreeio.NodeRangeError
	if errors.As(err, &re) {
		r.Min, r.Max = re.Min, re.Max
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	*list = append(*list, r)
	// A node may be met in several passes (and by the planner); report it
	// once.
	if c.reportedLost == nil {
		c.reportedLost = map[shard.LostRange]bool{}
	}
	if c.reportedLost[r] {
		return
	}
	c.reportedLost[r] = true
	c.errs = append(c.errs, err)
	f := report.Finding{Code: nodeErrorCode(err), Dev: -1, Btree: btree.Name(c.fs.SB.Version), Level: int(level), Pos: r.Max,
		Detail: err.Error()}
	c.findings = append(c.findings, f)
}

// nodeErrorCode names a node read error as bcachefs does.
func nodeErrorCode(err error) string {
	switch {
	case errors.Is(err, btreeio.ErrBadChecksum):
		return report.BsetBadCsum
	case errors.Is(err, btreeio.ErrBadMagic):
		return report.BtreeNodeBadMagic
	}
	return report.BtreeNodeReadError
}

func newChecker(fs *btreeio.FS, opt Options) *checker {
	sb := fs.SB
	c := &checker{fs: fs, opt: opt, geo: fs.Geometry(), printer: listfmt.NewPrinter(fs), formatB: sb.FormatB(), shift: sb.ExtentBPShift()}
	c.cfg = &shard.Config{
		FormatB: c.formatB,
		Shift:   c.shift,
		BucketSize: func(dev uint64) (uint32, bool) {
			if dev >= 256 {
				return 0, false
			}
			m := sb.Member(uint8(dev))
			if m == nil {
				return 0, false
			}
			return uint32(m.BucketSize), true
		},
		ValidBucket: func(dev, b uint64) bool {
			if dev >= 256 {
				return false
			}
			m := sb.Member(uint8(dev))
			return m != nil && b >= uint64(m.FirstBucket) && b < m.NBuckets
		},
		Describe:            c.describeBP,
		BtreeName:           func(id bp.BtreeID) string { return id.Name(sb.Version) },
		CheckCached:         true,
		CheckStripe:         true,
		StripeSectors:       sb.Version >= bp.VersionBucketStripeSectors,
		CheckStripeRefcount: sb.Version >= bp.VersionBucketStripeIndex,
	}
	c.cfg.CheckDup = c.checkDup
	for i := range sb.Members {
		if i < len(c.rotational) && sb.Members[i].Exists() && sb.Members[i].Rotational() {
			c.rotational[i] = true
			if c.formatB {
				c.anyRotational = true
			}
		}
	}
	return c
}

// describeBP renders a backpointer key as bcachefs list prints it.
func (c *checker) describeBP(pos bp.Pos, val []byte) string {
	k := bp.Key{U64s: bp.KeyU64s + bp.BackpointerBytes/8, Format: bp.FormatUnpacked, Type: bp.KeyBackpointer, Pos: pos}
	return string(c.printer.AppendKey(nil, bp.BtreeBackpointers, &k, val))
}

func (c *checker) addFinding(f report.Finding) {
	c.mu.Lock()
	c.findings = append(c.findings, f)
	c.mu.Unlock()
}

func (c *checker) addError(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

// nodeAt names a node by where it was read.
type nodeAt struct {
	dev string
	off int64
}

// loadedNodeProblems reports the problems met while reading a leaf of the
// backpointers or alloc btree (keys that did not decode, out of order or
// outside the node's range: dropped, so a pointer to them is reported as
// missing its backpointer or alloc key) once per check: a leaf at the
// edge of a shard's range is read by the loaders of both shards, and
// every pass reads its ranges again.
func (c *checker) loadedNodeProblems(n *btreeio.Node) {
	if len(n.Problems) == 0 {
		return
	}
	at := nodeAt{n.Dev, n.Offset}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.problemNodes[at] {
		return
	}
	if c.problemNodes == nil {
		c.problemNodes = map[nodeAt]bool{}
	}
	c.problemNodes[at] = true
	c.errs = append(c.errs, n.Problems...)
}

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

// leafGroups is how many tasks per worker a root whose children are
// leaves is cut into: enough to balance the workers, few enough that each
// walk reads many leaves ahead.
const leafGroups = 4

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
// groups of consecutive leaves, one task each, with copies of their
// pointers (the node's memory goes back to the pool).
func (c *checker) leafGroupTasks(r btreeio.Root, n *btreeio.Node) []task {
	var kids []btreeio.NodeKey
	for i := range n.Keys {
		k := &n.Keys[i]
		if k.Key.Type != bp.KeyBtreePtrV2 && k.Key.Type != bp.KeyBtreePtr {
			continue
		}
		kids = append(kids, btreeio.NodeKey{Key: k.Key, Val: append([]byte(nil), k.Val...)})
	}
	groups := min(len(kids), leafGroups*c.opt.Workers)
	var tasks []task
	for g := 0; g < groups; g++ {
		a, b := g*len(kids)/groups, (g+1)*len(kids)/groups
		if a == b {
			continue
		}
		tasks = append(tasks, task{btree: r.Btree, level: 0, key: kids[a].Key, leaves: kids[a:b]})
	}
	return tasks
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
}

// newEmitter returns an emitter of records for the shards of one pass,
// which cover [lo, hi).
func newEmitter(ctx context.Context, c *checker, shards []*shard.Shard, chans []chan []shard.Ref, lo, hi shard.BucketKey, pass int) *emitter {
	e := &emitter{c: c, shards: shards, chans: chans, bufs: make([][]shard.Ref, len(shards)), lo: lo, hi: hi, ctx: ctx, count: pass == 0, pass: pass}
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
	if bucket < e.lo || bucket >= e.hi {
		return 0, nil
	}
	i = e.shardOf(bucket)
	if i >= len(e.shards) {
		return 0, nil
	}
	b := e.bufs[i]
	if len(b) == cap(b) { // a batch not yet taken, or a short one
		b = append(b, shard.Ref{})[:len(b)]
		e.bufs[i] = b
	}
	// The batch's header is left as it is until commit: rewriting it for
	// every record cost more than the record.
	return i, &b[:len(b)+1][len(b)]
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
	c := e.c
	if level == 0 && c.formatB && !e.noFast && (k.Type == bp.KeyExtent || k.Type == bp.KeyReflinkV) {
		// The value entries as bp.ValueEntries finds them, without its
		// call (this runs once per extent); a short value goes below.
		if skip, _ := bp.EntriesStart(k.Type); len(val) >= skip {
			if done, err := e.emitExtentFast(btree, k, val[skip:]); done {
				return err
			}
		}
	}
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
		if m == nil {
			if d.Ptr.Dev != 0xff && e.count && e.pass == 0 {
				c.addFinding(report.Finding{Code: report.PtrToInvalidDevice, Dev: -1, Btree: btree.Name(c.fs.SB.Version), Level: int(level), Pos: k.Pos,
					KeyType: k.Type.String(), Detail: fmt.Sprintf("pointer to device %d, which is not a member", d.Ptr.Dev)})
			}
			continue
		}
		bucket := shard.MakeBucketKey(uint64(d.Ptr.Dev), m.BucketOf(d.Ptr.Offset))
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
	e.c.opt.Progress.addNode()
	if e.count {
		e.stats.Nodes++
		e.stats.NodeBytes += int64(n.SectorsWritten) * btreeio.SectorSize
	}
}

// PackedLeaf emits the records of a data btree leaf straight from its
// packed bset, decoding one key ahead of the one it emits: a key is
// emitted once the next key sorts after it, so a position repeated in
// the bset emits only its last key, and deleted keys are not emitted,
// exactly the keys the decoded node would hold. A key out of order or one
// that does not decode is a problem of the node: the keys emitted so far
// are the decoded node's first keys, so PackedLeaf returns false and Node
// takes the decoded node from the first key after them (its problems are
// then reported after the errors of the keys already emitted).
func (p *producer) PackedLeaf(n *btreeio.Node) (bool, error) {
	u, data, ok := n.Packed()
	if !ok || n.Level != 0 || !p.dataBtree {
		return false, nil
	}
	e := p.e
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
			case 1:
				if err := emit(cur, curVal); err != nil {
					return true, err
				}
			}
			// case 0: the next key replaces this one
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

func (p *producer) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	c := p.e.c
	c.nodeLost(&c.lost.Owners, btree, level, parent, err)
	return nil
}

// runPass checks the buckets of one pass.
func (c *checker) runPass(ctx context.Context, pass int, spans []span, tasks []task) error {
	c.lost = shard.Lost{}
	if pass > 0 {
		// The previous pass's shards are garbage: collect them and return
		// their memory to the OS before this pass allocates its own, so
		// that the resident size of a multi-pass check stays within its
		// budget (large arrays of a new size cannot reuse the old spans).
		debug.FreeOSMemory()
	}
	shards := make([]*shard.Shard, len(spans))
	for i, s := range spans {
		shards[i] = shard.New(c.cfg, s.lo, s.hi)
		shards[i].Reserve(int(s.bps), int(s.allocs))
	}
	// Every goroutine that touches the shards has ended when runPass
	// returns (the loaders, producers and appliers are waited for).
	defer func() {
		for _, sh := range shards {
			sh.Release()
		}
	}()
	lo, hi := spans[0].lo, spans[len(spans)-1].hi
	t0 := time.Now()
	c.opt.Progress.setStage(StageLoad)
	// Loading and producing overlap: the producers start at once, and each
	// shard's worker applies records only once the shard holds its
	// backpointers, alloc keys and metadata buckets; until then records
	// wait in the shard's bounded channel (the producers block when it is
	// full). A core that finishes its loading early walks extents instead
	// of idling until the slowest shard is loaded.
	g, gctx := errgroup.WithContext(ctx)
	// loaded[i] is closed when shard i is loaded; ended[i] when its loader
	// has returned, loaded or not (an error, or cancelled before it
	// started). A loader that fails makes Wait return its error, so the
	// records of a shard whose loader ended unloaded are never counted.
	loaded := make([]chan struct{}, len(shards))
	ended := make([]chan struct{}, len(shards))
	var loading atomic.Int32
	loading.Store(int32(len(shards)))
	var t1 time.Time // when the last shard was loaded
	loadSem := make(chan struct{}, c.opt.Workers)
	for i, sh := range shards {
		loaded[i] = make(chan struct{})
		ended[i] = make(chan struct{})
		g.Go(func() error {
			defer close(ended[i])
			select {
			case loadSem <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			defer func() { <-loadSem }()
			if err := c.loadBackpointers(pass, sh); err != nil {
				return err
			}
			if err := c.loadAlloc(pass, []*shard.Shard{sh}, sh.Lo, sh.Hi); err != nil {
				return err
			}
			c.addMetadataRefs([]*shard.Shard{sh}, max(lo, sh.Lo), min(hi, sh.Hi))
			close(loaded[i])
			if loading.Add(-1) == 0 {
				t1 = time.Now()
				c.opt.Progress.setStage(StageProduce)
			}
			return nil
		})
	}

	chans := make([]chan []shard.Ref, len(shards))
	var shardWG sync.WaitGroup
	for i := range shards {
		chans[i] = make(chan []shard.Ref, 8)
		sh, ch, ready, done := shards[i], chans[i], loaded[i], ended[i]
		shardWG.Add(1)
		go func() {
			defer shardWG.Done()
			// The worker waits for its loader to end, not for the
			// context: a cancel while the shard is still loading must
			// not drop records of a pass that then completes (the
			// producers may all be done by then, so nothing else would
			// report the cancel). Loaders never wait for producers.
			<-done
			select {
			case <-ready:
			default:
				// The loader failed (Wait returns its error): nothing is
				// applied; the channel is drained until it is closed.
				for batch := range ch {
					putBatch(batch)
				}
				return
			}
			for batch := range ch {
				sh.Apply(batch)
				putBatch(batch)
			}
		}()
	}
	taskCh := make(chan task)
	g.Go(func() error {
		defer close(taskCh)
		for _, t := range tasks {
			select {
			case taskCh <- t:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	var statsMu sync.Mutex
	var total Stats
	for w := 0; w < c.opt.Workers; w++ {
		g.Go(func() error {
			e := newEmitter(gctx, c, shards, chans, lo, hi, pass)
			for t := range taskCh {
				if err := c.runTask(e, t); err != nil {
					return err
				}
			}
			if err := e.flush(); err != nil {
				return err
			}
			statsMu.Lock()
			total.add(&e.stats)
			statsMu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	for _, ch := range chans {
		close(ch)
	}
	shardWG.Wait()
	t2 := time.Now()
	if t1.IsZero() {
		t1 = t2 // loading failed or was cancelled
	}
	c.phases.Load += t1.Sub(t0)
	c.phases.Produce += t2.Sub(t1)
	c.opt.Progress.setStage(StageFinish)
	defer func() { c.phases.Finish += time.Since(t2) }()
	if err != nil {
		return err
	}
	if pass == 0 {
		c.stats.add(&total)
	}
	// Shards finish in parallel: each judges its own buckets (duplicate
	// claims read the filesystem, which is safe for concurrent use).
	found := make([][]report.Finding, len(shards))
	var fg errgroup.Group
	fg.SetLimit(c.opt.Workers)
	for i, sh := range shards {
		fg.Go(func() error {
			found[i] = sh.Finish(&c.lost)
			return nil
		})
	}
	_ = fg.Wait() // the tasks return no error
	for i, sh := range shards {
		n, a := sh.Counts()
		c.stats.Backpointers += int64(n)
		for dev, k := range sh.DevCounts() {
			c.stats.PerDev[dev].Backpointers += int64(k)
		}
		c.stats.AllocKeys += int64(a)
		c.findings = append(c.findings, found[i]...)
	}
	return nil
}

func (s *Stats) add(o *Stats) {
	s.Nodes += o.Nodes
	s.NodeBytes += o.NodeBytes
	s.Keys += o.Keys
	s.Extents += o.Extents
	s.Pointers += o.Pointers
	s.Backpointers += o.Backpointers
	s.AllocKeys += o.AllocKeys
	s.Buckets += o.Buckets
	for i := range s.PerDev {
		s.PerDev[i].Pointers += o.PerDev[i].Pointers
		s.PerDev[i].Backpointers += o.PerDev[i].Backpointers
	}
}

func (c *checker) runTask(e *emitter, t task) error {
	if t.root {
		if err := e.emitKeyPtrs(t.btree, t.level+1, &t.key, t.val); err != nil {
			return err
		}
	}
	data := t.btree.HasDataPtrs(c.fs.SB.Version)
	minLevel := c.minLevel(t.btree)
	if t.level < minLevel {
		return nil
	}
	if t.topOnly {
		minLevel = t.level
	}
	if t.leaves != nil {
		return c.fs.WalkLeaves(t.btree, t.leaves, &producer{e: e, dataBtree: data})
	}
	return c.fs.WalkFrom(t.btree, t.level, &t.key, t.val, minLevel, &producer{e: e, dataBtree: data})
}

// bpLoader fills shards with the backpointers of [lo, hi).
type bpLoader struct {
	c      *checker
	shards []*shard.Shard
	lo, hi shard.BucketKey
	pass   int
	si     int
	// plo, phi: the backpointer positions [plo, phi) this loader owns
	// (phi open-ended when open).
	plo, phi bp.Pos
	open     bool
}

func (l *bpLoader) Node(n *btreeio.Node) error {
	if n.Level != 0 {
		return nil
	}
	l.countNode(n)
	c := l.c
	c.loadedNodeProblems(n)
	for i := range n.Keys {
		k := &n.Keys[i]
		if k.Key.Type != bp.KeyBackpointer {
			continue
		}
		p := k.Key.Pos
		if p.Less(l.plo) || !l.open && !p.Less(l.phi) {
			continue
		}
		if c.formatB && p.Inode == 255 {
			// BCH_SB_MEMBER_INVALID: an invalid key in format B.
			c.addFinding(l.badBP(report.BackpointerDevBad, k, "backpointer for the invalid device index 255"))
			continue
		}
		if p.Inode >= 256 || c.fs.SB.Member(uint8(p.Inode)) == nil {
			c.addFinding(l.badBP(report.BackpointerToMissingDevice, k, "backpointer for missing device"))
			continue
		}
		bk := bpBucket(c.fs, p)
		if bk < l.lo || bk >= l.hi {
			continue
		}
		// Only the fields validity needs are read here (this runs once
		// per backpointer): level, and the bucket offset of format A.
		if len(k.Val) < bp.BackpointerBytes {
			_, err := bp.DecodeBackpointer(k.Val, c.formatB)
			c.addFinding(l.badBP(report.BackpointerToMissingPtr, k, err.Error()))
			continue
		}
		if !l.validate(k, k.Val[1], bp.BackpointerBucketOffsetA(k.Val)) {
			continue
		}
		for l.si < len(l.shards)-1 && l.shards[l.si].Hi <= bk {
			l.si++
		}
		l.shards[l.si].AddBP(uint32(p.Inode), p.Offset, k.Val)
	}
	return nil
}

// validate applies the key validity rules that the bcachefs fsck applies
// to backpointers before it checks them, reporting invalid keys.
// level and bucketOffset (format A) are the value's fields.
func (l *bpLoader) validate(k *btreeio.NodeKey, level uint8, bucketOffset uint64) bool {
	code, detail := l.invalid(k.Key.Pos, len(k.Val), level, bucketOffset)
	if code != "" {
		l.c.addFinding(l.badBP(code, k, detail))
		return false
	}
	return true
}

// invalid returns the finding code and detail of a backpointer key at pos
// whose value is valLen bytes long, or "" when the key is valid.
func (l *bpLoader) invalid(pos bp.Pos, valLen int, level uint8, bucketOffset uint64) (code, detail string) {
	c := l.c
	if level > 4 {
		return report.BackpointerLevelBad, fmt.Sprintf("backpointer level %d > 4", level)
	}
	if !c.formatB {
		m := c.fs.SB.Member(uint8(pos.Inode))
		bs := uint64(m.BucketSize)
		bucket := (pos.Offset >> bp.ShiftA) / bs
		if bucketOffset>>bp.ShiftA >= bs || (bucket*bs)<<bp.ShiftA+bucketOffset != pos.Offset {
			return report.BackpointerBucketOffsetWrong, fmt.Sprintf("bucket_offset %d disagrees with the key position", bucketOffset)
		}
	}
	if pos.Snapshot != 0 || valLen != bp.BackpointerBytes {
		return report.BackpointerToMissingPtr, "malformed backpointer key"
	}
	return "", ""
}

// PackedLeaf loads the backpointers of a leaf straight from its packed
// bset: the keys Node would load, decoded one at a time (type and
// position only), with no key array built and merged first. A key that
// Node would report (an invalid backpointer, a missing device) or that
// the general decoding rules must settle (out of order, a repeated
// position, a deleted key, one that does not decode the fast way) makes
// it drop what it added from this node and return false: Node then loads
// the decoded node.
//
// When the node's whole range lies in this loader's positions and in one
// shard's buckets of one member device, the per-key range, device and
// shard checks are skipped; the keys are then checked to lie within the
// node's range (they are in order, so the first and the last).
func (l *bpLoader) PackedLeaf(n *btreeio.Node) (bool, error) {
	u, data, ok := n.Packed()
	if !ok || n.Level != 0 {
		return false, nil
	}
	c := l.c
	startSi := l.si
	startLen, _ := l.shards[startSi].Counts()
	undo := func() (bool, error) {
		for i := startSi + 1; i <= l.si; i++ {
			l.shards[i].TruncateBPs(0) // shards after startSi had none yet
		}
		l.shards[startSi].TruncateBPs(startLen)
		l.si = startSi
		return false, nil
	}
	whole := c.formatB && n.Min.Inode == n.Max.Inode && n.Min.Inode < 255 &&
		c.fs.SB.Member(uint8(n.Min.Inode)) != nil &&
		!n.Min.Less(l.plo) && (l.open || n.Max.Less(l.phi))
	si := l.si
	if whole {
		bmin, bmax := bpBucket(c.fs, n.Min), bpBucket(c.fs, n.Max)
		for si < len(l.shards)-1 && l.shards[si].Hi <= bmin {
			si++
		}
		sh := l.shards[si]
		whole = bmin >= l.lo && bmax < l.hi && bmin >= sh.Lo && bmax < sh.Hi
	}
	if whole {
		l.si = si
		sh := l.shards[si]
		dev := uint32(n.Min.Inode)
		var pos, prev bp.Pos
		for p := 0; p < len(data); {
			t, val, ok := u.DecodePos(&pos, data[p:])
			if !ok || p > 0 && !prev.Less(pos) || p == 0 && pos.Less(n.Min) {
				return undo()
			}
			prev = pos
			p += int(data[p]) * 8
			if t != bp.KeyBackpointer {
				if t == bp.KeyDeleted {
					return undo()
				}
				continue
			}
			if pos.Snapshot != 0 || len(val) != bp.BackpointerBytes || val[1] > 4 {
				return undo() // invalid: Node reports it
			}
			sh.AddBP(dev, pos.Offset, val)
		}
		if len(data) > 0 && n.Max.Less(prev) {
			return undo()
		}
		l.countNode(n)
		return true, nil
	}
	var k bp.Key
	var prev bp.Pos
	for p := 0; p < len(data); {
		if data[p] == 0 {
			return undo()
		}
		val, err := u.DecodeKeyInto(&k, data[p:])
		if err != nil || p > 0 && !prev.Less(k.Pos) || n.Max.Less(k.Pos) || p == 0 && k.Pos.Less(n.Min) {
			return undo()
		}
		p += int(data[p]) * 8
		prev = k.Pos
		if k.Type != bp.KeyBackpointer {
			if k.Type == bp.KeyDeleted {
				return undo()
			}
			continue
		}
		pos := &k.Pos
		if pos.Less(l.plo) || !l.open && !pos.Less(l.phi) {
			continue
		}
		if pos.Inode >= 255 || c.fs.SB.Member(uint8(pos.Inode)) == nil {
			return undo() // a finding: Node reports it
		}
		bk := bpBucket(c.fs, *pos)
		if bk < l.lo || bk >= l.hi {
			continue
		}
		if len(val) != bp.BackpointerBytes {
			return undo()
		}
		if code, _ := l.invalid(*pos, len(val), val[1], bp.BackpointerBucketOffsetA(val)); code != "" {
			return undo()
		}
		for l.si < len(l.shards)-1 && l.shards[l.si].Hi <= bk {
			l.si++
		}
		l.shards[l.si].AddBP(uint32(pos.Inode), pos.Offset, val)
	}
	l.countNode(n)
	return true, nil
}

// countNode counts a loaded leaf for the progress display and summary.
func (l *bpLoader) countNode(n *btreeio.Node) {
	l.c.opt.Progress.addNode()
	l.c.loadNodes.Add(1)
	l.c.loadBytes.Add(int64(n.SectorsWritten) * btreeio.SectorSize)
}

func (l *bpLoader) badBP(code string, k *btreeio.NodeKey, detail string) report.Finding {
	c := l.c
	f := report.Finding{Code: code, Dev: -1, BP: k.Key.Pos, HasBP: true, Detail: detail, Got: c.describeBP(k.Key.Pos, k.Val)}
	if v, err := bp.DecodeBackpointer(k.Val, c.formatB); err == nil {
		f.Btree, f.Level, f.Pos = v.BtreeID.Name(c.fs.SB.Version), int(v.Level), v.Pos
	}
	if k.Key.Pos.Inode < 256 && c.fs.SB.Member(uint8(k.Key.Pos.Inode)) != nil {
		bk := bpBucket(c.fs, k.Key.Pos)
		f.Dev, f.Bucket = bk.Dev(), bk.Bucket()
	}
	return f
}

func (l *bpLoader) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	l.c.nodeLost(&l.c.lost.BPs, btree, level, parent, err)
	return nil
}

func (c *checker) bpRange(lo, hi shard.BucketKey) (bp.Pos, bp.Pos) {
	toPos := func(k shard.BucketKey) bp.Pos {
		if k.Dev() >= len(c.fs.SB.Members) {
			return bp.Pos{Inode: uint64(k.Dev())}
		}
		m := &c.fs.SB.Members[k.Dev()]
		return bp.Pos{Inode: uint64(k.Dev()), Offset: k.Bucket() * uint64(m.BucketSize) << c.shift}
	}
	return toPos(lo), toPos(hi)
}

// loadBackpointers fills one shard with the backpointers of its bucket
// range. Shards load in parallel: their position ranges do not overlap.
func (c *checker) loadBackpointers(pass int, sh *shard.Shard) error {
	l := &bpLoader{c: c, shards: []*shard.Shard{sh}, lo: sh.Lo, hi: sh.Hi, pass: pass}
	l.plo, l.phi = c.bpRange(sh.Lo, sh.Hi)
	l.open = sh.Hi == ^shard.BucketKey(0)
	phi := l.phi
	if l.open {
		phi = bp.SPosMax
	}
	return c.fs.WalkRange(bp.BtreeBackpointers, 0, l.plo, phi, l)
}

// allocLoader fills shards with the alloc keys of [lo, hi).
type allocLoader struct {
	c      *checker
	shards []*shard.Shard
	lo, hi shard.BucketKey
	pass   int
	si     int
}

func (l *allocLoader) Node(n *btreeio.Node) error {
	if n.Level != 0 {
		return nil
	}
	l.c.opt.Progress.addNode()
	l.c.loadNodes.Add(1)
	l.c.loadBytes.Add(int64(n.SectorsWritten) * btreeio.SectorSize)
	l.c.loadedNodeProblems(n)
	for i := range n.Keys {
		k := &n.Keys[i]
		if k.Key.Type != bp.KeyAllocV4 {
			continue
		}
		bk := shard.MakeBucketKey(k.Key.Pos.Inode, k.Key.Pos.Offset)
		if k.Key.Pos.Inode >= 256 || bk < l.lo || bk >= l.hi {
			continue
		}
		a, err := bp.DecodeAllocV4(k.Val)
		if err != nil {
			if l.pass == 0 {
				l.c.addError(fmt.Errorf("alloc key %s: %w", k.Key.Pos, err))
			}
			continue
		}
		for l.si < len(l.shards)-1 && l.shards[l.si].Hi <= bk {
			l.si++
		}
		l.shards[l.si].AddAlloc(bk, a)
	}
	return nil
}

func (l *allocLoader) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	l.c.nodeLost(&l.c.lost.Alloc, btree, level, parent, err)
	return nil
}

func (c *checker) loadAlloc(pass int, shards []*shard.Shard, lo, hi shard.BucketKey) error {
	l := &allocLoader{c: c, shards: shards, lo: lo, hi: hi, pass: pass}
	plo := bp.Pos{Inode: uint64(lo.Dev()), Offset: lo.Bucket()}
	phi := bp.Pos{Inode: uint64(hi.Dev()), Offset: hi.Bucket()}
	if hi == ^shard.BucketKey(0) {
		phi = bp.SPosMax
	}
	return c.fs.WalkRange(bp.BtreeAlloc, 0, plo, phi, l)
}

// addMetadataRefs adds the superblock and journal buckets of every device
// to the shards of [lo, hi), as the kernel marks them.
func (c *checker) addMetadataRefs(shards []*shard.Shard, lo, hi shard.BucketKey) {
	var e emitterDirect
	e.shards, e.lo, e.hi = shards, lo, hi
	for dev, d := range c.fs.Devices {
		if d == nil {
			continue
		}
		m := &c.fs.SB.Members[dev]
		bs := uint64(m.BucketSize)
		mark := func(start, end uint64, dt bp.DataType, kind shard.RefKind) {
			for start < end {
				b := start / bs
				if b >= m.NBuckets {
					return
				}
				n := min((b+1)*bs, end) - start
				e.add(shard.Ref{Kind: kind, Bucket: shard.MakeBucketKey(uint64(dev), b), Sectors: uint32(n), DataType: dt})
				start += n
			}
		}
		l := &d.SB.Layout
		for _, off := range l.SBOffset {
			if off == btreeio.SBSector {
				mark(0, btreeio.SBSector, bp.DataSB, shard.RefSB)
			}
			mark(off, off+1<<l.SBMaxSizeBits, bp.DataSB, shard.RefSB)
		}
		for _, r := range d.SB.Journal {
			nb := c.fs.DevBuckets(dev)
			if r.Start >= nb || r.Nr > nb-r.Start {
				continue // reported by the journal reader; nothing to mark
			}
			for b := r.Start; b < r.Start+r.Nr; b++ {
				e.add(shard.Ref{Kind: shard.RefJournal, Bucket: shard.MakeBucketKey(uint64(dev), b), Sectors: uint32(bs), DataType: bp.DataJournal})
			}
		}
	}
}

// emitterDirect hands metadata records straight to shards before their
// workers start.
type emitterDirect struct {
	shards []*shard.Shard
	lo, hi shard.BucketKey
}

func (e *emitterDirect) add(r shard.Ref) {
	if r.Bucket < e.lo || r.Bucket >= e.hi {
		return
	}
	for _, s := range e.shards {
		if s.Contains(r.Bucket) {
			s.Apply([]shard.Ref{r})
			return
		}
	}
}

// Check is a convenience wrapper: opens nothing, loads the roots and runs.
func Check(ctx context.Context, fs *btreeio.FS, opt Options) (*Result, error) {
	if err := fs.LoadRoots(); err != nil {
		return nil, err
	}
	return Run(ctx, fs, opt)
}
