package allocinfo

import (
	"fmt"
	"sort"

	"bpcheck/bp"
	"bpcheck/report"
	"bpcheck/shard"
)

// LRU ids and positions (bcachefs lru_format.h).
const (
	lruTimeMax          = 1<<48 - 1
	lruStripeID         = 1<<16 - 2 // the stripe fragmentation LRU
	lruFragFSWide       = 1<<16 - 1 // the fs-wide bucket fragmentation LRU (before 1.39)
	lruFragPerDevStart  = 1 << 13   // per-device fragmentation LRUs: id = start + dev (1.39+)
	lruFragPerDevEnd    = 2 << 13
	lruReadMaxPerDevIDs = 1 << 13
	// maxInvalid bounds the findings one freespace key of a damaged size
	// gives for positions outside its member's buckets.
	maxInvalid = 1024
)

// Member is what the checks need of a member device.
type Member struct {
	BucketSize            uint32
	FirstBucket, NBuckets uint64 // the superblock's: which buckets exist
	// WalkEnd bounds the walks over buckets (holes, freespace ranges):
	// NBuckets as far as the device reaches, so a damaged count never
	// drives a long loop.
	WalkEnd uint64
	// FreespaceInitialized: the member's freespace btree was built
	// (BCH_MEMBER_FREESPACE_INITIALIZED); check_alloc_info compares an
	// alloc key with need_discard, freespace and bucket_gens only then.
	FreespaceInitialized bool
}

// Rules are the era's rules for the derived btrees.
type Rules struct {
	// Member returns member dev (ok=false: no such member).
	Member func(dev uint64) (Member, bool)
	// FragLRUField: alloc keys store their fragmentation LRU index
	// (format A up to metadata 1.12, bcachefs-tools v1.9): check_allocations
	// compares it (alloc_key_fragmentation_lru_wrong). From the v1.13
	// tools the field is obsolete and never compared.
	FragLRUField bool
	// LRUEntryChecksA: check_lrus reports an entry for a nonexistent
	// bucket as lru_entry_to_invalid_bucket and an entry that is not a
	// `set` key as bad (format A: bcachefs-tools v1.9 and v1.13).
	LRUEntryChecksA bool
	// PerDevFragLRU: one fragmentation LRU per device, id 8192 + dev
	// (metadata 1.39); before, one for the whole filesystem (id 65535).
	PerDevFragLRU bool
	// NoAutofix: the era's fsck (v1.9.4, v1.13.0) does not repair the
	// need_discard and freespace errors in memory under -n (they are not
	// FSCK_AUTOFIX there), so a later check meets the stale key again and
	// reports it too; from v1.25 they are repaired, and the later checks
	// see the repair.
	NoAutofix bool
	// NoAutofixGensLRU: the same for bucket_gens_to_invalid_buckets and
	// lru_entry_to_invalid_bucket (v1.9.4 only: FSCK_AUTOFIX from v1.13).
	NoAutofixGensLRU bool
	// MovableMultiple: buckets of type multiple are movable, so they
	// belong in the fragmentation LRU (v1.39.2's DATA_TYPES_MOVABLE).
	MovableMultiple bool
	// BtreeName names a btree id.
	BtreeName func(bp.BtreeID) string
}

// FragmentationIndex is a bucket's position in the fragmentation LRU
// (alloc_lru_idx_fragmentation): 0 for a bucket that is not movable or
// not fragmented, else its live sectors (at most the bucket size) scaled
// to 2^31 per bucket.
func FragmentationIndex(a *bp.AllocV4, bucketSize uint32) uint64 {
	return fragmentationIndex(a, bucketSize, false)
}

