package pipeline

import (
	"sort"

	"bpcheck/allocinfo"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/shard"
)

// digestPlanning lets makePlan pack a digest check's passes by its Digest
// shards' memory; tests turn it off to give a digest check and an exact
// one the same passes.
var digestPlanning = true

// span is a bucket range [lo, hi) with the memory its shard would pin.
type span struct {
	lo, hi shard.BucketKey
	cost   int64 // memory pinned by its shard (Digest or Exact, planCost)
	work   int64 // exact cost: what its loaders and records weigh
	bps    int64 // estimated backpointers (an upper bound)
	allocs int64 // buckets (an upper bound of alloc keys)
}

// exactCost is the memory an Exact shard of bps backpointers and allocs
// alloc keys pins, and the weight of its work (splitShards).
func exactCost(bps, allocs int64) int64 {
	return bps*shard.BPEntrySize + allocs*shard.AllocEntrySize
}

// planCost is the memory the shard of a span pins: an Exact shard's keeps
// every backpointer; a Digest shard's keeps per bucket its state and the
// sums of its stored backpointers, and none of them.
func planCost(u span, digest bool) int64 {
	if digest {
		return u.allocs * (shard.AllocEntrySize + shard.DigestEntrySize)
	}
	return exactCost(u.bps, u.allocs)
}

// Plan is how the bucket space is cut into passes and shards.
type Plan struct {
	// Passes lists, per pass, the bucket ranges of its shards.
	Passes [][]span
	// EstimatedBytes is the estimated memory pinned by all shards together.
	EstimatedBytes int64
}

// leafCost is one leaf of the backpointers btree: the bucket its last key
// falls in and the memory its keys would pin.
type leafCost struct {
	end  shard.BucketKey
	cost int64
}

// leafVisitor collects the sizes of backpointer leaves from level-1 nodes.
type leafVisitor struct {
	fs     *btreeio.FS
	leaves []leafCost
	errs   []error
}

// bpKeyMinBytes is the smallest on-disk size of a backpointer key: a
// 32-byte value behind at least one word of packed key.
const bpKeyMinBytes = 40

func (lv *leafVisitor) addLeaf(k *bp.Key, val []byte) {
	sectors := lv.fs.SB.BtreeNodeSectors()
	if k.Type == bp.KeyBtreePtrV2 {
		if v, err := bp.DecodeBtreePtrV2(val); err == nil && v.SectorsWritten != 0 {
			sectors = uint32(v.SectorsWritten)
		}
	}
	n := int64(sectors) * btreeio.SectorSize / bpKeyMinBytes
	lv.leaves = append(lv.leaves, leafCost{end: bpBucketClamped(lv.fs, k.Pos), cost: n * shard.BPEntrySize})
}

func (lv *leafVisitor) Node(n *btreeio.Node) error {
	if n.Level != 1 {
		return nil
	}
	for i := range n.Keys {
		lv.addLeaf(&n.Keys[i].Key, n.Keys[i].Val)
	}
	return nil
}

func (lv *leafVisitor) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	lv.errs = append(lv.errs, err)
	return nil
}

// bpBucket maps a backpointer position to its bucket key, as the shards
// do (past the device's last bucket too: the shard whose positions hold
// the key owns it); positions past the last member sort at the end.
func bpBucket(fs *btreeio.FS, p bp.Pos) shard.BucketKey {
	if p.Inode >= uint64(len(fs.SB.Members)) {
		return shard.MakeBucketKey(uint64(len(fs.SB.Members)), 0)
	}
	m := &fs.SB.Members[p.Inode]
	if m.BucketSize == 0 {
		return shard.MakeBucketKey(p.Inode, 0)
	}
	return shard.MakeBucketKey(p.Inode, m.BucketOf(p.Offset>>fs.SB.ExtentBPShift()))
}

// bpBucketClamped is bpBucket with bucket numbers past the device's end
// taken as its end: the planner's estimate of where a leaf ends.
func bpBucketClamped(fs *btreeio.FS, p bp.Pos) shard.BucketKey {
	k := bpBucket(fs, p)
	if p.Inode < uint64(len(fs.SB.Members)) {
		k = min(k, shard.MakeBucketKey(p.Inode, fs.SB.Members[p.Inode].NBuckets))
	}
	return k
}

// endKey is the bucket key past every member's buckets.
func endKey(fs *btreeio.FS) shard.BucketKey {
	return shard.MakeBucketKey(uint64(len(fs.SB.Members)), 0)
}

