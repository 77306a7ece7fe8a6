// Disk accounting: the producers of the first pass sum what the pointers
// imply (replicas, snapshots); the shards' corrected alloc keys give the
// per-device data type counters; the accounting btree and the journal's
// accounting deltas give what recovery would hold in memory. After the
// last pass the two are compared as check_allocations does.

package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"

	"bpcheck/accounting"
	"bpcheck/allocinfo"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/report"
	"bpcheck/shard"
)

// acctSums is one producer's accounting sums, with a cache of the last
// replicas entry and snapshot (consecutive extents mostly share them).
type acctSums struct {
	t accounting.Table
	// repSig, repC: recent replicas entries, by their fields packed in a
	// word (see key), and their counters, direct-mapped by a hash of the
	// word. With replicas spread over many devices the entry changes from
	// extent to extent; each change cost a 20-byte key built, sorted and
	// looked up in t. The table only grows, so a counter stays valid.
	repSig    [repCacheSize]uint64
	repC      [repCacheSize]*accounting.Counters
	lastSnap  uint32
	lastSnapC *accounting.Counters
	// lastSnapKey, lastSnapKeyC: the last snapshot's (1.39) key counters.
	lastSnapKey   uint32
	lastSnapKeyC  *accounting.Counters
	cached        bool // cached pointers were seen
	snapshotCount bool // the era compares snapshot sectors (≤ 1.31)
	// snapshotKeys: the era counts keys, key bytes and sectors per
	// (snapshot, btree) (1.39); kept for the extents btree, whose leaves
	// the check reads.
	snapshotKeys bool
	// btrees: per btree id, the sectors of its nodes' pointers, its nodes
	// and its interior nodes (the extent trigger at level > 0).
	btrees [bp.MaxBtreeID + 1]struct{ sectors, nodes, interior int64 }
	// stripes: the replicas entry of each stripe key (by its index), and
	// ecSectors the sectors of erasure-coded pointers into each stripe
	// (by index and data type), which count in the stripe's entry
	// (bch2_trigger_stripe_ptr); resolved after the first pass, when
	// both are known.
	stripes   map[uint64]stripeEntry
	ecSectors map[ecKey]int64
	// stripeLRU: each stripe's position in the stripe LRU (from its
	// recorded block counts; allocinfo.StripeLRUPos), stripeLRUUnknown
	// when a stripe's counts could not be read.
	stripeLRU        map[uint64]uint64
	stripeLRUUnknown bool
}

// repCacheBits sizes acctSums' cache of replicas entries: 64, enough for
// every pair of 11 devices.
const (
	repCacheBits = 6
	repCacheSize = 1 << repCacheBits
)

type stripeEntry struct {
	devs       [16]uint8
	n          int
	nrRequired uint8
}

type ecKey struct {
	idx uint64
	dt  bp.DataType
}

// stripe accounts a stripe key (bch2_trigger_stripe): its entry, data
// type parity, nr_required the data blocks, every block's device, gets
// the sectors of its parity blocks.
func (s *acctSums) stripe(k *bp.Key, st *bp.Stripe, val []byte, devs []uint8) {
	if pos, ok := allocinfo.StripeLRUPos(st, val); ok {
		if s.stripeLRU == nil {
			s.stripeLRU = map[uint64]uint64{}
		}
		s.stripeLRU[k.Pos.Offset] = pos
	} else {
		s.stripeLRUUnknown = true
	}
	var e stripeEntry
	e.n = copy(e.devs[:], devs)
	e.nrRequired = st.NrBlocks - st.NrRedundant
	if s.stripes == nil {
		s.stripes = map[uint64]stripeEntry{}
	}
	s.stripes[k.Pos.Offset] = e
	s.counters(accounting.Replicas(bp.DataParity, e.nrRequired, e.devs[:e.n])).V[0] += int64(st.Sectors) * int64(st.NrRedundant)
}