func fragmentationIndex(a *bp.AllocV4, bucketSize uint32, movableMultiple bool) uint64 {
	switch a.DataType {
	case bp.DataBtree, bp.DataUser, bp.DataStripe:
	case bp.DataMultiple:
		if !movableMultiple {
			return 0
		}
	default:
		return 0
	}
	dirty := int64(a.DirtySectors) + int64(a.StripeSectors)
	sectors := dirty
	if a.DataType == bp.DataCached {
		sectors = int64(a.CachedSectors)
	}
	if sectors == 0 || int64(bucketSize)-sectors <= 0 || bucketSize == 0 {
		return 0
	}
	d := min(dirty, int64(bucketSize))
	return uint64(d) * (1 << 31) / uint64(bucketSize)
}

// readIndex is a bucket's position in its device's read LRU
// (alloc_lru_idx_read).
func readIndex(a *bp.AllocV4) uint64 {
	if a.DataType == bp.DataCached {
		return a.IOTime[0] & lruTimeMax
	}
	return 0
}

// genbits is the part of the bucket's gc generation that freespace keys
// carry in their offset's top byte (alloc_freespace_genbits).
func genbits(a *bp.AllocV4) uint8 { return (a.Gen - a.OldestGen) >> 4 }

func (r *Rules) fragID(dev uint64) uint16 {
	if r.PerDevFragLRU {
		return uint16(lruFragPerDevStart + dev)
	}
	return lruFragFSWide
}

// lruIsFrag reports whether LRU id holds bucket fragmentation entries
// (else read entries; stripe entries are not kept).
func (r *Rules) lruIsFrag(id uint16) bool {
	if id == lruFragFSWide {
		return true
	}
	return r.PerDevFragLRU && id >= lruFragPerDevStart && id < lruFragPerDevEnd
}

// judge is one shard's judgement.
type judge struct {
	r      *Rules
	k      *Keys
	cs     shard.CorrectedList
	lo, hi shard.BucketKey
	out    []report.Finding
	// cursors into the keys for allocKey, which goes in bucket order
	discardCur, gensCur int
}

// search returns the index of the first corrected bucket at or after b.
func (j *judge) search(b shard.BucketKey) int {
	return sort.Search(j.cs.Len(), func(i int) bool { return j.cs.At(i).Key >= b })
}

func (j *judge) at(b shard.BucketKey) *shard.Corrected {
	i := j.search(b)
	if i == j.cs.Len() {
		return nil
	}
	c := j.cs.At(i)
	if c.Key != b {
		return nil
	}
	return &c
}

func (j *judge) add(f report.Finding) { j.out = append(j.out, f) }

func (j *judge) btree(id bp.BtreeID) string { return j.r.BtreeName(id) }

// Judge judges the keys of the derived btrees of buckets [lo, hi) against
// the shard's corrected alloc keys cs (in bucket order),
// in the order of the fsck's passes: check_allocations' fragmentation_lru
// field (format A), check_alloc_info, check_lrus, check_alloc_to_lru_refs.
// A shard's range must not split a group of 256 buckets (bucket_gens keys
// and the fsck's walk over alloc holes are cut at such groups).
func Judge(r *Rules, k *Keys, lo, hi shard.BucketKey, cs shard.CorrectedList) []report.Finding {
	j := &judge{r: r, k: k, cs: cs, lo: lo, hi: hi}
	j.discardCur = sort.Search(len(k.discard), func(i int) bool { return k.discard[i].bucket >= lo })
	j.gensCur = sort.Search(len(k.gens), func(i int) bool {
		return shard.MakeBucketKey(k.gens[i].dev, (k.gens[i].idx+1)*GensPerKey) > lo
	})
	if r.FragLRUField {
		j.fragLRUField()
	}
	j.allocInfo()
	if !k.lost[BtreeLRU] && !k.lost[bp.BtreeAlloc] {
		j.lrus()
		j.allocToLRU()
	}
	return j.out
}