// makePlan cuts the bucket space so that no pass pins more than budget
// bytes, and each pass into up to nShards shards of similar work. With
// digest, shards are Digest shards: a span's cost is their memory, and
// passes may be packed by it (see below). Shards are cut by work, not
// memory, so that the shards of a pass are those an exact plan of the
// same passes draws.
func makePlan(fs *btreeio.FS, budget int64, nShards int, digest bool) (*Plan, []error) {
	lv := &leafVisitor{fs: fs}
	if r := fs.Root(bp.BtreeBackpointers); r != nil {
		if r.Level == 0 {
			lv.addLeaf(&r.Key, r.Val)
		} else {
			fs.Walk(bp.BtreeBackpointers, 1, lv)
		}
	}
	// Unit spans: cut at every leaf end, every device start and every
	// chunk of buckets, so that no unit is large.
	const chunk = 1 << 16
	cuts := make(map[shard.BucketKey]int64, len(lv.leaves)+64)
	for _, l := range lv.leaves {
		cuts[l.end] += l.cost
	}
	// Every unit's bp cost is BPEntrySize per estimated backpointer.
	for i := range fs.SB.Members {
		m := &fs.SB.Members[i]
		if !m.Exists() {
			continue
		}
		nb := fs.DevBuckets(i)
		step := max(uint64(chunk), nb/1024)
		for b := uint64(0); b < nb; b += step {
			cuts[shard.MakeBucketKey(uint64(i), b)] += 0
		}
	}
	keys := make([]shard.BucketKey, 0, len(cuts)+1)
	for k := range cuts {
		keys = append(keys, k)
	}
	keys = append(keys, endKey(fs))
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var units []span
	lo := shard.MakeBucketKey(0, 0)
	for _, k := range keys {
		if k < lo {
			// A leaf that ends inside the last unit (its end was
			// rounded up past this one): its backpointers are that
			// unit's.
			if len(units) > 0 {
				units[len(units)-1].bps += cuts[k] / shard.BPEntrySize
			}
			continue
		}
		// Cut after the leaf's last bucket, rounded up to a group of 256
		// buckets: allocinfo judges bucket_gens keys and alloc holes
		// in such groups, which must not span shards.
		hi := roundGroup(k + 1)
		if k == endKey(fs) {
			hi = k
		}
		if hi <= lo {
			continue
		}
		nb := allocCost(fs, lo, hi) / shard.AllocEntrySize
		units = append(units, span{lo: lo, hi: hi, bps: cuts[k] / shard.BPEntrySize, allocs: nb})
		lo = hi
	}
	spreadAllocs(fs, units)
	for i := range units {
		units[i].work = exactCost(units[i].bps, units[i].allocs)
		units[i].cost = planCost(units[i], digest)
	}
	plan := &Plan{}
	for _, u := range units {
		plan.EstimatedBytes += u.cost
	}
	plan.Passes = packPasses(units, budget, nShards, func(u span) int64 { return u.work })
	if digest && digestPlanning {
		// Digest shards pin less than Exact ones, and their rechecks
		// more: passes packed by the Digest shards' memory in three
		// quarters of the budget leave a quarter to the rechecks (more
		// is cut into parts, recheckParts). They are taken when they are
		// fewer than an exact plan's; else the exact plan's passes, whose
		// rechecks never hold more than its Exact shards would.
		if p := packPasses(units, budget-budget/4, nShards, func(u span) int64 { return u.cost }); len(p) < len(plan.Passes) {
			plan.Passes = p
		}
	}
	if len(plan.Passes) == 0 {
		plan.Passes = [][]span{{{lo: 0, hi: endKey(fs)}}}
	}
	// The first pass starts at bucket 0 of device 0, the last one ends
	// past every device: records outside every member's range still land
	// in a shard.
	first := plan.Passes[0]
	first[0].lo = 0
	last := plan.Passes[len(plan.Passes)-1]
	last[len(last)-1].hi = ^shard.BucketKey(0)
	return plan, lv.errs
}

// packPasses packs units, in order, into passes whose units cost (by
// cost) at most budget together (a unit costing more is a pass of its
// own), and cuts each pass into up to nShards shards (splitShards).
func packPasses(units []span, budget int64, nShards int, cost func(span) int64) [][]span {
	var passes [][]span
	var cur []span
	var curCost int64
	flush := func() {
		if len(cur) > 0 {
			passes = append(passes, splitShards(cur, nShards))
		}
		cur, curCost = nil, 0
	}
	for _, u := range units {
		if len(cur) > 0 && curCost+cost(u) > budget {
			flush()
		}
		cur = append(cur, u)
		curCost += cost(u)
	}
	flush()
	return passes
}

// allocLeaves sizes the alloc btree's leaves from its level-1 nodes:
// per leaf the bucket key of its last key and its most keys.
type allocLeaves struct {
	fs     *btreeio.FS
	leaves []leafCost // cost holds the key count
}

// allocKeyMinBytes is the smallest on-disk alloc_v4 key: a 48-byte value
// (the old 6-u64 layout) behind at least one word of packed key.
const allocKeyMinBytes = 56