// resolve adds the erasure-coded pointers' sectors to their stripes'
// entries in t (all producers' sums merged into s).
func (s *acctSums) resolve(t accounting.Table) {
	for k, n := range s.ecSectors {
		e, ok := s.stripes[k.idx]
		if !ok {
			continue // a pointer to a stripe that does not exist: the fsck stops at it
		}
		t.Add(accounting.Replicas(k.dt, e.nrRequired, e.devs[:e.n]), n)
	}
}

func (s *acctSums) counters(a accounting.Pos) *accounting.Counters { return s.countersN(a, 1) }

func (s *acctSums) countersN(a accounting.Pos, n int) *accounting.Counters {
	if s.t == nil {
		s.t = accounting.Table{}
	}
	c := s.t[a]
	if c == nil {
		c = &accounting.Counters{N: n}
		s.t[a] = c
	}
	return c
}

// compPtr accounts one pointer's crc in the key's compression counters
// (the extent trigger): a run of pointers of one compression type counts
// one extent, their uncompressed and compressed sizes; uncompressed
// pointers end a run and count nothing.
func (s *acctSums) compPtr(a *compRun, ctype uint8, usize, csize uint32) {
	if a.compCur != 0 && a.compCur != ctype {
		s.compFlush(a)
	}
	a.compCur = ctype
	if ctype != 0 {
		a.comp[0] += int64(usize)
		a.comp[1] += int64(csize)
	}
}

func (s *acctSums) compFlush(a *compRun) {
	c := s.countersN(accounting.Compression(a.compCur), 3)
	c.V[0]++
	c.V[1] += a.comp[0]
	c.V[2] += a.comp[1]
	a.comp = [2]int64{}
}

// compRun is the current run of one compression type among a key's
// pointers and its uncompressed and compressed sizes (compPtr).
type compRun struct {
	compCur uint8
	comp    [2]int64
}

// snapKeyCounters returns the (1.39) counters of the extents btree in
// snapshot id: keys, key bytes, sectors.
func (s *acctSums) snapKeyCounters(id uint32) *accounting.Counters {
	// One snapshot's keys follow each other: the last counters are kept.
	if s.lastSnapKeyC == nil || s.lastSnapKey != id {
		s.lastSnapKeyC, s.lastSnapKey = s.countersN(accounting.SnapshotBtree(id, bp.BtreeExtents), 3), id
	}
	return s.lastSnapKeyC
}

// snapKey counts a leaf key of the extents btree in its snapshot (1.39,
// bch2_trigger_snapshot_nr_keys and the extent and reservation
// triggers): whiteouts are not counted.
func (s *acctSums) snapKey(k *bp.Key) {
	switch k.Type {
	case bp.KeyDeleted, bp.KeyWhiteout, bp.KeyExtentWhiteout:
		return
	}
	c := s.snapKeyCounters(k.Pos.Snapshot)
	c.V[0]++
	c.V[1] += int64(k.U64s) * 8
}

// key accounts one key's pointers (the extent trigger's replicas and
// snapshot counters): devs and sectors of its dirty pointers that are not
// erasure coded; nrRequired is 0 when an erasure-coded pointer is among
// them. devs is sorted in place. This runs once per extent: an entry met
// recently is found by its fields, packed in one word (repSig).
func (s *acctSums) key(level uint8, k *bp.Key, devs []uint8, sectors int64, nrRequired uint8) {
	n := len(devs)
	if n == 0 {
		return
	}
	for i := 1; i < n; i++ { // a few devices: insertion sort
		for j := i; j > 0 && devs[j] < devs[j-1]; j-- {
			devs[j], devs[j-1] = devs[j-1], devs[j]
		}
	}
	dt := bp.DataUser
	if level > 0 {
		dt = bp.DataBtree
	}
	// sig packs data type, nr_required, nr_devs and up to 4 devices; 0
	// (more devices) is never cached.
	var sig uint64
	if n <= 4 {
		sig = uint64(dt) | uint64(nrRequired)<<8 | uint64(n)<<16
		for i, d := range devs {
			sig |= uint64(d) << (24 + 8*i)
		}
	}
	if sig == 0 {
		s.counters(accounting.Replicas(dt, nrRequired, devs[:min(n, 16)])).V[0] += sectors
	} else {
		i := sig * 0x9e3779b97f4a7c15 >> (64 - repCacheBits)
		if s.repSig[i] != sig || s.repC[i] == nil {
			s.repC[i] = s.counters(accounting.Replicas(dt, nrRequired, devs))
			s.repSig[i] = sig
		}
		s.repC[i].V[0] += sectors
	}
	if s.snapshotKeys && level == 0 && k.Pos.Snapshot != 0 && k.Type == bp.KeyExtent {
		s.snapKeyCounters(k.Pos.Snapshot).V[2] += sectors
	}
	if s.snapshotCount && level == 0 && k.Pos.Snapshot != 0 {
		if s.lastSnapC == nil || s.lastSnap != k.Pos.Snapshot {
			s.lastSnapC, s.lastSnap = s.counters(accounting.Snapshot(k.Pos.Snapshot)), k.Pos.Snapshot
		}
		s.lastSnapC.V[0] += sectors
	}
}

