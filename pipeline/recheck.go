// The recheck: the buckets whose digests disagreed in a pass of Digest
// shards are checked again with their backpointers kept, the exact way.

package pipeline

import (
	"context"

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
		shards = append(shards, sh)
	}
	defer func() {
		for _, sh := range shards {
			sh.Release()
		}
	}()
	c.stats.Rechecked += int64(set.Len())
	if c.leafRanges == nil {
		c.leafRanges, c.leafLog = sealLeafRanges(c.leafLog), nil
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

// maxRecheckWalks is the most runs of buckets a Recheck shard's loaders
// walk to one at a time (a walk from the root each); with more, they walk
// the shard's whole range once and keep what the set holds.
const maxRecheckWalks = 64

// loadRechecked loads a Recheck shard: the backpointers and alloc keys of
// the buckets of set in its range.
func (c *checker) loadRechecked(pass int, sh *shard.Shard, set *shard.BucketSet) error {
	runs := set.Runs(sh.Lo, sh.Hi)
	if len(runs) > maxRecheckWalks {
		runs = [][2]shard.BucketKey{{sh.Lo, sh.Hi}}
	}
	for _, r := range runs {
		if err := c.loadBackpointersIn(pass, sh, r[0], r[1]); err != nil {
			return err
		}
	}
	for _, r := range runs {
		if err := c.loadAlloc(pass, []*shard.Shard{sh}, r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}