// fragLRUField compares the fragmentation_lru field of format A alloc keys
// with the index of the corrected key (check_allocations).
func (j *judge) fragLRUField() {
	for i := range j.cs.Len() {
		c := j.cs.At(i)
		m, ok := j.r.Member(uint64(c.Key.Dev()))
		if c.Unknown || !ok || c.Key.Bucket() < m.FirstBucket || c.Key.Bucket() >= m.NBuckets {
			continue
		}
		want := fragmentationIndex(&c.A, m.BucketSize, j.r.MovableMultiple)
		if got := c.A.JournalSeqEmpty; got != want {
			j.add(report.Finding{Code: report.AllocKeyFragmentationLRUWrong, Dev: c.Key.Dev(), Bucket: c.Key.Bucket(),
				Got: fmt.Sprint(got), Want: fmt.Sprint(want),
				Detail: fmt.Sprintf("gen %d data type %s has wrong fragmentation_lru", c.A.Gen, c.A.DataType)})
		}
	}
}

// allocInfo is check_alloc_info: every alloc key against need_discard,
// freespace and bucket_gens; every hole of the alloc btree against
// freespace and bucket_gens; then every need_discard, freespace and
// bucket_gens key against the alloc keys.
func (j *judge) allocInfo() {
	k := j.k
	lostAlloc := k.lost[bp.BtreeAlloc]
	for dev := uint64(j.lo.Dev()); dev <= uint64(j.hi.Dev()) && dev < 256; dev++ {
		m, ok := j.r.Member(dev)
		if !ok {
			continue
		}
		start, end := m.FirstBucket, min(m.NBuckets, m.WalkEnd)
		if dev == uint64(j.lo.Dev()) {
			start = max(start, j.lo.Bucket())
		}
		if dev == uint64(j.hi.Dev()) && j.hi != ^shard.BucketKey(0) {
			end = min(end, j.hi.Bucket())
		}
		n := j.cs.Len()
		ci := j.search(shard.MakeBucketKey(dev, start))
		for b := start; b < end; {
			var c shard.Corrected
			if ci < n {
				c = j.cs.At(ci)
			}
			if ci < n && c.Key == shard.MakeBucketKey(dev, b) {
				j.allocKey(&c, m)
				ci++
				b++
				continue
			}
			next := end
			if ci < n && c.Key.Dev() == int(dev) {
				next = min(next, c.Key.Bucket())
			}
			if !lostAlloc {
				j.hole(dev, b, next, m)
			}
			b = next
		}
	}
	if !k.lost[BtreeNeedDiscard] && !lostAlloc {
		j.needDiscardKeys()
	}
	if !k.lost[bp.BtreeFreespace] && !lostAlloc {
		j.freespaceKeys()
	}
	if !k.lost[bp.BtreeBucketGens] {
		j.bucketGensKeys()
	}
}

// allocKey compares one corrected alloc key with need_discard, freespace
// and bucket_gens (bch2_check_alloc_key).
func (j *judge) allocKey(c *shard.Corrected, m Member) {
	if c.Unknown || !m.FreespaceInitialized {
		return
	}
	k := j.k
	dev, b := uint64(c.Key.Dev()), c.Key.Bucket()
	a := &c.A
	if !k.lost[BtreeNeedDiscard] {
		for j.discardCur < len(k.discard) && k.discard[j.discardCur].bucket < c.Key {
			j.discardCur++
		}
		e := j.discardCur
		for e < len(k.discard) && k.discard[e].bucket == c.Key {
			e++
		}
		discard := k.discard[j.discardCur:e]
		want := a.DataType == bp.DataNeedDiscard
		if k.NeedDiscardBySeq {
			has := false
			for _, d := range discard {
				has = has || d.seq == a.JournalSeqEmpty
			}
			if want && !has {
				j.add(j.setWrong(report.NeedDiscardKeyWrong, BtreeNeedDiscard, c, false))
			}
		} else if has := len(discard) > 0; has != want {
			j.add(j.setWrong(report.NeedDiscardKeyWrong, BtreeNeedDiscard, c, has))
		}
	}
	if !k.lost[bp.BtreeFreespace] {
		_, has, _ := k.freeAt(uint32(dev), genbits(a), b)
		if want := a.DataType == bp.DataFree; has != want {
			j.add(j.setWrong(report.FreespaceKeyWrong, bp.BtreeFreespace, c, has))
		}
	}
	if !k.lost[bp.BtreeBucketGens] {
		idx := b / GensPerKey
		for j.gensCur < len(k.gens) && (k.gens[j.gensCur].dev < dev || k.gens[j.gensCur].dev == dev && k.gens[j.gensCur].idx < idx) {
			j.gensCur++
		}
		var g uint8
		if j.gensCur < len(k.gens) && k.gens[j.gensCur].dev == dev && k.gens[j.gensCur].idx == idx {
			g = k.gens[j.gensCur].gens[b%GensPerKey]
		}
		if g != a.Gen {
			j.add(report.Finding{Code: report.BucketGensKeyWrong, Dev: int(dev), Bucket: b, Btree: j.btree(bp.BtreeBucketGens),
				Got: fmt.Sprint(g), Want: fmt.Sprint(a.Gen), Detail: "incorrect gen in bucket_gens btree"})
		}
	}
}