// acctKey is one key's replicas entry as emitKeyPtrs decodes its
// pointers: the devices and sectors of its dirty pointers that are not
// erasure coded.
type acctKey struct {
	devs       [16]uint8
	n          int
	nrRequired uint8
	sectors    int64
	size       uint32 // sectors a pointer of the key covers
	dt         bp.DataType
	compRun
}

func (a *acctKey) start(g *bp.Geometry, level uint8, k *bp.Key) {
	a.nrRequired = 1
	a.size = k.Size
	a.dt = bp.DataUser
	if level > 0 {
		a.size = g.BtreeNodeSectors
		a.dt = bp.DataBtree
	}
}

// ptr accounts one pointer of the key (a member's, or a device 255
// placeholder: BCH_SB_MEMBER_INVALID, a replica not yet written, counts
// in the replicas entry with its sectors, as the trigger counts it).
func (s *acctSums) ptr(a *acctKey, d *bp.DecodedPtr) {
	s.compPtr(&a.compRun, d.CRC.CompressionType, d.CRC.UncompressedSize, d.CRC.CompressedSize)
	switch {
	case d.Ptr.Cached:
		s.cached = true
	case d.HasStripe:
		a.nrRequired = 0
		if s.ecSectors == nil {
			s.ecSectors = map[ecKey]int64{}
		}
		s.ecSectors[ecKey{d.Stripe.Idx, a.dt}] += int64(d.DiskSectors(a.size))
	default:
		if a.n < len(a.devs) {
			a.devs[a.n] = d.Ptr.Dev
			a.n++
		}
		a.sectors += int64(d.DiskSectors(a.size))
	}
}

// finishKey adds a key's replicas, snapshot and btree counters.
func (s *acctSums) finishKey(btree bp.BtreeID, level uint8, k *bp.Key, a *acctKey) {
	if a.compCur != 0 {
		s.compFlush(&a.compRun)
	}
	s.key(level, k, a.devs[:a.n], a.sectors, a.nrRequired)
	if level > 0 && a.n > 0 && int(btree) < len(s.btrees) {
		b := &s.btrees[btree]
		b.sectors += a.sectors
		b.nodes++
		if level > 1 {
			b.interior++
		}
	}
}

// merge adds a producer's sums to t (the checker's): btree counters as
// the era keeps them (1 counter before 1.31, btree_node_accounting; 3
// from it).
func (s *acctSums) merge(t accounting.Table, version uint16, into *acctSums) {
	t.Merge(s.t)
	for i, e := range s.stripes {
		if into.stripes == nil {
			into.stripes = map[uint64]stripeEntry{}
		}
		into.stripes[i] = e
	}
	for i, p := range s.stripeLRU {
		if into.stripeLRU == nil {
			into.stripeLRU = map[uint64]uint64{}
		}
		into.stripeLRU[i] = p
	}
	into.stripeLRUUnknown = into.stripeLRUUnknown || s.stripeLRUUnknown
	for k, n := range s.ecSectors {
		if into.ecSectors == nil {
			into.ecSectors = map[ecKey]int64{}
		}
		into.ecSectors[k] += n
	}
	for id, b := range s.btrees {
		if b.nodes == 0 {
			continue
		}
		if version >= bp.VersionBtreeNodeAccounting {
			t.Add(accounting.Btree(bp.BtreeID(id)), b.sectors, b.nodes, b.interior)
		} else {
			t.Add(accounting.Btree(bp.BtreeID(id)), b.sectors)
		}
	}
}