func (a *allocLeaves) add(k *bp.Key, val []byte) {
	sectors := a.fs.SB.BtreeNodeSectors()
	if k.Type == bp.KeyBtreePtrV2 {
		if v, err := bp.DecodeBtreePtrV2(val); err == nil && v.SectorsWritten != 0 {
			sectors = uint32(v.SectorsWritten)
		}
	}
	end := shard.MakeBucketKey(uint64(len(a.fs.SB.Members)), 0)
	if k.Pos.Inode < uint64(len(a.fs.SB.Members)) {
		end = shard.MakeBucketKey(k.Pos.Inode, min(k.Pos.Offset, a.fs.SB.Members[k.Pos.Inode].NBuckets))
	}
	a.leaves = append(a.leaves, leafCost{end: end, cost: int64(sectors) * btreeio.SectorSize / allocKeyMinBytes})
}

func (a *allocLeaves) Node(n *btreeio.Node) error {
	if n.Level == 1 {
		for i := range n.Keys {
			a.add(&n.Keys[i].Key, n.Keys[i].Val)
		}
	}
	return nil
}

func (a *allocLeaves) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// spreadAllocs replaces each unit's alloc estimate (its bucket count, an
// upper bound) by what the alloc btree's leaves hold: every leaf's keys
// spread evenly over the buckets it covers, never more than the unit's
// buckets. On sparse devices most buckets have no alloc key, and this
// keeps the planner from reserving memory for them.
func spreadAllocs(fs *btreeio.FS, units []span) {
	a := &allocLeaves{fs: fs}
	r := fs.Root(bp.BtreeAlloc)
	if r == nil {
		return
	}
	if r.Level == 0 {
		a.add(&r.Key, r.Val)
	} else if err := fs.Walk(bp.BtreeAlloc, 1, a); err != nil {
		return
	}
	buckets := func(lo, hi shard.BucketKey) float64 {
		if hi <= lo {
			return 0
		}
		return float64(allocCost(fs, lo, hi) / shard.AllocEntrySize)
	}
	est := make([]float64, len(units))
	start := shard.BucketKey(0)
	ui := 0 // units and leaves are both in bucket order
	for _, l := range a.leaves {
		end := l.end + 1 // exclusive
		total := buckets(start, end)
		if total <= 0 {
			start = end
			continue
		}
		for ui < len(units) && units[ui].hi <= start {
			ui++
		}
		for i := ui; i < len(units) && units[i].lo < end; i++ {
			lo, hi := max(units[i].lo, start), min(units[i].hi, end)
			if hi > lo {
				est[i] += float64(l.cost) * buckets(lo, hi) / total
			}
		}
		start = end
	}
	for i := range units {
		units[i].allocs = min(units[i].allocs, int64(est[i])+1)
	}
}

// roundGroup rounds k up to the next group of allocinfo.GensPerKey
// buckets of its device.
func roundGroup(k shard.BucketKey) shard.BucketKey {
	const g = allocinfo.GensPerKey
	b := (k.Bucket() + g - 1) / g * g
	if b >= 1<<48 {
		return shard.MakeBucketKey(uint64(k.Dev())+1, 0)
	}
	return shard.MakeBucketKey(uint64(k.Dev()), b)
}

// groupStart is the first bucket of k's group of allocinfo.GensPerKey
// buckets (the group roundGroup rounds up to the end of).
func groupStart(k shard.BucketKey) shard.BucketKey {
	const g = allocinfo.GensPerKey
	return shard.MakeBucketKey(uint64(k.Dev()), k.Bucket()/g*g)
}

// allocCost is the memory the alloc keys of buckets [lo, hi) pin.
func allocCost(fs *btreeio.FS, lo, hi shard.BucketKey) int64 {
	var n int64
	for d := lo.Dev(); d <= hi.Dev() && d < len(fs.SB.Members); d++ {
		m := &fs.SB.Members[d]
		if !m.Exists() {
			continue
		}
		a, b := uint64(0), fs.DevBuckets(d)
		if d == lo.Dev() {
			a = max(a, lo.Bucket())
		}
		if d == hi.Dev() {
			b = min(b, hi.Bucket())
		}
		if b > a {
			n += int64(b - a)
		}
	}
	return n * shard.AllocEntrySize
}

// splitShards cuts a pass's units into up to n shards of similar work.
func splitShards(units []span, n int) []span {
	if n < 1 {
		n = 1
	}
	var total int64
	for _, u := range units {
		total += u.work
	}
	target := total/int64(n) + 1
	var out []span
	cur := span{lo: units[0].lo}
	for i, u := range units {
		cur.hi = u.hi
		cur.cost += u.cost
		cur.work += u.work
		cur.bps += u.bps
		cur.allocs += u.allocs
		if cur.work >= target && len(out) < n-1 && i < len(units)-1 {
			out = append(out, cur)
			cur = span{lo: u.hi}
		}
	}
	out = append(out, cur)
	return out
}
