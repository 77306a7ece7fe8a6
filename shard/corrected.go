package shard

import (
	"cmp"
	"slices"

	"bpcheck/bp"
)

// Corrected is a bucket's alloc key as bcachefs fsck's check_allocations
// leaves it in memory: the stored key (zero when none was read) with the
// data type and sector counts the pointers imply. The passes after it
// (check_alloc_info, check_lrus, check_alloc_to_lru_refs) judge the
// derived btrees against this state, not against the stale key.
type Corrected struct {
	Key BucketKey
	A   bp.AllocV4
	// Stored: an alloc key was read for the bucket. A bucket with
	// pointers but no key has one after check_allocations (it recreates
	// it); a bucket with neither is a hole of the alloc btree and is not
	// listed.
	Stored bool
	// Unknown: read errors hid some of the bucket's pointers or its alloc
	// key, so its state is not known and nothing derived from it is
	// judged.
	Unknown bool
}

// CorrectedList is a list of corrected buckets in bucket order.
type CorrectedList interface {
	Len() int
	At(i int) Corrected
}

// CorrectedSlice is a CorrectedList held in a slice.
type CorrectedSlice []Corrected

// Len is the number of buckets.
func (c CorrectedSlice) Len() int { return len(c) }

// At returns bucket i.
func (c CorrectedSlice) At(i int) Corrected { return c[i] }

// CorrectedView lists a shard's corrected buckets (Shard.Correct).
type CorrectedView struct{ s *Shard }

// Len is the number of buckets.
func (v CorrectedView) Len() int { return len(v.s.buckets) }

// At returns bucket i.
func (v CorrectedView) At(i int) Corrected {
	b := &v.s.buckets[i]
	return Corrected{Key: b.key, A: b.a, Stored: b.hasAlloc, Unknown: b.incomplete}
}

// Correct ends the shard's use as a checker and turns its buckets into
// the corrected alloc keys, in bucket order and in place (no memory is
// taken: fresh memory costs a page fault per 4 KiB): every bucket that
// has an alloc key after check_allocations, a stored key or pointers.
// Call it after Finish (it uses Finish's judgement of lost ranges); the
// shard answers nothing else afterwards. The view is valid until Release.
func (s *Shard) Correct(lost *Lost) CorrectedView {
	cfg := s.cfg
	stripesLost := lost.stripesLost()
	out := s.buckets[:0]
	for i := range s.buckets {
		b := &s.buckets[i] // changed in place: an entry is 120 bytes
		if !b.hasAlloc && !b.hasRefs {
			continue
		}
		b.incomplete = b.incomplete || lost.allocLost(b.key) ||
			stripesLost && (b.stripes > 0 || b.a.StripeRefcount != 0 || b.a.DataType == bp.DataStripe || b.a.DataType == bp.DataParity)
		if !b.incomplete && cfg.ValidBucket(uint64(b.key.Dev()), b.key.Bucket()) {
			b.a.DataType = allocDataType(&b.a, cfg.MultipleSticky, b.stripes, b.dirty, b.cached, b.stripe, b.hint)
			b.a.DirtySectors = uint32(b.dirty)
			if cfg.CheckStripe {
				b.a.StripeSectors = uint32(b.stripe)
			}
			if cfg.CheckCached {
				b.a.CachedSectors = uint32(b.cached)
			}
			if cfg.CheckStripeRefcount {
				b.a.StripeRefcount = b.stripes
			}
		}
		if n := len(out); n == i {
			out = out[:n+1] // already in its place
		} else {
			out = append(out, *b)
		}
	}
	s.buckets = out
	// The alloc keys come first, in order; buckets with pointers but no
	// key after them: a nearly sorted array, mostly a sorted one (no
	// 120-byte entry moved then).
	byKey := func(a, b bucketState) int { return cmp.Compare(a.key, b.key) }
	if !slices.IsSortedFunc(s.buckets, byKey) {
		slices.SortStableFunc(s.buckets, byKey) // equal keys as they came (sortLoaded)
	}
	// A bucket whose alloc key was read twice (overlapping leaves of a
	// corrupt alloc btree) is one bucket, as the kernel's iterator gives
	// one key a position: the first, which the pointers were judged
	// against (sortLoaded); judged twice, every allocinfo finding of it
	// came twice.
	s.buckets = slices.CompactFunc(s.buckets, func(a, b bucketState) bool { return a.key == b.key })
	s.extra, s.lastOK, s.indexed = nil, false, false
	s.dropDense()
	return CorrectedView{s}
}