// acctLoader reads the accounting btree: each key's value as the btree
// holds it (before the journal overlay) and its version.
type acctLoader struct {
	c      *checker
	ctx    context.Context // a cancel stops the walk (nil: never)
	base   map[accounting.Pos]acctBase
	layout accounting.Layout
	lost   bool
	// lostNodes: the nodes that could not be read, reported (nodeLost)
	// by wait, after the passes, so that a read running beside them adds
	// no finding while they do.
	lostNodes []lostNode
}

// lostNode is a node a read could not read: its btree, level, parent
// pointer (a copy) and the error.
type lostNode struct {
	btree  bp.BtreeID
	level  uint8
	parent *bp.Key
	err    error
}

type acctBase struct {
	v   accounting.Counters
	ver bp.Version
}

func (l *acctLoader) Node(n *btreeio.Node) error {
	if err := ctxErr(l.ctx); err != nil {
		return err
	}
	if n.Level != 0 {
		return nil
	}
	keys := n.Keys
	if n.BtreeKeys != nil {
		keys = n.BtreeKeys
	}
	for i := range keys {
		k := &keys[i]
		if k.Key.Type != bp.KeyAccounting {
			continue
		}
		a := accounting.FromBPos(k.Key.Pos, l.layout)
		if a.Type() >= accounting.TypeInum {
			continue // never compared (inum: one per inode, most of the btree)
		}
		l.base[a] = acctBase{v: accounting.Value(k.Val), ver: k.Key.Version}
	}
	return nil
}

func (l *acctLoader) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	n := lostNode{btree: btree, level: level, err: err}
	if parent != nil {
		p := *parent
		n.parent = &p
	}
	l.lostNodes = append(l.lostNodes, n)
	l.lost = true
	return nil
}

// acctRead is a read of the accounting btree running beside the passes
// (startAccountingRead).
type acctRead struct {
	done chan struct{}
	l    *acctLoader
	t    accounting.Table
	ok   bool
	err  error
	c    *checker
}

// acctTestHooks let a test hold the accounting read (read, before it
// starts) and act once the passes are done (beforeWait); nil otherwise.
var acctTestHooks struct {
	read       func(ctx context.Context)
	beforeWait func()
}

// startAccountingRead starts reading the accounting btree; wait returns
// what readAccounting would.
func (c *checker) startAccountingRead(ctx context.Context) *acctRead {
	r := &acctRead{done: make(chan struct{}), c: c}
	go func() {
		defer close(r.done)
		if h := acctTestHooks.read; h != nil {
			h(ctx)
		}
		r.t, r.ok, r.l, r.err = c.readAccountingWith(ctx)
	}()
	return r
}

// wait waits for the read and reports the nodes it could not read.
func (r *acctRead) wait() (accounting.Table, bool, error) {
	<-r.done
	if r.l != nil {
		for _, n := range r.l.lostNodes {
			var lost []shard.LostRange
			r.c.nodeLost(&lost, n.btree, n.level, n.parent, n.err)
		}
		r.l.lostNodes = nil
	}
	return r.t, r.ok, r.err
}

func versionLE(a, b bp.Version) bool { return a.Hi < b.Hi || a.Hi == b.Hi && a.Lo <= b.Lo }