func (j *judge) setWrong(code string, btree bp.BtreeID, c *shard.Corrected, has bool) report.Finding {
	got, want, how := "unset", "set", "un"
	if has {
		got, want, how = "set", "unset", ""
	}
	return report.Finding{Code: code, Dev: c.Key.Dev(), Bucket: c.Key.Bucket(), Btree: j.btree(btree),
		Got: got, Want: want,
		Detail: fmt.Sprintf("bucket incorrectly %sset in %s btree (data type %s)", how, j.btree(btree), c.A.DataType)}
}

// hole judges buckets [s, e) of dev, which have no alloc key. The fsck's
// walk takes a hole in pieces that end at an alloc leaf's end; each run of
// a piece that no freespace key covers is freespace_hole_missing, its
// text naming the run. From v1.25 the fsck repairs the run in memory at
// once, so a run is reported once; v1.9.4 repairs nothing under -n and
// meets the run again at every 256th bucket (where its walk resumes after
// the bucket_gens key), reporting it from there to the run's end. A run
// cut by the shard's end is joined to the next shard's by MergeHoles.
// bucket_gens must record gen 0 for each bucket.
func (j *judge) hole(dev, s, e uint64, m Member) {
	k := j.k
	add := func(x, y uint64) {
		j.add(report.Finding{Code: report.FreespaceHoleMissing, Dev: int(dev), Bucket: x, Btree: j.btree(bp.BtreeFreespace),
			Detail: holeDetail(dev, x, y)})
	}
	for s < e {
		pe := e
		if le := k.allocEndAfter(shard.MakeBucketKey(dev, s)); le.Dev() == int(dev) {
			pe = min(pe, max(le.Bucket(), s+1))
		}
		if m.FreespaceInitialized && !k.lost[bp.BtreeFreespace] {
			for x := s; x < pe; {
				f, ok, next := k.freeAt(uint32(dev), 0, x)
				if ok {
					x = min(f.end, pe)
					continue
				}
				y := min(next, pe)
				if j.r.NoAutofix {
					for z := x; z < y; z = (z/GensPerKey + 1) * GensPerKey {
						add(z, y)
					}
				} else {
					add(x, y)
				}
				x = y
			}
		}
		if !k.lost[bp.BtreeBucketGens] {
			for g := s; g < pe; g = (g/GensPerKey + 1) * GensPerKey {
				gens := k.gensOf(dev, g/GensPerKey)
				if gens == nil {
					continue
				}
				for b := g; b < min(pe, (g/GensPerKey+1)*GensPerKey); b++ {
					if v := gens[b%GensPerKey]; v != 0 {
						j.add(report.Finding{Code: report.BucketGensHoleWrong, Dev: int(dev), Bucket: b, Btree: j.btree(bp.BtreeBucketGens),
							Got: fmt.Sprint(v), Want: "0", Detail: "hole in alloc btree with nonzero gen in bucket_gens btree"})
					}
				}
			}
		}
		s = pe
	}
}

const holeText = "hole in alloc btree missing in freespace btree: device %d buckets %d-%d"

