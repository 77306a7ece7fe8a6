// Leaf ranges: the first pass of a digest check logs, per data leaf, the
// range of the buckets its records fall in, so that a recheck of a few
// buckets reads only the leaves that may point into them.

package pipeline

import (
	"math/bits"
	"slices"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/shard"
)

// leafRange is the bucket range [lo, hi] of the records of one data leaf
// (lo > hi: none), by the leaf's id (leafID).
type leafRange struct {
	id     uint64
	lo, hi shard.BucketKey
}

// leafID names a leaf by its btree and its max position (the position of
// the key that points to it). Two leaves with one id share a merged
// range: a collision costs reads, never a record.
func leafID(id bp.BtreeID, p bp.Pos) uint64 {
	hi, lo := bits.Mul64(p.Inode^0x9e3779b97f4a7c15, p.Offset^0xc2b2ae3d27d4eb4f)
	return hi ^ lo ^ uint64(p.Snapshot)<<8 ^ uint64(id)
}

// seen widens the tracked range of the current leaf to bucket.
func (e *emitter) seen(bucket shard.BucketKey) {
	e.leafLo = min(e.leafLo, bucket)
	e.leafHi = max(e.leafHi, bucket)
}

// leafStart starts tracking a leaf's records.
func (e *emitter) leafStart() { e.leafLo, e.leafHi = ^shard.BucketKey(0), 0 }

// leafEnd logs the range of leaf n's records (its PackedLeaf and Node
// calls log a range each; a recheck merges them).
func (e *emitter) leafEnd(n *btreeio.Node) {
	e.leaves = append(e.leaves, leafRange{id: leafID(n.BtreeID, n.Max), lo: e.leafLo, hi: e.leafHi})
}

// sealLeafRanges sorts the logged ranges by id and merges those of one id.
func sealLeafRanges(rs []leafRange) []leafRange {
	slices.SortFunc(rs, func(a, b leafRange) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].id == r.id {
			out[n-1].lo, out[n-1].hi = min(out[n-1].lo, r.lo), max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// leafSkip reports whether the data leaf of btree id ending at max holds
// no record of a bucket of set, as the first pass logged it; a leaf not
// logged (unread then, or no digest check) is read.
func (c *checker) leafSkip(id bp.BtreeID, max bp.Pos, set *shard.BucketSet) bool {
	rs := c.leafRanges
	want := leafID(id, max)
	i, ok := slices.BinarySearchFunc(rs, want, func(r leafRange, t uint64) int {
		switch {
		case r.id < t:
			return -1
		case r.id > t:
			return 1
		}
		return 0
	})
	if !ok {
		return false
	}
	r := rs[i]
	return r.lo > r.hi || !set.Within(r.lo, r.hi+1)
}
