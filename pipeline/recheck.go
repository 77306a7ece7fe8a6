// The recheck: the buckets whose digests disagreed in a pass of Digest
// shards are checked again with their backpointers kept, the exact way.

package pipeline

import (
	"context"

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
	for _, d := range digest {
		keys, all := d.Mismatches()
		if all {
			set.AddRange(d.Lo, d.Hi)
		} else {
			set.Add(keys...)
		}
	}
	set.Seal()
	if set.Empty() {
		return nil, nil, nil
	}
	var shards []*shard.Shard
	for _, d := range digest {
		if !set.Within(d.Lo, d.Hi) {
			continue
		}
		sh := shard.NewIn(shard.Recheck, c.cfg, d.Lo, d.Hi)
		sh.Only(set)
		// Exactly what the pass saw of those buckets: the arrays never
		// grow (a whole-range recheck keeps what an exact pass would).
		sh.Reserve(d.RecheckSizes(set))
		shards = append(shards, sh)
	}
	defer func() {
		for _, sh := range shards {
			sh.Release()
		}
	}()
	c.stats.Rechecked += int64(set.Len())
	if len(c.leafLog) > 0 {
		// This pass's loaders logged their leaves (the producers log in
		// the first pass only: they walk every leaf in each pass).
		c.leafRanges, c.leafLog = sealLeafRanges(append(c.leafRanges, c.leafLog...)), nil
	}
	if _, _, err := c.feed(ctx, pass, shards, tasks, nil, set); err != nil {
		return nil, nil, err
	}
	var found []report.Finding
	var incomplete []shard.BucketKey
	for _, sh := range shards {
		found = append(found, sh.Finish(&c.lost)...)
		incomplete = append(incomplete, sh.Incomplete()...)
	}
	return found, incomplete, nil
}

// loadRechecked loads a Recheck shard: the backpointers and alloc keys of
// the buckets of its set. The loaders walk the shard's whole range, as the
// pass's loaders did, so that they meet every leaf those met (a walk of a
// narrower range may miss a leaf of a corrupt btree whose siblings'
// ranges overlap), and read only the leaves whose buckets, as the pass
// logged them, touch the set (SkipLeaf).
func (c *checker) loadRechecked(pass int, sh *shard.Shard) error {
	if err := c.loadBackpointers(pass, sh); err != nil {
		return err
	}
	return c.loadAlloc(pass, []*shard.Shard{sh}, sh.Lo, sh.Hi)
}

// logLoadedLeaf logs the bucket range [lo, hi] of a leaf a loader of a
// digest check read (leafrange.go), for the recheck's loaders.
func (c *checker) logLoadedLeaf(n *btreeio.Node, lo, hi shard.BucketKey) {
	c.mu.Lock()
	c.leafLog = append(c.leafLog, leafRange{id: leafID(n.BtreeID, n.Level, n.Max), lo: lo, hi: hi})
	c.mu.Unlock()
}