func holeDetail(dev, x, y uint64) string { return fmt.Sprintf(holeText, dev, x, y) }

// MergeHoles joins the freespace_hole_missing runs that shard and pass
// boundaries cut (a run ending where the next begins, at a bucket that is
// not the end of an alloc leaf): from v1.25 (noAutofix false) into one
// finding; for v1.9.4 each report keeps its start and gets the joined
// run's end. leafEnds are the buckets after the alloc leaves' last keys.
func MergeHoles(fs []report.Finding, leafEnds map[shard.BucketKey]bool, noAutofix bool) []report.Finding {
	type run struct {
		i          int
		dev        uint64
		start, end uint64
	}
	var runs []run
	for i := range fs {
		if fs[i].Code != report.FreespaceHoleMissing {
			continue
		}
		var r run
		if _, err := fmt.Sscanf(fs[i].Detail, holeText, &r.dev, &r.start, &r.end); err != nil {
			continue
		}
		r.i = i
		runs = append(runs, r)
	}
	if len(runs) < 2 {
		return fs
	}
	sort.Slice(runs, func(a, b int) bool {
		if runs[a].dev != runs[b].dev {
			return runs[a].dev < runs[b].dev
		}
		return runs[a].start < runs[b].start
	})
	drop := map[int]bool{}
	byStart := map[[2]uint64]int{}
	for i, r := range runs {
		byStart[[2]uint64{r.dev, r.start}] = i
	}
	// From the end, so that a run takes the end of a run it is joined to
	// after that one has taken its own.
	for i := len(runs) - 1; i >= 0; i-- {
		a := &runs[i]
		if leafEnds[shard.MakeBucketKey(a.dev, a.end)] {
			continue
		}
		j, ok := byStart[[2]uint64{a.dev, a.end}]
		if !ok {
			continue
		}
		a.end = runs[j].end
		if !noAutofix {
			drop[runs[j].i] = true
		}
	}
	for _, r := range runs {
		fs[r.i].Detail = holeDetail(r.dev, r.start, r.end)
	}
	if len(drop) == 0 {
		return fs
	}
	out := fs[:0]
	for i := range fs {
		if !drop[i] {
			out = append(out, fs[i])
		}
	}
	return out
}

// stateAt is the alloc state check_alloc_info's second half sees at
// bucket b: the corrected key, or the zero key of a hole; known=false
// when read errors hid it.
func (j *judge) stateAt(b shard.BucketKey) (a bp.AllocV4, c *shard.Corrected, known bool) {
	if c = j.at(b); c != nil {
		return c.A, c, !c.Unknown
	}
	return bp.AllocV4{}, nil, true
}

func (j *judge) validBucket(b shard.BucketKey) (Member, bool) {
	m, ok := j.r.Member(uint64(b.Dev()))
	return m, ok && b.Bucket() >= m.FirstBucket && b.Bucket() < m.NBuckets
}

// needDiscardKeys judges every need_discard key against the alloc key of
// its bucket (bch2_check_discard_freespace_key, after bch2_check_alloc_key
// repaired what it found).
func (j *judge) needDiscardKeys() {
	k := j.k
	start := sort.Search(len(k.discard), func(i int) bool { return k.discard[i].bucket >= j.lo })
	for _, d := range k.discard[start:] {
		if d.bucket >= j.hi {
			break // the next shard's
		}
		m, ok := j.validBucket(d.bucket)
		if !ok {
			j.add(report.Finding{Code: report.NeedDiscardFreespaceKeyToInvalidDevBucket, Dev: d.bucket.Dev(), Bucket: d.bucket.Bucket(),
				Btree: j.btree(BtreeNeedDiscard), Pos: d.pos,
				Detail: fmt.Sprintf("entry in need_discard btree for nonexistant dev:bucket %d:%d", d.bucket.Dev(), d.bucket.Bucket())})
			if !j.r.NoAutofix {
				continue // deleted: v1.9.4 goes on and judges it against the zero key
			}
		}
		a, c, known := j.stateAt(d.bucket)
		if !known {
			continue
		}
		bad := a.DataType != bp.DataNeedDiscard
		if k.NeedDiscardBySeq {
			bad = bad || a.JournalSeqEmpty != d.seq
		} else if c != nil && m.FreespaceInitialized && !j.r.NoAutofix {
			bad = false // bch2_check_alloc_key made the bucket's key right
		}
		if bad {
			j.add(report.Finding{Code: report.NeedDiscardFreespaceKeyBad, Dev: d.bucket.Dev(), Bucket: d.bucket.Bucket(),
				Btree: j.btree(BtreeNeedDiscard), Pos: d.pos,
				Detail: fmt.Sprintf("incorrectly set at need_discard:%d:%d:0 (data type %s)", d.pos.Inode, d.pos.Offset, a.DataType)})
		}
	}
}