// readAccountingWith returns the counters recovery holds in memory: each
// btree key's value plus the journal deltas newer than it
// (bch2_accounting_read); ok=false when part of the btree was unreadable.
// The nodes it could not read are left in the loader it returns, for
// acctRead.wait to report.
func (c *checker) readAccountingWith(ctx context.Context) (accounting.Table, bool, *acctLoader, error) {
	layout := accounting.LayoutOf(c.fs.SB.Version)
	l := &acctLoader{c: c, ctx: ctx, base: map[accounting.Pos]acctBase{}, layout: layout}
	// From 1.15 keys sort by type: the walk stops before the inum keys
	// (one per inode), which are never compared.
	var err error
	if layout == accounting.LayoutBigEndian {
		err = c.fs.WalkRange(btreeio.BtreeAccounting, 0, bp.PosMin, bp.Pos{Inode: accounting.TypeInum<<56 - 1, Offset: ^uint64(0), Snapshot: ^uint32(0)}, l)
	} else {
		err = c.fs.Walk(btreeio.BtreeAccounting, 0, l)
	}
	if err != nil {
		return nil, false, l, err
	}
	t := accounting.Table{}
	for a, b := range l.base {
		t.Add(a, b.v.V[:b.v.N]...)
	}
	for _, jk := range c.fs.Journal.AccountingDeltas() {
		if jk.Key.Type != bp.KeyAccounting {
			continue
		}
		a := accounting.FromBPos(jk.Key.Pos, layout)
		if a.Type() >= accounting.TypeInum {
			continue
		}
		if b, ok := l.base[a]; ok && versionLE(jk.Key.Version, b.ver) {
			continue // the btree's key holds it already
		}
		v := accounting.Value(jk.Val)
		t.Add(a, v.V[:v.N]...)
	}
	return t, !l.lost, l, nil
}

// addDevDataTypes adds the per-device data type counters of a shard's
// corrected alloc keys (bch2_alloc_key_to_dev_counters); every valid
// bucket starts free (bch2_dev_usage_init). It reports false when a
// bucket's state is unknown (read errors).
func (c *checker) addDevDataTypes(t accounting.Table, cs shard.CorrectedList) bool {
	ok := true
	// Summed in arrays, then added to t once per device and data type
	// (this runs once per bucket).
	type counts [bp.DataMultiple + 2][3]int64
	var sums map[uint8]*counts
	var lastDev = -1
	var cur *counts
	var m *btreeio.Member
	for i := range cs.Len() {
		b := cs.At(i)
		dev := b.Key.Dev()
		if dev != lastDev {
			lastDev, cur, m = dev, nil, nil
			if dev < 256 {
				m = c.fs.SB.Member(uint8(dev))
			}
			if m != nil {
				if sums == nil {
					sums = map[uint8]*counts{}
				}
				if cur = sums[uint8(dev)]; cur == nil {
					cur = &counts{}
					sums[uint8(dev)] = cur
				}
			}
		}
		if cur == nil || b.Key.Bucket() < uint64(m.FirstBucket) || b.Key.Bucket() >= m.NBuckets {
			continue
		}
		if b.Unknown {
			ok = false
			continue
		}
		a := &b.A
		sectors := int64(a.DirtySectors) + int64(a.StripeSectors)
		if a.DataType == bp.DataCached {
			sectors = int64(a.CachedSectors)
		}
		var frag int64
		switch {
		case sectors != 0:
			frag = max(0, int64(m.BucketSize)-sectors)
		case c.fs.SB.Version >= bp.VersionErasureCoding && !dataTypeEmpty(a.DataType):
			// v1.39.2: a bucket of no sectors that is not empty (a
			// stripe's empty data block) is all fragmentation.
			frag = int64(m.BucketSize)
		}
		dt := min(int(a.DataType), len(cur)-1)
		cur[bp.DataFree][0]--
		cur[dt][0]++
		cur[dt][1] += sectors
		cur[dt][2] += frag
		if a.DataType == bp.DataStripe && a.DirtySectors != 0 {
			cur[bp.DataUnstriped][0]++
			cur[bp.DataUnstriped][1] += int64(a.DirtySectors)
		}
	}
	for dev, cur := range sums {
		for dt := range cur {
			if cur[dt] != [3]int64{} {
				t.Add(accounting.DevDataType(dev, bp.DataType(dt)), cur[dt][:]...)
			}
		}
	}
	return ok
}

