package shard

import (
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

// Corrected lists, in bucket order, every bucket of the shard that has an
// alloc key after check_allocations: the buckets with a stored key and
// the buckets with pointers. Call it after Finish (it uses Finish's
// judgement of lost ranges) and before Release.
func (s *Shard) Corrected(lost *Lost) []Corrected {
	cfg := s.cfg
	out := make([]Corrected, 0, len(s.buckets))
	stripesLost := lost.stripesLost()
	for i := range s.buckets {
		b := &s.buckets[i]
		if !b.hasAlloc && !b.hasRefs {
			continue
		}
		c := Corrected{Key: b.key, A: b.a, Stored: b.hasAlloc}
		c.Unknown = b.incomplete || lost.allocLost(b.key) ||
			stripesLost && (b.stripes > 0 || b.a.StripeRefcount != 0 || b.a.DataType == bp.DataStripe || b.a.DataType == bp.DataParity)
		if !c.Unknown && cfg.ValidBucket(uint64(b.key.Dev()), b.key.Bucket()) {
			c.A.DataType = allocDataType(&b.a, cfg.MultipleSticky, b.stripes, b.dirty, b.cached, b.stripe, b.hint)
			c.A.DirtySectors = uint32(b.dirty)
			if cfg.CheckStripe {
				c.A.StripeSectors = uint32(b.stripe)
			}
			if cfg.CheckCached {
				c.A.CachedSectors = uint32(b.cached)
			}
			if cfg.CheckStripeRefcount {
				c.A.StripeRefcount = b.stripes
			}
		}
		out = append(out, c)
	}
	// Alloc keys come first in key order, buckets with pointers but no
	// key after them: merge.
	slices.SortFunc(out, func(a, b Corrected) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out
}