// freespaceKeys judges every bucket position of every freespace key
// against the alloc key of its bucket. A position at the bucket's own
// generation bits was judged (and repaired) by bch2_check_alloc_key
// already.
func (j *judge) freespaceKeys() {
	k := j.k
	// The keys come in bucket order within a generation: a cursor into
	// the corrected buckets, restarted for each generation.
	ci, lastGen := 0, -1
	k.freeKeys(j.lo, j.hi, func(f freeKey) {
		lo := max(shard.MakeBucketKey(uint64(f.dev), f.start), j.lo)
		hi := min(shard.MakeBucketKey(uint64(f.dev), f.end), j.hi)
		if hi <= lo {
			return
		}
		m, mok := j.r.Member(uint64(f.dev))
		bad := func(b shard.BucketKey, a *bp.AllocV4) {
			j.add(report.Finding{Code: report.NeedDiscardFreespaceKeyBad, Dev: b.Dev(), Bucket: b.Bucket(),
				Btree: j.btree(bp.BtreeFreespace), Pos: bp.Pos{Inode: uint64(f.dev), Offset: uint64(f.genbits)<<56 | b.Bucket()},
				Detail: fmt.Sprintf("incorrectly set at freespace:%d:%d:0 (free %v, genbits %d should be %d)",
					f.dev, uint64(f.genbits)<<56|b.Bucket(), a.DataType == bp.DataFree, f.genbits, genbits(a))})
		}
		// Positions outside the member's buckets, one finding each (at
		// most maxInvalid per key: a damaged size can be huge).
		n := 0
		for b := lo; b < hi && n < maxInvalid; b++ {
			if mok && b.Bucket() >= m.FirstBucket && b.Bucket() < m.NBuckets {
				b = min(hi, shard.MakeBucketKey(uint64(f.dev), m.NBuckets)) - 1
				continue
			}
			n++
			j.add(report.Finding{Code: report.NeedDiscardFreespaceKeyToInvalidDevBucket, Dev: b.Dev(), Bucket: b.Bucket(),
				Btree:  j.btree(bp.BtreeFreespace),
				Detail: fmt.Sprintf("entry in freespace btree for nonexistant dev:bucket %d:%d", b.Dev(), b.Bucket())})
			if j.r.NoAutofix && f.genbits != 0 {
				// v1.9.4 goes on: the zero key is free at genbits 0.
				var zero bp.AllocV4
				bad(b, &zero)
			}
		}
		if !mok {
			return
		}
		// skip: bch2_check_alloc_key has set the position of a bucket
		// with a key at its own genbits right (from v1.25, repairing in
		// memory).
		skip := func(c *shard.Corrected) bool {
			return !j.r.NoAutofix && c != nil && m.FreespaceInitialized && genbits(&c.A) == f.genbits
		}
		isBad := func(a *bp.AllocV4) bool { return a.DataType != bp.DataFree || genbits(a) != f.genbits }
		vlo := max(lo, shard.MakeBucketKey(uint64(f.dev), m.FirstBucket))
		vhi := min(hi, shard.MakeBucketKey(uint64(f.dev), min(m.NBuckets, m.WalkEnd)))
		if f.genbits != 0 {
			// Holes read as free at generation 0: every hole position is
			// bad (at most maxInvalid findings per key).
			n := 0
			hc := j.search(vlo)
			for b := vlo; b < vhi && n < maxInvalid; b++ {
				var c *shard.Corrected
				for hc < j.cs.Len() && j.cs.At(hc).Key < b {
					hc++
				}
				if hc < j.cs.Len() {
					if cc := j.cs.At(hc); cc.Key == b {
						c = &cc
					}
				}
				var a bp.AllocV4
				if c != nil {
					if c.Unknown {
						continue
					}
					a = c.A
				}
				if !skip(c) && isBad(&a) {
					n++
					bad(b, &a)
				}
			}
			return
		}
		if int(f.genbits) != lastGen {
			ci, lastGen = j.search(vlo), int(f.genbits)
		}
		for ci < j.cs.Len() && j.cs.At(ci).Key < vlo {
			ci++
		}
		for i := ci; i < j.cs.Len(); i++ {
			c := j.cs.At(i)
			if c.Key >= vhi {
				break
			}
			if c.Unknown || skip(&c) {
				continue
			}
			if isBad(&c.A) {
				bad(c.Key, &c.A)
			}
		}
	})
}

