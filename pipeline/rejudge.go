// Rejudging: a fresh look at a few buckets and the keys that point into
// them, for the confirmation of a live check's findings (package confirm).
// Additive: it reuses the loaders, the emitter and the shards unchanged.

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

// BucketRef names one bucket of a member device.
type BucketRef struct {
	Dev    int
	Bucket uint64
}

// KeyRef names one key: its btree, the level of the node that holds it
// (0: a leaf key; ≥ 1: a btree node pointer; the root's key is at the
// root's level + 1) and its position, as backpointers name them.
type KeyRef struct {
	Btree bp.BtreeID
	Level uint8
	Pos   bp.Pos
}

// Rejudge checks buckets again from a fresh read of fs, as a check judges
// them: each bucket's backpointers and alloc key are read again (range
// walks from the roots), every key the backpointers name and every key of
// keys is looked up from the roots (FS.Lookup), their pointers are judged
// against the buckets, and the buckets' sums against their alloc keys.
// It returns the findings about those buckets (and about nodes that could
// not be read on the way) and the read errors met. Pointers of the keys
// into other buckets are not judged. Keys that no longer exist are
// skipped. The buckets' findings of the allocator's derived btrees (lru,
// freespace, need_discard, bucket_gens) are judged again too, each bucket
// as a shard of its own. fs's roots must be loaded.
func Rejudge(ctx context.Context, fs *btreeio.FS, buckets []BucketRef, keys []KeyRef) ([]report.Finding, []error, error) {
	c := newChecker(fs, Options{Workers: 1, MemoryBudget: 1 << 62})
	c.rejudging = true
	bks := make([]shard.BucketKey, 0, len(buckets))
	for _, b := range buckets {
		if b.Dev < 0 || b.Dev >= len(fs.SB.Members) || !fs.SB.Members[b.Dev].Exists() {
			continue
		}
		bks = append(bks, shard.MakeBucketKey(uint64(b.Dev), b.Bucket))
	}
	slices.Sort(bks)
	bks = slices.Compact(bks)
	want := map[KeyRef]bool{}
	for _, k := range keys {
		want[k] = true
	}
	shards := make([]*shard.Shard, len(bks))
	var derived *allocinfo.Keys
	if len(bks) > 0 {
		// The allocator's derived btrees, for the buckets' allocinfo
		// findings (read whole: they are small).
		derived = allocinfo.NewKeys(bks[0], bks[len(bks)-1]+1, fs.SB.Version >= bp.VersionNeedDiscardByJournalSeq)
		c.passKeys = derived
		if err := c.loadDerived(ctx, derived); err != nil {
			return nil, nil, err
		}
	}
	for i, k := range bks {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		sh := shard.New(c.cfg, k, k+1)
		shards[i] = sh
		if err := c.loadBackpointers(ctx, 1, sh); err != nil {
			return nil, nil, err
		}
		if err := c.loadAlloc(ctx, 1, []*shard.Shard{sh}, sh.Lo, sh.Hi); err != nil {
			return nil, nil, err
		}
		c.addMetadataRefs([]*shard.Shard{sh}, sh.Lo, sh.Hi)
		// The keys the bucket's backpointers name.
		lo, hi := c.bpRange(sh.Lo, sh.Hi)
		bt := &bpTargets{formatB: c.formatB, lo: lo, hi: hi, out: want}
		if err := fs.WalkRange(bp.BtreeBackpointers, 0, lo, hi, bt); err != nil {
			return nil, nil, err
		}
	}
	defer func() {
		for _, sh := range shards {
			sh.Release()
		}
	}()
	refs := make([]KeyRef, 0, len(want))
	for k := range want {
		refs = append(refs, k)
	}
	slices.SortFunc(refs, func(a, b KeyRef) int {
		if a.Btree != b.Btree {
			return int(a.Btree) - int(b.Btree)
		}
		if a.Level != b.Level {
			return int(a.Level) - int(b.Level)
		}
		return a.Pos.Cmp(b.Pos)
	})
	type found struct {
		ref KeyRef
		key bp.Key
		val []byte
	}
	var live []found
	for _, r := range refs {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		k, val, ok, err := fs.Lookup(r.Btree, r.Level, r.Pos)
		if err != nil {
			c.addError(err)
			continue
		}
		if ok {
			live = append(live, found{r, k, val})
		}
	}
	// One emitter per bucket (the shards' ranges are not contiguous);
	// each gets every key, and keeps the records of its bucket.
	for _, sh := range shards {
		al := newApplyLocks(1)
		al.loaded[0].Store(true)
		ch := make(chan []shard.Ref, 1)
		e := newEmitter(ctx, c, []*shard.Shard{sh}, []chan []shard.Ref{ch}, sh.Lo, sh.Hi, 1)
		e.apply = al
		for i := range live {
			f := &live[i]
			var err error
			if f.ref.Level == 0 && f.key.Type == bp.KeyStripe {
				err = e.emitStripePtrs(f.ref.Btree, &f.key, f.val)
			} else {
				err = e.emitKeyPtrs(f.ref.Btree, f.ref.Level, &f.key, f.val)
			}
			if err != nil {
				return nil, nil, err
			}
		}
		if err := e.flush(); err != nil {
			return nil, nil, err
		}
		close(ch)
		for batch := range ch {
			sh.Apply(batch)
		}
	}
	var out []report.Finding
	if derived != nil {
		derived.Seal()
	}
	for _, sh := range shards {
		out = append(out, sh.Finish(&c.lost)...)
		out = append(out, allocinfo.Judge(c.allocRules, derived, sh.Lo, sh.Hi, sh.Correct(&c.lost))...)
	}
	out = append(out, c.findings...)
	report.Sort(out)
	return out, c.errs, nil
}

// bpTargets collects the keys that the backpointers in [lo, hi) name.
type bpTargets struct {
	formatB bool
	lo, hi  bp.Pos
	out     map[KeyRef]bool
}

func (t *bpTargets) Node(n *btreeio.Node) error {
	if n.Level != 0 {
		return nil
	}
	for i := range n.Keys {
		k := &n.Keys[i]
		if k.Key.Type != bp.KeyBackpointer || k.Key.Pos.Less(t.lo) || !k.Key.Pos.Less(t.hi) {
			continue
		}
		v, err := bp.DecodeBackpointer(k.Val, t.formatB)
		if err != nil {
			continue // the shard's loader judges it
		}
		t.out[KeyRef{Btree: v.BtreeID, Level: v.Level, Pos: v.Pos}] = true
	}
	return nil
}

// NodeError: the loaders met the same node and recorded it as lost.
func (t *bpTargets) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }
