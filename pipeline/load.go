// The loaders: each shard's slice of the backpointers and alloc btrees, and
// the metadata buckets (superblocks, journal) its records need.

package pipeline

import (
	"context"
	"fmt"
	"math/bits"

	"bpcheck/allocinfo"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/report"
	"bpcheck/shard"
)

// bpLoader fills shards with the backpointers of [lo, hi).
type bpLoader struct {
	c      *checker
	ctx    context.Context // a cancel stops the walk (nil: never)
	shards []*shard.Shard
	lo, hi shard.BucketKey
	pass   int
	si     int
	// plo, phi: the backpointer positions [plo, phi) this loader owns
	// (phi open-ended when open).
	plo, phi bp.Pos
	open     bool
	// quiet: a recheck (shard.Recheck) loads again what a Digest pass
	// loaded and reported: invalid keys are skipped unreported, and the
	// leaves are not counted again; only is the recheck's set, whose
	// buckets' leaves alone are read (SkipLeaf).
	quiet bool
	only  *shard.BucketSet
}

// SkipLeaf leaves a backpointer leaf unread in a recheck when none of the
// buckets its keys fall in, as the pass logged them, is rechecked.
func (l *bpLoader) SkipLeaf(id bp.BtreeID, k *bp.Key) bool {
	return l.only != nil && l.c.leafSkip(id, k.Pos, l.only)
}

// report adds a finding of the loader, unless it is quiet.
func (l *bpLoader) report(f report.Finding) {
	if !l.quiet {
		l.c.addFinding(f)
	}
}

func (l *bpLoader) Node(n *btreeio.Node) error {
	if err := ctxErr(l.ctx); err != nil {
		return err
	}
	if n.Level != 0 || l.only != nil && !l.c.nodeLogged(n) {
		return nil // (a recheck: the pass could not read it; leafSkip)
	}
	l.countNode(n)
	c := l.c
	c.loadedNodeProblems(n)
	for i := range n.Keys {
		k := &n.Keys[i]
		if k.Key.Type != bp.KeyBackpointer {
			continue
		}
		p := k.Key.Pos
		if p.Less(l.plo) || !l.open && !p.Less(l.phi) {
			continue
		}
		if c.formatB && p.Inode == 255 {
			// BCH_SB_MEMBER_INVALID: an invalid key in format B.
			l.report(l.badBP(report.BackpointerDevBad, k, "backpointer for the invalid device index 255"))
			continue
		}
		if p.Inode >= 256 || c.fs.SB.Member(uint8(p.Inode)) == nil {
			l.report(l.badBP(report.BackpointerToMissingDevice, k, "backpointer for missing device"))
			continue
		}
		bk := bpBucket(c.fs, p)
		if bk < l.lo || bk >= l.hi {
			continue
		}
		// Only the fields validity needs are read here (this runs once
		// per backpointer): level, and the bucket offset of format A.
		if len(k.Val) < bp.BackpointerBytes {
			_, err := bp.DecodeBackpointer(k.Val, c.formatB)
			l.report(l.badBP(report.BackpointerToMissingPtr, k, err.Error()))
			continue
		}
		if !l.validate(k, k.Val[1], bp.BackpointerBucketOffsetA(k.Val)) {
			continue
		}
		for l.si < len(l.shards)-1 && l.shards[l.si].Hi <= bk {
			l.si++
		}
		l.shards[l.si].AddBP(uint32(p.Inode), p.Offset, k.Val)
	}
	return nil
}

// validate applies the key validity rules that the bcachefs fsck applies
// to backpointers before it checks them, reporting invalid keys.
// level and bucketOffset (format A) are the value's fields.
func (l *bpLoader) validate(k *btreeio.NodeKey, level uint8, bucketOffset uint64) bool {
	code, detail := l.invalid(k.Key.Pos, len(k.Val), level, bucketOffset)
	if code != "" {
		l.report(l.badBP(code, k, detail))
		return false
	}
	return true
}

// invalid returns the finding code and detail of a backpointer key at pos
// whose value is valLen bytes long, or "" when the key is valid.
func (l *bpLoader) invalid(pos bp.Pos, valLen int, level uint8, bucketOffset uint64) (code, detail string) {
	c := l.c
	if level > 4 {
		return report.BackpointerLevelBad, fmt.Sprintf("backpointer level %d > 4", level)
	}
	if !c.formatB {
		m := c.fs.SB.Member(uint8(pos.Inode))
		bs := uint64(m.BucketSize)
		bucket := (pos.Offset >> bp.ShiftA) / bs
		if bucketOffset>>bp.ShiftA >= bs || (bucket*bs)<<bp.ShiftA+bucketOffset != pos.Offset {
			return report.BackpointerBucketOffsetWrong, fmt.Sprintf("bucket_offset %d disagrees with the key position", bucketOffset)
		}
	}
	if pos.Snapshot != 0 || valLen != bp.BackpointerBytes {
		return report.BackpointerToMissingPtr, "malformed backpointer key"
	}
	return "", ""
}