// bucketGensKeys judges bucket_gens keys for buckets that do not exist
// (bch2_check_bucket_gens_key); gens of existing buckets were compared
// with their alloc keys and holes.
func (j *judge) bucketGensKeys() {
	for _, g := range j.k.gens {
		first := shard.MakeBucketKey(g.dev, g.idx*GensPerKey)
		last := shard.MakeBucketKey(g.dev, (g.idx+1)*GensPerKey-1)
		if last < j.lo || first >= j.hi {
			continue // another shard's (shards hold whole groups; a live re-judge's one-bucket shard takes its group's key)
		}
		pos := bp.Pos{Inode: g.dev, Offset: g.idx}
		m, ok := j.r.Member(g.dev)
		if !ok {
			j.add(report.Finding{Code: report.BucketGensToInvalidDev, Dev: int(g.dev), Bucket: g.idx * GensPerKey,
				Btree: j.btree(bp.BtreeBucketGens), Pos: pos, Detail: "bucket_gens key for invalid device"})
			continue
		}
		start, end := g.idx*GensPerKey, (g.idx+1)*GensPerKey
		if end <= m.FirstBucket || start >= m.NBuckets {
			j.add(report.Finding{Code: report.BucketGensToInvalidBuckets, Dev: int(g.dev), Bucket: start,
				Btree: j.btree(bp.BtreeBucketGens), Pos: pos, Detail: "bucket_gens key for invalid buckets"})
			if !j.r.NoAutofixGensLRU {
				continue // deleted: v1.9.4 goes on to its gens
			}
		}
		for b := start; b < end; b++ {
			if (b < m.FirstBucket || b >= m.NBuckets) && g.gens[b%GensPerKey] != 0 {
				j.add(report.Finding{Code: report.BucketGensNonzeroForInvalidBuckets, Dev: int(g.dev), Bucket: b,
					Btree: j.btree(bp.BtreeBucketGens), Pos: pos, Got: fmt.Sprint(g.gens[b%GensPerKey]), Want: "0",
					Detail: "bucket_gens key has nonzero gen for invalid bucket"})
			}
		}
	}
}

