// Digest mode: a shard that keeps no backpointers. The loader adds each
// backpointer's digest to the sum of its bucket, and each pointer record
// adds the digest of the backpointer it expects to the sum of its own
// bucket. A bucket whose stored backpointers are exactly the ones its
// pointers expect (as a multiset of position and value) has equal sums
// and counts; any other bucket is listed by Mismatches, and a shard in
// Recheck mode then checks just those buckets against kept backpointers,
// the exact way. Keeping no backpointers spares the 32 bytes each would
// pin and the look-ups; a bucket that disagrees while its sums agree
// would need two different multisets with equal keyed 64-bit sums (see
// DigestKey).

package shard

import (
	"cmp"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"slices"
	"unsafe"

	"bpcheck/bp"
	"bpcheck/internal/hugemem"
)

// Mode says how a shard matches pointers with backpointers.
type Mode uint8

// Shard modes.
const (
	// Exact keeps every backpointer and looks each pointer's one up.
	Exact Mode = iota
	// Digest keeps per bucket the sums of the digests of the stored and
	// of the expected backpointers (see the file comment).
	Digest
	// Recheck is Exact for the buckets of a set only (Shard.Only), and
	// reports only what concerns backpointers: the findings of the
	// pointers' generations and alloc keys and of the sums came from the
	// Digest pass over the same buckets.
	Recheck
)

// DigestKey is the random key of the record digests of one check. A
// record's digest mixes its device, position and 32-byte value with the
// key through 64×64→128-bit multiplications; the key is drawn afresh for
// every check, so no content of a filesystem can be chosen to make two
// different multisets of records sum alike.
type DigestKey struct{ k [8]uint64 }

// NewDigestKey draws a key from a generator the runtime seeds at random.
func NewDigestKey() *DigestKey {
	d := &DigestKey{}
	for i := range d.k {
		d.k[i] = rand.Uint64() | 1
	}
	return d
}

// mum folds the 128-bit product of x and y.
func mum(x, y uint64) uint64 {
	hi, lo := bits.Mul64(x, y)
	return hi ^ lo
}

// Sum returns the digest of the backpointer at offset off of device dev
// with value v.
func (d *DigestKey) Sum(dev uint32, off uint64, v *[bp.BackpointerBytes]byte) uint64 {
	le := binary.LittleEndian
	a := mum(le.Uint64(v[0:])^d.k[0], le.Uint64(v[8:])^d.k[1])
	b := mum(le.Uint64(v[16:])^d.k[2], le.Uint64(v[24:])^d.k[3])
	c := mum(off^d.k[4], uint64(dev)^a^d.k[5])
	return mum(b^d.k[6], c^d.k[7])
}

// digest returns a Digest shard's sums of bucket b (held in the words an
// Exact shard uses for the bucket's backpointer range): the digests of
// the backpointers its pointers expect, less (Mismatches) those of the
// stored ones, and their count, both modulo 2^32 for the count and 2^64
// for the sum.
func (b *bucketState) digest() (sum uint64, n uint32) {
	return uint64(uint32(b.bpLo)) | uint64(uint32(b.bpHi))<<32, uint32(b.bpNext)
}

// addDigest adds sum and n to the bucket's sums (digest).
func (b *bucketState) addDigest(sum uint64, n uint32) {
	old, oldN := b.digest()
	old += sum
	b.bpLo, b.bpHi, b.bpNext = int32(uint32(old)), int32(uint32(old>>32)), int32(oldN+n)
}

// DigestEntrySize is the memory a Digest shard pins per bucket with stored
// backpointers, beside its alloc entry: the sums of those backpointers.
const DigestEntrySize = 24

// bucketDigest sums the digests of the stored backpointers of one bucket.
type bucketDigest struct {
	key BucketKey
	sum uint64
	n   uint64
}

// BPMark is where a shard's backpointers stood (MarkBPs), to go back to
// (UndoBPs).
type BPMark struct {
	n      int          // backpointers added
	nDig   int          // bpDig entries
	last   bucketDigest // the last bpDig entry then
	lastOf uint64       // lastBPOff then
	bad    bool         // digBad then
}

