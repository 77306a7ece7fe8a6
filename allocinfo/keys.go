// Package allocinfo judges the btrees the allocator derives from the alloc
// keys — lru, freespace, need_discard and bucket_gens — against the alloc
// state the pointers imply, as bcachefs fsck's check_alloc_info,
// check_lrus and check_alloc_to_lru_refs do after check_allocations has
// corrected the alloc keys in memory (in `-n` mode too: its repairs are
// made in memory, without triggers, so the derived btrees are judged
// against the corrected keys, not the stale ones on disk).
//
// A pass hands the keys of those btrees that concern its bucket range to
// a Keys, and each shard's corrected buckets (shard.Corrected) to Judge.
package allocinfo

import (
	"cmp"
	"slices"
	"sort"
	"sync"

	"bpcheck/bp"
	"bpcheck/shard"
)

// Btree ids of the derived btrees.
const (
	BtreeLRU         bp.BtreeID = 10
	BtreeNeedDiscard bp.BtreeID = 12
)

// maxBucket is the largest bucket number a BucketKey holds (48 bits);
// no member has that many buckets (their counts are capped below it).
const maxBucket = 1<<48 - 1

// GensPerKey is the number of buckets one bucket_gens key covers.
const GensPerKey = 256

// lruKey is an entry of the lru btree: its position, and the bucket the
// position's offset names (dev<<48 | bucket, the same packing as
// shard.BucketKey).
type lruKey struct {
	bucket shard.BucketKey
	id     uint16
	time   uint64
	set    bool // KEY_TYPE_set (an obsolete KEY_TYPE_lru is judged by check_lrus but does not count as present)
	pos    bp.Pos
}

// freeKey is a freespace key: buckets [start, end) of dev, at the
// generation bits genbits (the offset's top byte).
type freeKey struct {
	dev        uint32
	genbits    uint8
	start, end uint64
}

// discardKey is a need_discard key: the bucket, and (from 1.38) the
// journal seq in the position's inode.
type discardKey struct {
	bucket shard.BucketKey
	seq    uint64
	pos    bp.Pos
}

// gensKey is a bucket_gens key: the gens of buckets idx*256 .. idx*256+255.
type gensKey struct {
	dev  uint64
	idx  uint64
	gens [GensPerKey]byte
}

// Keys holds one pass's keys of the derived btrees, for buckets [Lo, Hi).
// Add may be called from several goroutines; Seal before Judge.
type Keys struct {
	// Lo and Hi bound the buckets whose keys are kept.
	Lo, Hi shard.BucketKey
	// NeedDiscardBySeq: need_discard keys sit at journal_seq_empty:dev_bucket
	// (metadata 1.38+), else at dev:bucket.
	NeedDiscardBySeq bool
	// NoStripeLRU: there is no stripe LRU (format A: id 65534 is a read
	// LRU like any other below the fragmentation LRU's).
	NoStripeLRU bool

	mu        sync.Mutex
	lru       []lruKey
	stripeLRU []lruKey       // stripe fragmentation LRU entries (offset: the stripe's index)
	free      [256][]freeKey // by generation bits
	discard   []discardKey
	gens      []gensKey
	allocEnds []shard.BucketKey
	lost      map[bp.BtreeID]bool
}

// NewKeys returns an empty Keys for buckets [lo, hi).
func NewKeys(lo, hi shard.BucketKey, needDiscardBySeq bool) *Keys {
	return &Keys{Lo: lo, Hi: hi, NeedDiscardBySeq: needDiscardBySeq, lost: map[bp.BtreeID]bool{}}
}

func (k *Keys) in(b shard.BucketKey) bool { return b >= k.Lo && b < k.Hi }