// lrus is check_lrus: every LRU entry against the corrected alloc key of
// the bucket it names.
func (j *judge) lrus() {
	k := j.k
	start := sort.Search(len(k.lru), func(i int) bool { return k.lru[i].bucket >= j.lo })
	for _, e := range k.lru[start:] {
		if e.bucket >= j.hi {
			break // the next shard's
		}
		frag := j.r.lruIsFrag(e.id)
		kind := "read"
		if frag {
			kind = "fragmentation"
		}
		dev := uint64(e.bucket.Dev())
		m, mok := j.r.Member(dev)
		if j.r.LRUEntryChecksA {
			if _, ok := j.validBucket(e.bucket); !ok {
				j.add(report.Finding{Code: report.LRUEntryToInvalidBucket, Dev: int(dev), Bucket: e.bucket.Bucket(),
					Btree: j.btree(BtreeLRU), Pos: e.pos,
					Detail: fmt.Sprintf("lru key points to nonexistent device:bucket %d:%d", dev, e.bucket.Bucket())})
				if !j.r.NoAutofixGensLRU {
					continue // deleted: v1.9.4 goes on and judges it against the zero key
				}
			}
		}
		a, _, known := j.stateAt(e.bucket)
		if !known {
			continue
		}
		var idx uint64
		switch {
		case !frag:
			idx = readIndex(&a)
		case mok:
			idx = fragmentationIndex(&a, m.BucketSize, j.r.MovableMultiple)
		}
		wantID := e.id
		if j.r.PerDevFragLRU {
			if frag {
				wantID = j.r.fragID(dev)
			} else {
				wantID = uint16(dev)
			}
		}
		if e.time != idx || e.id != wantID || j.r.LRUEntryChecksA && !e.set {
			j.add(report.Finding{Code: report.LRUEntryBad, Dev: int(dev), Bucket: e.bucket.Bucket(),
				Btree: j.btree(BtreeLRU), Pos: e.pos, Got: fmt.Sprint(e.time), Want: fmt.Sprint(idx),
				Detail: fmt.Sprintf("incorrect lru entry: lru %s time %d (id %d, expected id %d time %d; bucket data type %s)", kind, e.time, e.id, wantID, idx, a.DataType)})
		}
	}
}

// allocToLRU is check_alloc_to_lru_refs: every corrected alloc key that
// belongs in an LRU must have its entry there.
func (j *judge) allocToLRU() {
	k := j.k
	// The buckets come in order: a cursor into k.lru.
	lruCur := sort.Search(len(k.lru), func(i int) bool { return k.lru[i].bucket >= j.lo })
	for i := range j.cs.Len() {
		c := j.cs.At(i)
		for lruCur < len(k.lru) && k.lru[lruCur].bucket < c.Key {
			lruCur++
		}
		lruEnd := lruCur
		for lruEnd < len(k.lru) && k.lru[lruEnd].bucket == c.Key {
			lruEnd++
		}
		entries := k.lru[lruCur:lruEnd]
		if c.Unknown {
			continue
		}
		dev := uint64(c.Key.Dev())
		m, ok := j.r.Member(dev)
		if !ok {
			continue
		}
		has := func(id uint16, time uint64) bool {
			for _, e := range entries {
				if e.set && e.id == id && e.time == time {
					return true
				}
			}
			return false
		}
		missing := func(kind string, id uint16, time uint64) {
			pos := bp.Pos{Inode: uint64(id)<<48 | time&lruTimeMax, Offset: uint64(c.Key)}
			j.add(report.Finding{Code: report.AllocKeyToMissingLRUEntry, Dev: int(dev), Bucket: c.Key.Bucket(),
				Btree: j.btree(BtreeLRU), Pos: pos, Want: fmt.Sprint(time),
				Detail: fmt.Sprintf("missing %s lru entry at pos %s", kind, pos)})
		}
		if fi := fragmentationIndex(&c.A, m.BucketSize, j.r.MovableMultiple); fi != 0 && !has(j.r.fragID(dev), fi) {
			missing("fragmentation", j.r.fragID(dev), fi)
		}
		if c.A.DataType != bp.DataCached {
			continue
		}
		if c.A.IOTime[0] == 0 {
			// The fsck sets the read time to its read clock's present
			// time, which only the running filesystem knows, and then
			// finds no entry there.
			j.add(report.Finding{Code: report.AllocKeyCachedButReadTimeZero, Dev: int(dev), Bucket: c.Key.Bucket(),
				Detail: "cached bucket with read_time 0"})
			continue
		}
		if !has(uint16(dev), c.A.IOTime[0]) {
			missing("read", uint16(dev), c.A.IOTime[0])
		}
	}
}