// acctChecked reports whether bpcheck computes the counters of a key, and
// why not when it does not.
func (c *checker) acctChecked(a accounting.Pos, sums *acctSums) (bool, string) {
	v := c.fs.SB.Version
	switch a.Type() {
	case accounting.TypeReplicas:
		dt := bp.DataType(a[1])
		switch {
		case dt == bp.DataCached:
			return !sums.cached, "replicas of cached data (cached:), whose stale pointers need bucket generations at the producer"
		}
		return true, ""
	case accounting.TypeDevDataType:
		return true, ""
	case accounting.TypeSnapshot:
		if v >= bp.VersionPerDevFragmentationLRU {
			if a.SnapshotBtree() == bp.BtreeExtents {
				return true, ""
			}
			return false, "snapshot key counts of btrees other than extents (1.39: need their leaves)"
		}
		if v >= bp.VersionErasureCoding {
			return false, "snapshot counters (1.37-1.38: their layout under the v1.39.2 rules is not known here)"
		}
		if v > bp.VersionBtreeNodeAccounting {
			return false, "" // not kept in memory by the fsck of 1.32-1.36: not compared
		}
		// Up to 1.31 (the v1.25.3 and v1.31.13 eras) the fsck keeps
		// and compares them.
		return true, ""
	case accounting.TypeInum:
		return false, "" // never compared by fsck
	case accounting.TypeNrInodes:
		return false, "nr_inodes (needs the inode leaves)"
	case accounting.TypePersistentReserved:
		return true, ""
	case accounting.TypeCompression:
		return !sums.cached, "compression (with cached pointers, whose stale ones need the bucket's gen)"
	case accounting.TypeBtree:
		return true, ""
	case accounting.TypeRebalanceWork, accounting.TypeReconcileWork:
		return false, "rebalance/reconcile work (needs the io options of inodes)"
	case accounting.TypeDevLeaving:
		return false, "dev_leaving"
	}
	return false, ""
}

// judgeAccounting compares the counters recovery would hold (got) with the
// sums of the check (want), for the keys bpcheck computes.
func (c *checker) judgeAccounting(got, want accounting.Table, sums *acctSums) (findings []report.Finding, notChecked []string) {
	keys := map[accounting.Pos]bool{}
	for a := range got {
		keys[a] = true
	}
	for a := range want {
		keys[a] = true
	}
	skipped := map[string]bool{}
	var sorted []accounting.Pos
	for a := range keys {
		ok, why := c.acctChecked(a, sums)
		if !ok {
			if why != "" && got[a] != nil {
				skipped[why] = true
			}
			continue
		}
		sorted = append(sorted, a)
	}
	slices.SortFunc(sorted, func(x, y accounting.Pos) int { return bytes.Compare(x[:], y[:]) })
	v := c.fs.SB.Version
	for _, a := range sorted {
		var g, w accounting.Counters
		if p := got[a]; p != nil {
			g = *p
		}
		if p := want[a]; p != nil {
			w = *p
		}
		n := max(g.N, w.N)
		g.N, w.N = n, n
		if g == w {
			continue
		}
		findings = append(findings, report.Finding{Code: report.AccountingMismatch, Dev: -1, Btree: btreeio.BtreeAccounting.Name(v),
			Pos: a.BPos(accounting.LayoutOf(v)), KeyType: bp.KeyAccounting.String(),
			Got: g.String(), Want: w.String(), Detail: fmt.Sprintf("accounting mismatch for %s", a.Text(v))})
	}
	if v >= bp.VersionReconcile {
		// reconcile_work keys (1.33+) sort after the inum keys, which
		// the read stops before: never read, never compared.
		skipped["rebalance/reconcile work (needs the io options of inodes)"] = true
	}
	for why := range skipped {
		notChecked = append(notChecked, "accounting: "+why)
	}
	sort.Strings(notChecked)
	return findings, notChecked
}

// dataTypeEmpty reports the data types of empty buckets
// (data_type_is_empty).
func dataTypeEmpty(t bp.DataType) bool {
	return t == bp.DataFree || t == bp.DataNeedGCGens || t == bp.DataNeedDiscard
}