// MarkBPs returns where the shard's backpointers stand now.
func (s *Shard) MarkBPs() BPMark {
	if s.mode != Digest {
		return BPMark{n: len(s.bps)}
	}
	m := BPMark{n: s.nBP, nDig: len(s.bpDig), lastOf: s.lastBPOff, bad: s.digBad}
	if m.nDig > 0 {
		m.last = s.bpDig[m.nDig-1]
	}
	return m
}

// UndoBPs drops the backpointers added since m was taken (the zero BPMark:
// all of them).
func (s *Shard) UndoBPs(m BPMark) {
	if s.mode != Digest {
		s.TruncateBPs(m.n)
		return
	}
	if m.nDig > len(s.bpDig) {
		return
	}
	s.bpDig = s.bpDig[:m.nDig]
	if m.nDig > 0 {
		s.bpDig[m.nDig-1] = m.last
	}
	s.nBP, s.lastBPOff, s.digBad = m.n, m.lastOf, m.bad
	s.digLo, s.digHi = 0, 0 // the bucket of the last entry is found again
}

// ReserveDigests sizes the per-bucket sums of the stored backpointers for
// n buckets (an upper bound: the planner's count of alloc keys).
func (s *Shard) ReserveDigests(n int) {
	if s.mode != Digest || n <= cap(s.bpDig) {
		return
	}
	s.bpDigArr.Free()
	s.bpDigArr = hugemem.Alloc[bucketDigest](hugeCap(n, unsafe.Sizeof(bucketDigest{})))
	s.bpDig = s.bpDigArr.S
}

// addBPDigest adds a stored backpointer to its bucket's sums. They come in
// key order; one that does not (a corrupt btree) marks the shard for a
// recheck of all its buckets. The bucket is found by one division per
// bucket, not per backpointer: the last entry's offsets are remembered.
func (s *Shard) addBPDigest(dev uint32, off uint64, v *[bp.BackpointerBytes]byte) {
	h := s.cfg.Digest.Sum(dev, off, v)
	s.nBP++
	n := len(s.bpDig)
	if n > 0 && dev == s.aDev && off >= s.digLo && off < s.digHi {
		s.addToLast(off, h)
		return
	}
	bs, shift := s.devBucketSize(dev), s.cfg.Shift
	s.digLo, s.digHi = 0, 0
	if bs == 0 || shift >= 64 {
		s.digBad = true
		return
	}
	b := (off >> shift) / bs
	k := MakeBucketKey(uint64(dev), b)
	// Remembered for the next ones (when the offsets fit 64 bits; else
	// every backpointer divides).
	s.digLo, s.digHi, _ = bucketOffsets(b, bs, shift)
	if n > 0 {
		if last := s.bpDig[n-1].key; last == k {
			s.addToLast(off, h) // the same bucket, reached the slow way
			return
		} else if k < last {
			s.digBad = true
		}
	}
	s.lastBPOff = off
	s.bpDig = append(s.bpDig, bucketDigest{key: k, sum: h, n: 1})
}

// addToLast adds the digest h of the backpointer at offset off to the last
// bpDig entry, its bucket's.
func (s *Shard) addToLast(off, h uint64) {
	if off <= s.lastBPOff {
		s.digBad = true // a position repeated, or out of order
	}
	d := &s.bpDig[len(s.bpDig)-1]
	d.sum += h
	d.n++
	s.lastBPOff = off
}

// addPtrDigest adds the backpointer record r expects to the sums of its
// bucket b. An expected backpointer outside the record's bucket (a stripe
// block's sits at the block's end; a corrupt crc offset moves an extent's)
// is one an Exact shard may look up elsewhere in the shard (findBP, for a
// bucket without alloc key or a stripe block): it is not summed, and both
// buckets are rechecked.
func (s *Shard) addPtrDigest(b *bucketState, r *Ref) {
	dev := uint32(r.Bucket.Dev())
	if !s.bpInBucket(r.Bucket, r.BPOff) {
		s.forced = append(s.forced, r.Bucket)
		if k, ok := s.bpBucketKey(dev, r.BPOff); ok && k >= s.Lo && k < s.Hi {
			s.forced = append(s.forced, k)
			if k != r.Bucket {
				s.pairs = append(s.pairs, [2]BucketKey{min(k, r.Bucket), max(k, r.Bucket)})
			}
		}
		return
	}
	b.addDigest(s.cfg.Digest.Sum(dev, r.BPOff, &r.BPVal), 1)
}

