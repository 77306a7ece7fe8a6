// The recheck: the buckets whose digests disagreed in a pass of Digest
// shards are checked again with their backpointers kept, the exact way.

package pipeline

import (
	"cmp"
	"context"
	"slices"
	"sort"

	"bpcheck/btreeio"
	"bpcheck/report"
	"bpcheck/shard"
)

// recheck collects the buckets that the Digest shards of a pass could not
// judge (shard.Shard.Mismatches) and checks them again: Recheck shards
// over the same ranges load the backpointers and alloc keys of those
// buckets only, and the pointer btrees are walked again for their
// records. It returns the backpointer findings of those buckets, which
// are exactly the ones Exact shards would have reported, and the buckets
// whose sums cannot be judged (backpointers whose owners were lost to
// read errors). A healthy filesystem has no such bucket, and no recheck.
func (c *checker) recheck(ctx context.Context, pass int, digest []*shard.Shard, tasks []task) ([]report.Finding, []shard.BucketKey, error) {
	set := &shard.BucketSet{}
	// A backpointer past its device's buckets may have its bucket
	// outside the range of the shard that loaded it (the planner clamps
	// its bucket, its key does not): that shard is rechecked with any
	// part holding such a bucket (touches).
	outside := make([][]shard.BucketKey, len(digest))
	for i, d := range digest {
		keys, all := d.Mismatches()
		if all {
			set.AddRange(d.Lo, d.Hi)
		}
		set.Add(keys...) // with all, those outside the range count too
		for _, k := range keys {
			if k < d.Lo || k >= d.Hi {
				outside[i] = append(outside[i], k)
			}
		}
	}
	touches := func(i int, part *shard.BucketSet) bool {
		if part.Within(digest[i].Lo, digest[i].Hi) {
			return true
		}
		for _, k := range outside[i] {
			if part.Has(k) {
				return true
			}
		}
		return false
	}
	set.Seal()
	if set.Empty() {
		return nil, nil, nil
	}
	c.stats.Rechecked += int64(set.Len())
	if len(c.leafLog) > 0 {
		// This pass's loaders and producers logged their leaves.
		c.leafRanges, c.leafLog = sealLeafRanges(append(c.leafRanges, c.leafLog...)), nil
	}
	var found []report.Finding
	var incomplete []shard.BucketKey
	for _, part := range c.recheckParts(digest, set, touches) {
		c.stats.RecheckWalks++
		var shards []*shard.Shard
		for i, d := range digest {
			if !touches(i, part) {
				continue
			}
			sh := shard.NewIn(shard.Recheck, c.cfg, d.Lo, d.Hi)
			sh.Only(part)
			// Exactly what the pass saw of those buckets: the arrays never
			// grow (a whole-range recheck keeps what an exact pass would).
			sh.Reserve(d.RecheckSizes(part))
			shards = append(shards, sh)
		}
		_, _, err := c.feed(ctx, pass, shards, tasks, nil, part)
		for _, sh := range shards {
			if err == nil {
				found = append(found, sh.Finish(&c.lost)...)
				incomplete = append(incomplete, sh.Incomplete()...)
			}
			sh.Release()
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return found, incomplete, nil
}

// recheckLimit, when set, replaces the memory a recheck may take (tests).
var recheckLimit int64

// recheckParts cuts the recheck of set into parts that each fit the
// memory the pass's Digest shards leave of the budget (their Recheck
// shards keep every backpointer of the buckets rechecked): one part, the
// set, unless the pass found many buckets wrong. Each part is the set's
// buckets within a range of keys, and costs one more walk of the pointer
// btrees (only their leaves that touch it are read). Cuts fall on groups
// of buckets, never between two buckets a record ties (TiedBuckets): an
// Exact shard would look one's backpointer up in the other. The range of
// a shard rechecked whole (its backpointers or alloc keys came out of
// order) is cut like any other: Recheck shards sort what they load
// (shard's sortLoaded), so what a part finds in a bucket does not depend
// on the other buckets' keys.
func (c *checker) recheckParts(digest []*shard.Shard, set *shard.BucketSet, touches func(int, *shard.BucketSet) bool) []*shard.BucketSet {
	limit := recheckLimit
	if limit == 0 {
		b := c.opt.MemoryBudget
		limit = max(b-c.passHeld, b/4)
	}
	var loads []shard.BucketLoad
	var ties [][2]shard.BucketKey
	var total int64
	for i, d := range digest {
		if !touches(i, set) {
			continue
		}
		for _, l := range d.RecheckLoads(set) {
			total += loadCost(l)
			loads = append(loads, l)
		}
		ties = append(ties, d.TiedBuckets()...)
	}
	if total <= limit {
		return []*shard.BucketSet{set}
	}
	// In bucket order across the shards (a bucket outside its shard's
	// range breaks the shards' order).
	slices.SortStableFunc(loads, func(x, y shard.BucketLoad) int { return cmp.Compare(x.Key, y.Key) })
	// The ties as disjoint key intervals (t[0], t[1]]: no cut inside.
	slices.SortFunc(ties, func(x, y [2]shard.BucketKey) int { return cmp.Compare(x[0], y[0]) })
	var spans [][2]shard.BucketKey
	for _, t := range ties {
		if n := len(spans); n > 0 && t[0] < spans[n-1][1] {
			spans[n-1][1] = max(spans[n-1][1], t[1])
			continue
		}
		spans = append(spans, t)
	}
	tied := func(k shard.BucketKey) bool {
		i := sort.Search(len(spans), func(i int) bool { return spans[i][1] >= k })
		return i < len(spans) && spans[i][0] < k
	}
	var parts []*shard.BucketSet
	lo := shard.BucketKey(0)
	var cost int64
	for i := 0; i < len(loads); {
		// The loads of one group of buckets.
		g := groupStart(loads[i].Key)
		var gc int64
		j := i
		for ; j < len(loads) && groupStart(loads[j].Key) == g; j++ {
			gc += loadCost(loads[j])
		}
		if cost > 0 && cost+gc > limit && g > lo && !tied(g) {
			parts = append(parts, set.Restrict(lo, g))
			lo, cost = g, 0
		}
		cost += gc
		i = j
	}
	return append(parts, set.Restrict(lo, ^shard.BucketKey(0)))
}

// loadCost is what a Recheck shard pins for one bucket's load.
func loadCost(l shard.BucketLoad) int64 {
	allocs := int64(0)
	if l.Alloc {
		allocs = 1
	}
	return exactCost(int64(l.BPs), allocs)
}

// loadRechecked loads a Recheck shard: the backpointers and alloc keys of
// the buckets of its set. The loaders walk the shard's whole range, as the
// pass's loaders did, so that they meet every leaf those met (a walk of a
// narrower range may miss a leaf of a corrupt btree whose siblings'
// ranges overlap), and read only the leaves whose buckets, as the pass
// logged them, touch the set (SkipLeaf).
func (c *checker) loadRechecked(ctx context.Context, pass int, sh *shard.Shard) error {
	if err := c.loadBackpointers(ctx, pass, sh); err != nil {
		return err
	}
	return c.loadAlloc(ctx, pass, []*shard.Shard{sh}, sh.Lo, sh.Hi)
}

// logLoadedLeaf logs the bucket range [lo, hi] of a leaf a loader of a
// digest check read (leafrange.go), for the recheck's loaders.
func (c *checker) logLoadedLeaf(n *btreeio.Node, lo, hi shard.BucketKey) {
	c.mu.Lock()
	c.leafLog = append(c.leafLog, leafRange{id: leafID(n.BtreeID, n.Level, n.Max), lo: lo, hi: hi})
	c.mu.Unlock()
}