// PackedLeaf loads the backpointers of a leaf straight from its packed
// bset: the keys Node would load, decoded one at a time (type and
// position only), with no key array built and merged first. A key that
// Node would report (an invalid backpointer, a missing device) or that
// the general decoding rules must settle (out of order, a repeated
// position, a deleted key, one that does not decode the fast way) makes
// it drop what it added from this node and return false: Node then loads
// the decoded node.
//
// When the node's whole range lies in this loader's positions and in one
// shard's buckets of one member device, the per-key range, device and
// shard checks are skipped; the keys are then checked to lie within the
// node's range (they are in order, so the first and the last).
func (l *bpLoader) PackedLeaf(n *btreeio.Node) (bool, error) {
	if err := ctxErr(l.ctx); err != nil {
		return true, err
	}
	u, data, ok := n.Packed()
	if !ok || n.Level != 0 {
		return false, nil
	}
	if l.only != nil && !l.c.nodeLogged(n) {
		return true, nil // (a recheck: the pass could not read it; leafSkip)
	}
	c := l.c
	startSi := l.si
	start := l.shards[startSi].MarkBPs()
	undo := func() (bool, error) {
		for i := startSi + 1; i <= l.si; i++ {
			l.shards[i].UndoBPs(shard.BPMark{}) // shards after startSi had none yet
		}
		l.shards[startSi].UndoBPs(start)
		l.si = startSi
		return false, nil
	}
	whole := n.Min.Inode == n.Max.Inode && n.Min.Inode < 255 &&
		c.fs.SB.Member(uint8(n.Min.Inode)) != nil &&
		!n.Min.Less(l.plo) && (l.open || n.Max.Less(l.phi))
	// Format A: a value's bucket_offset must be its key's offset within
	// its bucket (l.invalid); spanA is a bucket's length in key offsets.
	var spanA, maskA uint64
	if whole && !c.formatB {
		spanA = uint64(c.fs.SB.Member(uint8(n.Min.Inode)).BucketSize) << bp.ShiftA
		whole = spanA != 0
		if spanA&(spanA-1) == 0 {
			maskA = spanA - 1 // the offset within a bucket by mask, not division
		}
	}
	si := l.si
	if whole {
		bmin, bmax := bpBucket(c.fs, n.Min), bpBucket(c.fs, n.Max)
		for si < len(l.shards)-1 && l.shards[si].Hi <= bmin {
			si++
		}
		sh := l.shards[si]
		whole = bmin >= l.lo && bmax < l.hi && bmin >= sh.Lo && bmax < sh.Hi
	}
	if whole {
		l.si = si
		sh := l.shards[si]
		dev := uint32(n.Min.Inode)
		var pos, prev bp.Pos
		for p := 0; p < len(data); {
			t, val, ok := u.DecodePos(&pos, data[p:])
			if !ok || p > 0 && !prev.Less(pos) || p == 0 && pos.Less(n.Min) {
				return undo()
			}
			prev = pos
			p += int(data[p]) * 8
			if t != bp.KeyBackpointer {
				if t == bp.KeyDeleted {
					return undo()
				}
				continue
			}
			if pos.Snapshot != 0 || len(val) != bp.BackpointerBytes || val[1] > 4 ||
				spanA != 0 && bp.BackpointerBucketOffsetA(val) != inSpanA(pos.Offset, spanA, maskA) {
				return undo() // invalid: Node reports it
			}
			sh.AddBP(dev, pos.Offset, val)
		}
		if len(data) > 0 && n.Max.Less(prev) {
			return undo()
		}
		l.countNode(n)
		return true, nil
	}
	var k bp.Key
	var prev bp.Pos
	for p := 0; p < len(data); {
		if data[p] == 0 {
			return undo()
		}
		val, err := u.DecodeKeyInto(&k, data[p:])
		if err != nil || p > 0 && !prev.Less(k.Pos) || n.Max.Less(k.Pos) || p == 0 && k.Pos.Less(n.Min) {
			return undo()
		}
		p += int(data[p]) * 8
		prev = k.Pos
		if k.Type != bp.KeyBackpointer {
			if k.Type == bp.KeyDeleted {
				return undo()
			}
			continue
		}
		pos := &k.Pos
		if pos.Less(l.plo) || !l.open && !pos.Less(l.phi) {
			continue
		}
		if pos.Inode >= 255 || c.fs.SB.Member(uint8(pos.Inode)) == nil {
			return undo() // a finding: Node reports it
		}
		bk := bpBucket(c.fs, *pos)
		if bk < l.lo || bk >= l.hi {
			continue
		}
		if len(val) != bp.BackpointerBytes {
			return undo()
		}
		if code, _ := l.invalid(*pos, len(val), val[1], bp.BackpointerBucketOffsetA(val)); code != "" {
			return undo()
		}
		for l.si < len(l.shards)-1 && l.shards[l.si].Hi <= bk {
			l.si++
		}
		l.shards[l.si].AddBP(uint32(pos.Inode), pos.Offset, val)
	}
	l.countNode(n)
	return true, nil
}

