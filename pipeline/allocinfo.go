// The allocator's derived btrees: each pass reads the lru, freespace,
// need_discard and bucket_gens btrees (small next to extents and
// backpointers) for its bucket range, and each shard's corrected alloc
// keys are judged against them when the shard finishes (package
// allocinfo).

package pipeline

import (
	"context"
	"slices"

	"bpcheck/allocinfo"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/report"
	"bpcheck/shard"
)

// derivedBtrees are the btrees allocinfo judges, read whole once per pass.
var derivedBtrees = []bp.BtreeID{allocinfo.BtreeLRU, bp.BtreeFreespace, allocinfo.BtreeNeedDiscard, bp.BtreeBucketGens}

// allocRules returns the era's rules for the derived btrees.
func allocRules(fs *btreeio.FS) *allocinfo.Rules {
	sb := fs.SB
	return &allocinfo.Rules{
		Member: func(dev uint64) (allocinfo.Member, bool) {
			if dev >= 256 {
				return allocinfo.Member{}, false
			}
			m := sb.Member(uint8(dev))
			if m == nil {
				return allocinfo.Member{}, false
			}
			// Which buckets exist is the superblock's nbuckets (below
			// 2^48, the bucket part of a BucketKey); walks go as far as
			// the device reaches (DevBuckets), so a damaged count never
			// drives them.
			return allocinfo.Member{BucketSize: uint32(m.BucketSize), FirstBucket: uint64(m.FirstBucket), NBuckets: min(m.NBuckets, 1<<48-1),
				WalkEnd: fs.DevBuckets(int(dev)), FreespaceInitialized: m.FreespaceInitialized()}, true
		},
		FragLRUField:     sb.Version < bp.VersionInodeHasChildSnapshots,
		LRUEntryChecksA:  !sb.FormatB(),
		NoAutofix:        !sb.FormatB(),
		NoAutofixGensLRU: sb.Version < bp.VersionInodeHasChildSnapshots,
		MovableMultiple:  sb.Version >= bp.VersionErasureCoding, // the v1.39.2 era
		PerDevFragLRU:    sb.Version >= bp.VersionPerDevFragmentationLRU,
		BtreeName:        func(id bp.BtreeID) string { return id.Name(sb.Version) },
	}
}

// derivedLoader hands the leaf keys of one derived btree to the pass's
// allocinfo.Keys.
type derivedLoader struct {
	c    *checker
	ctx  context.Context // a cancel stops the walk (nil: never)
	keys *allocinfo.Keys
}

func (l *derivedLoader) Node(n *btreeio.Node) error {
	if err := ctxErr(l.ctx); err != nil {
		return err
	}
	if n.Level != 0 {
		return nil
	}
	l.c.countLoaded(n)
	l.c.loadedNodeProblems(n)
	for i := range n.Keys {
		k := &n.Keys[i]
		l.keys.Add(n.BtreeID, &k.Key, k.Val)
	}
	return nil
}

func (l *derivedLoader) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	var lost []shard.LostRange
	l.c.nodeLost(&lost, btree, level, parent, err)
	l.keys.Lost(btree)
	return nil
}

// loadDerived reads the derived btrees into keys.
func (c *checker) loadDerived(ctx context.Context, keys *allocinfo.Keys) error {
	l := &derivedLoader{c: c, ctx: ctx, keys: keys}
	for _, id := range derivedBtrees {
		if err := c.fs.Walk(id, 0, l); err != nil {
			return err
		}
	}
	return nil
}

// judgeStripeLRU judges the stripe fragmentation LRU (format B) after the
// last pass, when every stripe and every stripe_sector_count_wrong is
// known.
func (c *checker) judgeStripeLRU(res *Result) {
	k := c.firstKeys
	if !c.formatB || k == nil {
		return
	}
	if len(k.StripeLRU()) == 0 && len(c.acctSums.stripeLRU) == 0 {
		return
	}
	if c.stripesUnknown || c.acctSums.stripeLRUUnknown || slices.Contains(k.LostBtrees(), allocinfo.BtreeLRU) {
		res.NotChecked = append(res.NotChecked, "lru: the stripe LRU (stripes or lru nodes unreadable)")
		return
	}
	corrected := map[uint64]bool{}
	for i := range c.findings {
		if f := &c.findings[i]; f.Code == report.StripeSectorCountWrong {
			corrected[f.Pos.Offset] = true
		}
	}
	sb := c.fs.SB
	c.findings = append(c.findings, allocinfo.JudgeStripeLRU(k, c.acctSums.stripeLRU, corrected, func(id bp.BtreeID) string { return id.Name(sb.Version) })...)
}