// Add takes one leaf key of the lru, freespace, need_discard or
// bucket_gens btree; keys of other btrees, and keys outside the bucket
// range, are ignored.
func (k *Keys) Add(btree bp.BtreeID, key *bp.Key, val []byte) {
	p := key.Pos
	switch btree {
	case BtreeLRU:
		id := uint16(p.Inode >> 48)
		if id == lruStripeID && !k.NoStripeLRU {
			k.mu.Lock()
			k.stripeLRU = append(k.stripeLRU, lruKey{id: id, time: p.Inode & lruTimeMax, set: key.Type == bp.KeySet, pos: p})
			k.mu.Unlock()
			return
		}
		b := shard.BucketKey(p.Offset)
		if !k.in(b) {
			return
		}
		e := lruKey{bucket: b, id: id, time: p.Inode & lruTimeMax, set: key.Type == bp.KeySet, pos: p}
		k.mu.Lock()
		k.lru = append(k.lru, e)
		k.mu.Unlock()
	case bp.BtreeFreespace:
		// Any key but a deleted one marks its positions (!!k.k->type).
		if key.Type == bp.KeyDeleted || key.Size == 0 || p.Inode >= 1<<16 {
			return
		}
		// A bucket number has 48 bits in a BucketKey: positions beyond
		// (a damaged key; no such bucket exists) are kept at the last
		// one, which no member has, instead of wrapping onto real ones.
		end := min(p.Offset&(1<<56-1), maxBucket)
		start := end - min(end, uint64(key.Size))
		lo, hi := shard.MakeBucketKey(p.Inode, start), shard.MakeBucketKey(p.Inode, end)
		if hi <= k.Lo || lo >= k.Hi {
			return
		}
		gb := uint8(p.Offset >> 56)
		k.mu.Lock()
		k.free[gb] = append(k.free[gb], freeKey{dev: uint32(p.Inode), genbits: gb, start: start, end: end})
		k.mu.Unlock()
	case BtreeNeedDiscard:
		if key.Type == bp.KeyDeleted {
			return
		}
		var e discardKey
		if k.NeedDiscardBySeq {
			e = discardKey{bucket: shard.BucketKey(p.Offset), seq: p.Inode, pos: p}
		} else {
			if p.Inode >= 1<<16 {
				return
			}
			e = discardKey{bucket: shard.MakeBucketKey(p.Inode, min(p.Offset, maxBucket)), pos: p}
		}
		if !k.in(e.bucket) {
			return
		}
		k.mu.Lock()
		k.discard = append(k.discard, e)
		k.mu.Unlock()
	case bp.BtreeBucketGens:
		if key.Type != bp.KeyBucketGens || p.Inode >= 1<<16 || p.Offset >= 1<<40 {
			return
		}
		lo := shard.MakeBucketKey(p.Inode, p.Offset*GensPerKey)
		hi := shard.MakeBucketKey(p.Inode, (p.Offset+1)*GensPerKey)
		if hi <= k.Lo || lo >= k.Hi {
			return
		}
		g := gensKey{dev: p.Inode, idx: p.Offset}
		copy(g.gens[:], val)
		k.mu.Lock()
		k.gens = append(k.gens, g)
		k.mu.Unlock()
	}
}

// AddAllocLeaf records the last position of an alloc btree leaf: the
// fsck's walk over the alloc btree ends a hole at a leaf's end.
func (k *Keys) AddAllocLeaf(max bp.Pos) {
	if max.Inode >= 1<<16 {
		return
	}
	b := shard.MakeBucketKey(max.Inode, max.Offset) + 1
	if max.Offset >= 1<<48-1 {
		b = shard.MakeBucketKey(max.Inode+1, 0) // the rest of the device
	}
	k.mu.Lock()
	k.allocEnds = append(k.allocEnds, b)
	k.mu.Unlock()
}

// Lost records that a node of btree could not be read: nothing that
// depends on its keys is judged in this pass.
func (k *Keys) Lost(btree bp.BtreeID) {
	k.mu.Lock()
	k.lost[btree] = true
	k.mu.Unlock()
}