// countNode counts a loaded leaf for the progress display and summary,
// and logs its buckets for a recheck (digest checks).
func (l *bpLoader) countNode(n *btreeio.Node) {
	if !l.quiet {
		l.c.countLoaded(n)
		if l.c.cfg.Digest != nil {
			lo, hi := l.c.bpLeafBuckets(n)
			l.c.logLoadedLeaf(n, lo, hi)
		}
	}
}

// countLoaded counts a leaf a loader read (progress, Stats.Load*).
func (c *checker) countLoaded(n *btreeio.Node) {
	c.opt.Progress.addNode()
	c.loadNodes.Add(1)
	c.loadBytes.Add(int64(n.SectorsWritten) * btreeio.SectorSize)
}

func (l *bpLoader) badBP(code string, k *btreeio.NodeKey, detail string) report.Finding {
	c := l.c
	f := report.Finding{Code: code, Dev: -1, BP: k.Key.Pos, HasBP: true, Detail: detail, Got: c.describeBP(k.Key.Pos, k.Val)}
	if v, err := bp.DecodeBackpointer(k.Val, c.formatB); err == nil {
		f.Btree, f.Level, f.Pos = v.BtreeID.Name(c.fs.SB.Version), int(v.Level), v.Pos
	}
	if k.Key.Pos.Inode < 256 && c.fs.SB.Member(uint8(k.Key.Pos.Inode)) != nil {
		bk := bpBucket(c.fs, k.Key.Pos)
		f.Dev, f.Bucket = bk.Dev(), bk.Bucket()
	}
	return f
}

func (l *bpLoader) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	l.c.nodeLost(&l.c.lost.BPs, btree, level, parent, err)
	return nil
}

func (c *checker) bpRange(lo, hi shard.BucketKey) (bp.Pos, bp.Pos) {
	toPos := func(k shard.BucketKey) bp.Pos {
		if k.Dev() >= len(c.fs.SB.Members) {
			return bp.Pos{Inode: uint64(k.Dev())}
		}
		m := &c.fs.SB.Members[k.Dev()]
		over, sectors := bits.Mul64(k.Bucket(), uint64(m.BucketSize))
		if over != 0 || c.shift >= 64 || sectors > ^uint64(0)>>c.shift {
			// Past every position of the device (a corrupt member's
			// bucket count): the device's last position.
			return bp.Pos{Inode: uint64(k.Dev()), Offset: ^uint64(0), Snapshot: ^uint32(0)}
		}
		return bp.Pos{Inode: uint64(k.Dev()), Offset: sectors << c.shift}
	}
	return toPos(lo), toPos(hi)
}

// loadBackpointers fills one shard with the backpointers of its bucket
// range. Shards load in parallel: their position ranges do not overlap.
func (c *checker) loadBackpointers(ctx context.Context, pass int, sh *shard.Shard) error {
	lo, hi := sh.Lo, sh.Hi
	l := &bpLoader{c: c, ctx: ctx, shards: []*shard.Shard{sh}, lo: lo, hi: hi, pass: pass, quiet: sh.Mode() == shard.Recheck, only: sh.Rechecked()}
	l.plo, l.phi = c.bpRange(lo, hi)
	l.open = hi == ^shard.BucketKey(0)
	phi := l.phi
	if l.open {
		phi = bp.SPosMax
	}
	return c.fs.WalkLeafRange(bp.BtreeBackpointers, 0, l.plo, phi, l)
}

