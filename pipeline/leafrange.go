// Node logs: a digest check logs every node its producers visit in the
// first pass (with the range of the buckets its records fall in) and
// every leaf its loaders visit in each pass (with the range of the
// buckets of its keys), so that a recheck of a few buckets reads only the
// leaves that may hold their records or keys, and ignores any node the
// pass could not read (the recheck must see what the pass saw).

package pipeline

import (
	"cmp"
	"math/bits"
	"slices"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/shard"
)

// leafRange is the bucket range [lo, hi] of the records or keys of one
// node (lo > hi: none), by the node's id (leafID). A data leaf's records
// also log their devices (devs: bit d for device d, bit 63 for every
// device from 63) and the range [blo, bhi] of their bucket numbers on any
// of them: the extents of a filesystem whose data is spread over several
// devices point into every device, so that [lo, hi], in (device, bucket)
// order, spans the devices between whole, while each device's buckets
// are those being filled at the time, near one another. devs 0: not
// logged (the loaders' leaves, whose keys are in bucket order).
type leafRange struct {
	id       uint64
	lo, hi   shard.BucketKey
	devs     uint64
	blo, bhi uint64
}

// mayHold reports whether the node may hold a record or key of a bucket
// of set.
func (r *leafRange) mayHold(set *shard.BucketSet) bool {
	if r.lo > r.hi || !set.Within(r.lo, r.hi+1) {
		return false
	}
	if r.devs == 0 || r.devs&(1<<63) != 0 {
		return true
	}
	for m := r.devs; m != 0; m &= m - 1 {
		d := uint64(bits.TrailingZeros64(m))
		if set.Within(shard.MakeBucketKey(d, r.blo), shard.MakeBucketKey(d, r.bhi)+1) {
			return true
		}
	}
	return false
}

// leafID names a node by its btree, level and max position (the position
// of the key that points to it). Two nodes with one id share a merged
// range: a collision costs reads, never a record.
func leafID(id bp.BtreeID, level uint8, p bp.Pos) uint64 {
	hi, lo := bits.Mul64(p.Inode^0x9e3779b97f4a7c15, p.Offset^0xc2b2ae3d27d4eb4f)
	return hi ^ lo ^ uint64(p.Snapshot)<<16 ^ uint64(level)<<8 ^ uint64(id)
}

// seen widens the tracked ranges of the current leaf to bucket.
func (e *emitter) seen(bucket shard.BucketKey) {
	e.leafDevs |= 1 << min(uint64(bucket)>>48, 63)
	b := uint64(bucket) & (1<<48 - 1)
	e.leafBlo = min(e.leafBlo, b)
	e.leafBhi = max(e.leafBhi, b)
}

// leafStart starts tracking a leaf's records.
func (e *emitter) leafStart() { e.leafDevs, e.leafBlo, e.leafBhi = 0, ^uint64(0), 0 }

// leafEnd logs the ranges of node n's records (a leaf's PackedLeaf and
// Node calls log ranges each; a recheck merges them). The range in
// (device, bucket) order is that of the devices and bucket numbers, which
// holds every record's: from the first device's lowest bucket number to
// the last device's highest (every bucket from device 63 on, when the
// leaf has any there: allBuckets, whose end mayHold can still count
// past).
func (e *emitter) leafEnd(n *btreeio.Node) {
	r := leafRange{id: leafID(n.BtreeID, n.Level, n.Max), lo: 1, hi: 0, devs: e.leafDevs, blo: e.leafBlo, bhi: e.leafBhi}
	if d := e.leafDevs; d != 0 {
		r.lo = shard.MakeBucketKey(uint64(bits.TrailingZeros64(d)), r.blo)
		r.hi = allBuckets
		if d&(1<<63) == 0 {
			r.hi = shard.MakeBucketKey(uint64(63-bits.LeadingZeros64(d)), r.bhi)
		}
	}
	e.leaves = append(e.leaves, r)
}

// sealLeafRanges sorts the logged ranges by id and merges those of one id.
func sealLeafRanges(rs []leafRange) []leafRange {
	slices.SortFunc(rs, func(a, b leafRange) int { return cmp.Compare(a.id, b.id) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].id == r.id {
			o := &out[n-1]
			oEmpty, rEmpty := o.lo > o.hi, r.lo > r.hi
			o.lo, o.hi = min(o.lo, r.lo), max(o.hi, r.hi)
			switch {
			case rEmpty:
			case oEmpty:
				o.devs, o.blo, o.bhi = r.devs, r.blo, r.bhi
			case o.devs == 0 || r.devs == 0:
				o.devs = 0 // one of them has no per-device ranges
			default:
				o.devs |= r.devs
				o.blo, o.bhi = min(o.blo, r.blo), max(o.bhi, r.bhi)
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// leafSkip reports whether a recheck leaves the leaf of btree id ending at
// max unread: the pass logged no record (or key) of it in a bucket of set,
// or did not log it at all (it could not read it then: the recheck must see
// what the pass saw, and a leaf that read only now would add records the
// pass's sums lack).
func (c *checker) leafSkip(id bp.BtreeID, max bp.Pos, set *shard.BucketSet) bool {
	r, ok := c.loggedNode(id, 0, max)
	return !ok || !r.mayHold(set)
}

// nodeLogged reports whether the pass logged node n (a recheck ignores
// one it did not: see leafSkip).
func (c *checker) nodeLogged(n *btreeio.Node) bool {
	_, ok := c.loggedNode(n.BtreeID, n.Level, n.Max)
	return ok
}

func (c *checker) loggedNode(id bp.BtreeID, level uint8, max bp.Pos) (leafRange, bool) {
	rs := c.leafRanges
	want := leafID(id, level, max)
	i, ok := slices.BinarySearchFunc(rs, want, func(r leafRange, t uint64) int { return cmp.Compare(r.id, t) })
	if !ok {
		return leafRange{}, false
	}
	return rs[i], true
}