// bpInBucket reports whether the backpointer at offset off of bucket k's
// device lies in bucket k (false when that cannot be told cheaply: the
// caller then rechecks). The offsets of the last bucket asked about are
// kept: records of consecutive extents mostly share a bucket.
func (s *Shard) bpInBucket(k BucketKey, off uint64) bool {
	c := &s.inCache[k.Dev()%len(s.inCache)]
	if !c.ok || k != c.key {
		bs, ok := s.cfg.BucketSize(uint64(k.Dev()))
		if !ok {
			bs = 0
		}
		// Offsets that do not fit 64 bits leave lo == hi: nothing is in
		// the bucket.
		c.lo, c.hi, _ = bucketOffsets(k.Bucket(), uint64(bs), s.cfg.Shift)
		c.key, c.ok = k, true
	}
	return off >= c.lo && off < c.hi
}

// Mismatches ends a Digest shard's matching: it returns the buckets whose
// stored backpointers differ from the ones their pointers expect (or that
// a digest cannot judge), in order, and whether every bucket of the
// shard's range must be rechecked instead (backpointers or alloc keys out
// of order). It
// is called once, after the last Apply and before Finish.
func (s *Shard) Mismatches() (keys []BucketKey, all bool) {
	if s.mode != Digest {
		return nil, false
	}
	if !s.indexed { // no record came: the alloc keys are still to be sorted
		s.indexBuckets()
	}
	for i := range s.bpDig {
		d := &s.bpDig[i]
		b := s.bucket(d.key)
		b.addDigest(-d.sum, uint32(-d.n))
	}
	for i := range s.buckets {
		if sum, n := s.buckets[i].digest(); sum != 0 || n != 0 {
			keys = append(keys, s.buckets[i].key)
		}
	}
	keys = append(keys, s.forced...)
	slices.Sort(keys)
	return slices.Compact(keys), s.digBad || s.allocBad
}

// RecheckSizes returns how many backpointers and alloc keys of the buckets
// of set this Digest shard saw: what a Recheck shard over its range will
// hold (Reserve). Call it after Mismatches.
func (s *Shard) RecheckSizes(set *BucketSet) (bps, allocs int) {
	for i := range s.bpDig {
		if set.Has(s.bpDig[i].key) {
			bps += int(s.bpDig[i].n)
		}
	}
	for i := range s.buckets[:s.nAlloc] {
		if set.Has(s.buckets[i].key) {
			allocs++
		}
	}
	return bps, allocs
}

// BucketLoad is what a Recheck shard holds of one bucket: its stored
// backpointers and whether it has an alloc key.
type BucketLoad struct {
	Key   BucketKey
	BPs   int
	Alloc bool
}

// RecheckLoads returns, in bucket order, the buckets of set that this
// Digest shard saw backpointers or an alloc key of, with how many of
// each: what a recheck of them would hold, bucket by bucket, so that a
// recheck too large for its memory can be cut (RecheckSizes sums it).
// Call it after Mismatches.
func (s *Shard) RecheckLoads(set *BucketSet) []BucketLoad {
	var out []BucketLoad
	for i := range s.bpDig {
		if d := &s.bpDig[i]; set.Has(d.key) {
			out = append(out, BucketLoad{Key: d.key, BPs: int(d.n)})
		}
	}
	for i := range s.buckets[:s.nAlloc] {
		if k := s.buckets[i].key; set.Has(k) {
			out = append(out, BucketLoad{Key: k, Alloc: true})
		}
	}
	// Backpointers out of order (digBad) leave several entries per
	// bucket: sorted, and merged.
	slices.SortFunc(out, func(x, y BucketLoad) int { return cmp.Compare(x.Key, y.Key) })
	j := 0
	for i := range out {
		if j > 0 && out[j-1].Key == out[i].Key {
			out[j-1].BPs += out[i].BPs
			out[j-1].Alloc = out[j-1].Alloc || out[i].Alloc
			continue
		}
		out[j] = out[i]
		j++
	}
	return out[:j]
}