// allocLoader fills shards with the alloc keys of [lo, hi).
type allocLoader struct {
	c      *checker
	ctx    context.Context // a cancel stops the walk (nil: never)
	shards []*shard.Shard
	lo, hi shard.BucketKey
	pass   int
	si     int
	// keys: the pass's derived-btree keys, told where alloc leaves end
	// and which alloc nodes were lost.
	keys *allocinfo.Keys
	// quiet, only: a recheck's loader (see bpLoader.quiet)
	quiet bool
	only  *shard.BucketSet
}

// SkipLeaf leaves an alloc leaf unread in a recheck when none of its
// buckets, as the pass logged them, is rechecked.
func (l *allocLoader) SkipLeaf(id bp.BtreeID, k *bp.Key) bool {
	return l.only != nil && l.c.leafSkip(id, k.Pos, l.only)
}

// allBuckets is the bucket range [0, allBuckets] a leaf is logged with
// when its keys' buckets cannot be bounded (leafSkip adds one to it).
const allBuckets = ^shard.BucketKey(0) - 1

// allocLeafBuckets returns the bucket range [lo, hi] of the keys alloc
// leaf n can hold, as the shards make their keys (shard.MakeBucketKey of
// the position, which saturates the offset at 2^48 - 1): the whole range when
// the leaf reaches past the 256 devices or the 48 bits (the btree's last
// leaf ends at the largest position).
func allocLeafBuckets(n *btreeio.Node) (lo, hi shard.BucketKey) {
	if n.Min.Inode >= 256 || n.Max.Inode >= 256 || n.Max.Offset >= 1<<48 {
		return 0, allBuckets
	}
	return shard.MakeBucketKey(n.Min.Inode, n.Min.Offset), shard.MakeBucketKey(n.Max.Inode, n.Max.Offset)
}

// bpLeafBuckets returns the bucket range [lo, hi] of the backpointers leaf
// n can hold, as the shards compute their buckets (the offset shifted and
// divided by the bucket size, not clamped to the device): the whole range
// when the leaf reaches past a member's buckets or its devices.
func (c *checker) bpLeafBuckets(n *btreeio.Node) (lo, hi shard.BucketKey) {
	bucket := func(p bp.Pos) (shard.BucketKey, bool) {
		if p.Inode >= uint64(len(c.fs.SB.Members)) || c.shift >= 64 {
			return 0, false
		}
		m := &c.fs.SB.Members[p.Inode]
		if m.BucketSize == 0 {
			return 0, false
		}
		b := (p.Offset >> c.shift) / uint64(m.BucketSize)
		if b >= m.NBuckets || b >= 1<<48 {
			return 0, false
		}
		return shard.MakeBucketKey(p.Inode, b), true
	}
	lo, ok := bucket(n.Min)
	hi, ok2 := bucket(n.Max)
	if !ok || !ok2 {
		return 0, allBuckets
	}
	return lo, hi
}

func (l *allocLoader) Node(n *btreeio.Node) error {
	if err := ctxErr(l.ctx); err != nil {
		return err
	}
	if n.Level != 0 || l.only != nil && !l.c.nodeLogged(n) {
		return nil // (a recheck: the pass could not read it; leafSkip)
	}
	if !l.quiet {
		l.c.countLoaded(n)
		if l.c.cfg.Digest != nil {
			lo, hi := allocLeafBuckets(n)
			l.c.logLoadedLeaf(n, lo, hi)
		}
	}
	l.c.loadedNodeProblems(n)
	if l.keys != nil {
		l.keys.AddAllocLeaf(n.Max)
	}
	for i := range n.Keys {
		k := &n.Keys[i]
		if k.Key.Type != bp.KeyAllocV4 {
			continue
		}
		p := k.Key.Pos
		var m *btreeio.Member
		if p.Inode < 256 {
			m = l.c.fs.SB.Member(uint8(p.Inode))
		}
		if m == nil || p.Offset < uint64(m.FirstBucket) || p.Offset >= m.NBuckets {
			// check_alloc_key: a key of a bucket its device does not
			// have (or of no device) is reported and judged no further;
			// by the loader whose buckets hold it (keys past the 256
			// devices: the last one).
			bk := shard.MakeBucketKey(min(p.Inode, 256), p.Offset)
			if (p.Inode < 256 && bk >= l.lo && bk < l.hi || p.Inode >= 256 && l.hi == ^shard.BucketKey(0)) && !l.quiet {
				dev := -1
				if p.Inode < 256 {
					dev = int(p.Inode)
				}
				l.c.addFinding(report.Finding{Code: report.AllocKeyToMissingDevBucket, Dev: dev, Bucket: p.Offset,
					Btree: bp.BtreeAlloc.Name(l.c.fs.SB.Version), Pos: p, KeyType: k.Key.Type.String(),
					Detail: fmt.Sprintf("alloc key for invalid device:bucket %d:%d", p.Inode, p.Offset)})
			}
			continue
		}
		bk := shard.MakeBucketKey(p.Inode, p.Offset)
		if bk < l.lo || bk >= l.hi {
			continue
		}
		a, err := bp.DecodeAllocV4(k.Val)
		if err != nil {
			// Each alloc key is loaded in one pass only: reported in
			// whichever that is (a recheck or a re-judging loads it
			// again, quietly).
			if !l.quiet && !l.c.rejudging {
				l.c.addError(fmt.Errorf("alloc key %s: %w", k.Key.Pos, err))
			}
			continue
		}
		for l.si < len(l.shards)-1 && l.shards[l.si].Hi <= bk {
			l.si++
		}
		l.shards[l.si].AddAlloc(bk, a)
	}
	return nil
}