// AllocEnds returns the buckets after the alloc leaves' last keys (after
// Seal: sorted).
func (k *Keys) AllocEnds() []shard.BucketKey { return k.allocEnds }

// LostBtrees lists the btrees with unreadable nodes.
func (k *Keys) LostBtrees() []bp.BtreeID {
	var out []bp.BtreeID
	for id := range k.lost {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// StripeLRU returns the stripe LRU entries (whole btree: they are not
// keyed by bucket), in position order after Seal.
func (k *Keys) StripeLRU() []lruKey { return k.stripeLRU }

// Seal sorts what was added; call it once, after the last Add.
func (k *Keys) Seal() {
	slices.SortFunc(k.lru, func(a, b lruKey) int { return cmp.Or(cmp.Compare(a.bucket, b.bucket), a.pos.Cmp(b.pos)) })
	slices.SortFunc(k.stripeLRU, func(a, b lruKey) int { return a.pos.Cmp(b.pos) })
	for i := range k.free {
		slices.SortFunc(k.free[i], func(a, b freeKey) int { return cmp.Or(cmp.Compare(a.dev, b.dev), cmp.Compare(a.start, b.start)) })
	}
	slices.SortFunc(k.discard, func(a, b discardKey) int { return cmp.Or(cmp.Compare(a.bucket, b.bucket), a.pos.Cmp(b.pos)) })
	slices.SortFunc(k.gens, func(a, b gensKey) int { return cmp.Or(cmp.Compare(a.dev, b.dev), cmp.Compare(a.idx, b.idx)) })
	slices.Sort(k.allocEnds)
	k.allocEnds = slices.Compact(k.allocEnds)
}

// gensOf returns the gens of bucket_gens key idx of dev, nil when there
// is none.
func (k *Keys) gensOf(dev, idx uint64) *[GensPerKey]byte {
	i, ok := slices.BinarySearchFunc(k.gens, [2]uint64{dev, idx}, func(e gensKey, t [2]uint64) int {
		return cmp.Or(cmp.Compare(e.dev, t[0]), cmp.Compare(e.idx, t[1]))
	})
	if !ok {
		return nil
	}
	return &k.gens[i].gens
}

// freeAt returns the freespace key of dev at genbits covering bucket b
// (ok), or else the start of the next one above b at genbits (next; ^0
// when none). Keys of one generation never overlap (they are extents).
func (k *Keys) freeAt(dev uint32, genbits uint8, b uint64) (e freeKey, ok bool, next uint64) {
	s := k.free[genbits]
	i := sort.Search(len(s), func(i int) bool { return s[i].dev > dev || s[i].dev == dev && s[i].end > b })
	if i == len(s) || s[i].dev != dev {
		return freeKey{}, false, ^uint64(0)
	}
	if s[i].start <= b {
		return s[i], true, 0
	}
	return freeKey{}, false, s[i].start
}

// freeKeys calls fn for every freespace key that overlaps buckets
// [lo, hi), generation by generation, in bucket order.
func (k *Keys) freeKeys(lo, hi shard.BucketKey, fn func(freeKey)) {
	for i := range k.free {
		s := k.free[i] // sorted, and one generation's keys do not overlap
		j := sort.Search(len(s), func(j int) bool { return shard.MakeBucketKey(uint64(s[j].dev), s[j].end) > lo })
		for ; j < len(s) && shard.MakeBucketKey(uint64(s[j].dev), s[j].start) < hi; j++ {
			fn(s[j])
		}
	}
}

// allocEndAfter returns the first alloc leaf end above b, or ^0.
func (k *Keys) allocEndAfter(b shard.BucketKey) shard.BucketKey {
	i, ok := slices.BinarySearch(k.allocEnds, b)
	if ok {
		i++
	}
	if i < len(k.allocEnds) {
		return k.allocEnds[i]
	}
	return ^shard.BucketKey(0)
}