// TiedBuckets returns pairs of buckets of this Digest shard that a recheck
// must hold together: a pointer in the first or second whose expected
// backpointer lies in the other (a stripe block's, or behind a corrupt
// crc offset), which an Exact shard looks up across buckets. Each pair is
// ordered (lower key first).
func (s *Shard) TiedBuckets() [][2]BucketKey { return s.pairs }

// MarkIncomplete marks buckets whose sums cannot be judged: a recheck
// found backpointers in them whose owners were lost to read errors
// (Incomplete), as Finish marks them in Exact mode.
func (s *Shard) MarkIncomplete(keys []BucketKey) {
	for _, k := range keys {
		if k >= s.Lo && k < s.Hi {
			s.bucket(k).incomplete = true
		}
	}
}

// Incomplete returns the buckets Finish marked because backpointers in
// them had owners lost to read errors (Recheck mode; MarkIncomplete).
func (s *Shard) Incomplete() []BucketKey { return s.incompleteKeys }

// BucketSet is a set of buckets: sorted keys, and ranges of keys.
type BucketSet struct {
	keys   []BucketKey
	ranges [][2]BucketKey // [lo, hi), sorted, disjoint
}

// Add adds keys (sorted or not) to the set.
func (b *BucketSet) Add(keys ...BucketKey) { b.keys = append(b.keys, keys...) }

// AddRange adds the buckets [lo, hi) to the set.
func (b *BucketSet) AddRange(lo, hi BucketKey) {
	if lo < hi {
		b.ranges = append(b.ranges, [2]BucketKey{lo, hi})
	}
}

// Seal sorts the set; call it after the last Add and before Has.
func (b *BucketSet) Seal() {
	slices.Sort(b.keys)
	b.keys = slices.Compact(b.keys)
	slices.SortFunc(b.ranges, func(x, y [2]BucketKey) int { return cmp.Compare(x[0], y[0]) })
}

// Empty reports whether the set holds no bucket.
func (b *BucketSet) Empty() bool { return b == nil || len(b.keys) == 0 && len(b.ranges) == 0 }

// Len returns the number of single keys and ranges in the set.
func (b *BucketSet) Len() int { return len(b.keys) + len(b.ranges) }

// Has reports whether k is in the set.
func (b *BucketSet) Has(k BucketKey) bool {
	if _, ok := slices.BinarySearch(b.keys, k); ok {
		return true
	}
	for _, r := range b.ranges {
		if k >= r[0] && k < r[1] {
			return true
		}
	}
	return false
}

// Within reports whether some bucket of the set lies in [lo, hi).
func (b *BucketSet) Within(lo, hi BucketKey) bool {
	i, _ := slices.BinarySearch(b.keys, lo)
	if i < len(b.keys) && b.keys[i] < hi {
		return true
	}
	for _, r := range b.ranges {
		if r[0] < hi && lo < r[1] {
			return true
		}
	}
	return false
}

// Restrict returns the buckets of the set that lie in [lo, hi), as a
// sealed set of its own. The set must be sealed.
func (b *BucketSet) Restrict(lo, hi BucketKey) *BucketSet {
	out := &BucketSet{}
	i, _ := slices.BinarySearch(b.keys, lo)
	j, _ := slices.BinarySearch(b.keys, hi)
	out.keys = slices.Clone(b.keys[i:j])
	for _, r := range b.ranges {
		out.AddRange(max(r[0], lo), min(r[1], hi))
	}
	return out
}

// Rechecked returns the set a Recheck shard is limited to (Only), or nil.
func (s *Shard) Rechecked() *BucketSet { return s.only }

// Only limits a Recheck shard to the buckets of set: backpointers, alloc
// keys and records of other buckets are dropped.
func (s *Shard) Only(set *BucketSet) { s.only = set }