func (l *allocLoader) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	l.c.nodeLost(&l.c.lost.Alloc, btree, level, parent, err)
	if l.keys != nil {
		l.keys.Lost(bp.BtreeAlloc)
	}
	return nil
}

func (c *checker) loadAlloc(ctx context.Context, pass int, shards []*shard.Shard, lo, hi shard.BucketKey) error {
	l := &allocLoader{c: c, ctx: ctx, shards: shards, lo: lo, hi: hi, pass: pass, keys: c.passKeys}
	if shards[0].Mode() == shard.Recheck {
		l.quiet, l.keys, l.only = true, nil, shards[0].Rechecked()
	}
	plo := bp.Pos{Inode: uint64(lo.Dev()), Offset: lo.Bucket()}
	phi := bp.Pos{Inode: uint64(hi.Dev()), Offset: hi.Bucket()}
	if hi == ^shard.BucketKey(0) {
		phi = bp.SPosMax
	}
	return c.fs.WalkLeafRange(bp.BtreeAlloc, 0, plo, phi, l)
}

// addMetadataRefs adds the superblock and journal buckets of every device
// to the shards of [lo, hi), as the kernel marks them.
func (c *checker) addMetadataRefs(shards []*shard.Shard, lo, hi shard.BucketKey) {
	var e emitterDirect
	e.shards, e.lo, e.hi = shards, lo, hi
	for dev, d := range c.fs.Devices {
		if d == nil {
			continue
		}
		m := &c.fs.SB.Members[dev]
		bs := uint64(m.BucketSize)
		mark := func(start, end uint64, dt bp.DataType, kind shard.RefKind) {
			for start < end {
				b := start / bs
				if b >= m.NBuckets {
					return
				}
				n := min((b+1)*bs, end) - start
				e.add(shard.Ref{Kind: kind, Bucket: shard.MakeBucketKey(uint64(dev), b), Sectors: uint32(n), DataType: dt})
				start += n
			}
		}
		l := &d.SB.Layout
		for _, off := range l.SBOffset {
			if off == btreeio.SBSector {
				mark(0, btreeio.SBSector, bp.DataSB, shard.RefSB)
			}
			mark(off, off+1<<l.SBMaxSizeBits, bp.DataSB, shard.RefSB)
		}
		for _, r := range d.SB.Journal {
			nb := c.fs.DevBuckets(dev)
			if r.Start >= nb || r.Nr > nb-r.Start {
				continue // reported by the journal reader; nothing to mark
			}
			for b := r.Start; b < r.Start+r.Nr; b++ {
				e.add(shard.Ref{Kind: shard.RefJournal, Bucket: shard.MakeBucketKey(uint64(dev), b), Sectors: uint32(bs), DataType: bp.DataJournal})
			}
		}
	}
}

// emitterDirect hands metadata records straight to shards before their
// workers start.
type emitterDirect struct {
	shards []*shard.Shard
	lo, hi shard.BucketKey
}

func (e *emitterDirect) add(r shard.Ref) {
	if r.Bucket < e.lo || r.Bucket >= e.hi {
		return
	}
	for _, s := range e.shards {
		if s.Contains(r.Bucket) {
			s.Apply([]shard.Ref{r})
			return
		}
	}
}

// inSpanA returns off modulo span: by mask when span is a power of two
// (mask = span-1), else by division.
func inSpanA(off, span, mask uint64) uint64 {
	if mask != 0 {
		return off & mask
	}
	return off % span
}

// ctxErr is ctx's error, nil for a nil ctx (a loader no cancel stops).
func ctxErr(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}
