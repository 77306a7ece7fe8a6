// Package shard holds one bucket range's slice of the backpointers btree
// and of the alloc btree in RAM, as compact sorted arrays, and checks the
// pointer records that producers stream to it against them: each record
// marks the backpointer it expects; what stays unmarked at the end has no
// pointer. Per bucket it sums the sectors the pointers claim and compares
// them with the alloc key. A shard is used by one goroutine at a time.
package shard

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"bpcheck/bp"
	"bpcheck/internal/hugemem"
	"bpcheck/report"
)

// BucketKey packs a device index and a bucket number into one sortable
// value: dev<<48 | bucket.
type BucketKey uint64

// MaxBucket is the largest bucket number a key holds: a bucket number
// past it (a corrupt key's) saturates there, so that it sorts after every
// bucket of its device instead of aliasing one (a member has at most
// 2^48 buckets).
const MaxBucket = 1<<48 - 1

// MakeBucketKey returns the key of bucket b on device dev (b saturated at
// MaxBucket).
func MakeBucketKey(dev uint64, b uint64) BucketKey { return BucketKey(dev<<48 | min(b, MaxBucket)) }

// Dev returns the device index.
func (k BucketKey) Dev() int { return int(k >> 48) }

// Bucket returns the bucket number.
func (k BucketKey) Bucket() uint64 { return uint64(k) & (1<<48 - 1) }

// RefKind says what a Ref stands for.
type RefKind uint8

// Ref kinds.
const (
	RefPtr     RefKind = iota // a pointer of a key: expects a backpointer (if NeedsBP) and counts sectors
	RefSB                     // superblock sectors in a bucket
	RefJournal                // a journal bucket
	RefStripe                 // a block of an erasure-coded stripe: counts in the bucket's stripe refcount; a parity block's Sectors are dirty sectors
)

// Ref is one record streamed by producers: a pointer of a key (with the
// backpointer it needs) or a metadata region, in one bucket.
type Ref struct {
	Kind     RefKind
	KeyType  bp.KeyType
	NeedsBP  bool
	Cached   bool
	Gen      uint8
	DataType bp.DataType
	// StripeBlock (RefStripe): the block's index in its stripe.
	StripeBlock uint8
	Sectors     uint32 // sectors the pointer occupies in the bucket
	// StripeCount (RefStripe, data blocks): the sectors the stripe key
	// records for the block (its block sector count), +1; 0 when unknown.
	StripeCount uint32
	Bucket      BucketKey
	// BPOff is the offset of the backpointer key's position; its inode
	// is the bucket's device and its snapshot 0 (BPPos). Keeping only the
	// offset makes a record 64 bytes, one cache line.
	BPOff uint64
	BPVal [bp.BackpointerBytes]byte // expected backpointer value, encoded
}

// BPPos returns the backpointer key position of the record.
func (r *Ref) BPPos() bp.Pos { return bp.Pos{Inode: uint64(r.Bucket.Dev()), Offset: r.BPOff} }

// BP decodes the expected backpointer value.
func (r *Ref) BP(formatB bool) bp.Backpointer {
	v, _ := bp.DecodeBackpointer(r.BPVal[:], formatB)
	return v
}

// BPEntry is a backpointer as the shard keeps it: its position's offset
// and its value, packed into three words (entry.go). Its device is kept per run of entries (Shard.devRuns:
// they are in key order, device first), and whether a pointer matched
// it in a bitmap (Shard.matched).
type BPEntry struct {
	Off uint64
	w   packedBP // the value (entry.go), or notPacked: in Shard.whole
}

// BPEntrySize is the memory a shard pins per backpointer (its entry and
// its bit of the matched bitmap, rounded down). A value that does not pack
// (see entry.go) costs a map entry more.
const BPEntrySize = 32

// devRun says that the backpointers from index start on (up to the next
// run) are on device dev.
type devRun struct {
	start int
	dev   uint32
}

// AllocEntrySize is the memory a shard pins per alloc key: its 120-byte
// entry and a word of the dense bucket index (the planner counts one
// per bucket of the range).
const AllocEntrySize = 124

type bucketState struct {
	key    BucketKey
	a      bp.AllocV4
	dirty  uint64
	cached uint64
	stripe uint64
	// bps[bpLo:bpHi] are exactly this bucket's backpointers when indexed,
	// so lookups search a few entries instead of the whole shard. A
	// Digest shard keeps no backpointers and holds its sums in these
	// three words instead (digest, addDigest).
	bpLo, bpHi int32
	bpNext     int32  // where the next lookup starts: the entry after the last one found
	stripes    uint32 // stripe blocks in the bucket (stripe_refcount)
	hint       bp.DataType
	hasAlloc   bool
	hasRefs    bool
	missingOK  bool // ptr_to_missing_alloc_key already reported
	// incomplete: records of this bucket were lost to a read error, so its
	// sums cannot be judged.
	incomplete bool
	indexed    bool
}

// Config is what a shard needs to know about the filesystem.
type Config struct {
	FormatB bool
	Shift   uint
	// BucketSize gives the bucket size of a member, ok=false if dev is not
	// a member.
	BucketSize func(dev uint64) (uint32, bool)
	// ValidBucket reports whether bucket lies in [first_bucket, nbuckets).
	ValidBucket func(dev uint64, bucket uint64) bool
	// Describe renders a backpointer key for reports (like bcachefs list).
	Describe func(pos bp.Pos, v []byte) string
	// BtreeName names a btree id.
	BtreeName func(bp.BtreeID) string
	// CheckStripe: compare stripe_sectors. Erasure-coded extent pointers
	// count in stripe_sectors when StripeSectors is set (metadata 1.8+),
	// else in dirty_sectors; parity blocks of stripes in dirty_sectors.
	CheckStripe   bool
	StripeSectors bool
	// CheckStripeRefcount: compare the alloc key's stripe_refcount with
	// the stripe blocks found in the bucket (1.35+; before, the field
	// held a stripe index, which is not compared).
	CheckStripeRefcount bool
	// CheckCached: compare cached_sectors (format B ≥ 1.21 keeps
	// backpointers for cached pointers; the sums are checked in both).
	CheckCached bool
	// MultipleSticky: a bucket whose pointers are of two dirty data types
	// should be "multiple", and an alloc key that says "multiple" keeps it
	// (1.38+: alloc_data_type, bucket_ref_update).
	MultipleSticky bool
	// ECFlags: backpointers of erasure-coded pointers carry the flags
	// ERASURE_CODED and STRIPE_PTR (1.37+); a stored one without them is
	// an upgrade leftover.
	ECFlags bool
	// CheckDup judges two pointers claiming the same backpointer
	// position: r, whose expected backpointer differs from the stored
	// one, and the key the stored backpointer names, which has a pointer
	// there too. It returns the findings (bcachefs check_bp_dup).
	CheckDup func(r *Ref, storedPos bp.Pos, stored []byte) []report.Finding
	// Digest is the key of the record digests of Digest mode shards.
	Digest *DigestKey
}

// stripeBlock is what a shard learns of a bucket holding a block of an
// erasure-coded stripe: the stripe key, the block's index and the sector
// count the key records for it, and the sectors of the erasure-coded
// pointers into the bucket (gc's block_sectors: the pointers into a
// stripe's block lie in the block's bucket).
type stripeBlock struct {
	stripe    bp.Pos
	block     uint8
	recorded  uint32 // the recorded count + 1; 0: unknown
	blocks    int    // stripe blocks in the bucket
	ecSectors uint64
}

// mismatch is a pointer whose backpointer position holds another value.
type mismatch struct {
	ref   Ref
	entry int
}

// Shard is one bucket range [Lo, Hi).
type Shard struct {
	Lo, Hi    BucketKey
	cfg       *Config
	bps       []BPEntry
	devCounts map[uint32]int // backpointers per device (Finish)
	// leftovers are the stored backpointers a pointer found with an
	// upgrade's leftover value (resolveMismatches): their
	// backpointer_to_missing_ptr half is marked too (Finish).
	leftovers map[int]string
	buckets   []bucketState // sorted by key: alloc keys, then buckets with refs but no alloc key appended
	// the arrays Reserve made, possibly outside the Go heap (Release
	// frees them)
	bpsArr     *hugemem.Array[BPEntry]
	bucketsArr *hugemem.Array[bucketState]
	extra      map[BucketKey]int
	findings   []report.Finding
	nAlloc     int
	indexed    bool // indexBuckets has run
	pending    []mismatch
	// ec: the buckets that hold stripe blocks or erasure-coded pointers
	// (erasure coding is rare: a map).
	ec map[BucketKey]*stripeBlock
	// last bucket looked up (records of consecutive extents mostly share
	// a bucket): its key and index in buckets, valid when lastOK.
	lastKey BucketKey
	lastIdx int
	lastOK  bool
	// devRuns: the devices of bps, a run per device in key order (one
	// more for every step back a corrupt btree takes).
	devRuns []devRun
	// matched: bit i says a pointer matched bps[i] (made by indexBuckets).
	matched []uint64
	// dense, when made (indexBuckets), maps bucket denseLo+i of one
	// device to 1 + its entry in buckets (alloc keys only), or 0: a
	// lookup without a binary search over entries a cache miss apart.
	dense    []int32
	denseLo  BucketKey
	denseArr *hugemem.Array[int32] // dense's memory (Release, dropDense)
	// denseSegs, when the alloc keys lie on several devices, is the dense
	// index of each device by its index (dense is then nil): a shard's
	// range spans devices whole when the filesystem has more devices
	// than shards.
	denseSegs []denseSeg
	// whole holds the values of the entries that do not pack, in the
	// order of their entries; such an entry's first word is its value's
	// index here (entry.go). 32 bytes a value, as its entry's value
	// would take (a map took ~60–80).
	whole [][bp.BackpointerBytes]byte
	// aDev's bucket size aBS (0: none), valid when aOK: inBucketA's
	// cache (the entries and records come device by device).
	aDev uint32
	aOK  bool
	aBS  uint64

	// mode says how pointers are matched with backpointers (digest.go).
	mode Mode
	// Digest mode: bpDig sums the stored backpointers per bucket, in
	// load order (bpDigArr is its memory); nBP counts them and lastBPOff
	// is the offset of the last one; digBad: they came out of order;
	// forced: buckets a digest cannot judge.
	bpDig     []bucketDigest
	bpDigArr  *hugemem.Array[bucketDigest]
	nBP       int
	lastBPOff uint64
	// digLo, digHi: the offsets of the last bpDig entry's bucket on
	// device aDev (both 0: not known).
	digLo, digHi uint64
	// inCache: recent buckets' backpointer offsets (bpInBucket's cache),
	// a bucket to each device modulo its size: records alternate between
	// devices when the data is spread over several.
	inCache  [64]inEntry
	digBad   bool
	allocBad bool // alloc keys came out of order (AddAlloc)
	forced   []BucketKey
	pairs    [][2]BucketKey // buckets tied by a forced record (TiedBuckets)

	// bpsUnsorted, allocUnsorted: backpointers (Exact, Recheck) or
	// alloc keys (every mode) came out of key order (a corrupt btree
	// whose sibling leaves overlap); indexBuckets sorts them.
	bpsUnsorted, allocUnsorted bool

	// missingAt: where the ptr_to_missing_alloc_key finding of each bucket
	// without alloc key is in findings (missingAllocKey).
	missingAt map[BucketKey]int
	// Recheck mode: only holds the buckets checked; incompleteKeys are
	// the buckets Finish marked incomplete.
	only           *BucketSet
	incompleteKeys []BucketKey
}

// New returns an empty Exact shard for buckets [lo, hi).
func New(cfg *Config, lo, hi BucketKey) *Shard {
	return &Shard{Lo: lo, Hi: hi, cfg: cfg, extra: map[BucketKey]int{}}
}

// NewIn returns an empty shard for buckets [lo, hi) in mode m; Digest
// mode needs cfg.Digest (without it the shard is Exact).
func NewIn(m Mode, cfg *Config, lo, hi BucketKey) *Shard {
	s := New(cfg, lo, hi)
	if m != Digest || cfg.Digest != nil {
		s.mode = m
	}
	return s
}

// Mode returns the shard's mode.
func (s *Shard) Mode() Mode { return s.mode }

// Reserve sizes the backpointer and alloc arrays for the planner's
// estimates (upper bounds), so that loading never grows them: growing a
// large slice holds the old and the new array at once.
//
// Large arrays are mapped outside the Go heap on huge pages (package
// hugemem): call Release when the shard is done.
func (s *Shard) Reserve(bps, allocs int) {
	if s.mode == Digest {
		s.ReserveDigests(allocs)
		bps = 0 // none kept
	}
	if bps > cap(s.bps) {
		s.bpsArr.Free()
		s.bpsArr = hugemem.Alloc[BPEntry](hugeCap(bps, unsafe.Sizeof(BPEntry{})))
		s.bps = s.bpsArr.S
	}
	if allocs > cap(s.buckets) {
		s.bucketsArr.Free()
		s.bucketsArr = hugemem.Alloc[bucketState](hugeCap(allocs, unsafe.Sizeof(bucketState{})))
		s.buckets = s.bucketsArr.S
	}
}

// hugePage is the size of the huge pages hugemem asks for.
const hugePage = 2 << 20

// hugeCap is how many entries of size bytes to reserve for n: n, or,
// when the array is mapped on huge pages (hugemem.MinBytes or more),
// enough more that the first n entries lie in whole huge pages of the
// range hugemem advises (a huge page is used only for a 2 MiB page that
// lies wholly in it). The part of the last one past an array of exactly
// n entries was faulted in 4 KiB at a time: ~650 page faults, of ~25 µs
// each on the 2-vCPU VM, for the alloc arrays of a 1.35 M-extent check.
func hugeCap(n int, size uintptr) int {
	b := int64(n) * int64(size)
	if n <= 0 || b < hugemem.MinBytes || b > math.MaxInt64/2 {
		return n
	}
	r := (b + hugePage - 1) / hugePage * hugePage
	return int((r + int64(size) - 1) / int64(size))
}

// Release frees the arrays Reserve made. The shard, and anything Finish
// did not copy out of it, must not be used afterwards.
func (s *Shard) Release() {
	s.bps, s.buckets, s.whole, s.bpDig = nil, nil, nil, nil
	s.dropDense()
	s.bpsArr.Free()
	s.bucketsArr.Free()
	s.bpDigArr.Free()
	s.bpsArr, s.bucketsArr, s.bpDigArr = nil, nil, nil
}

// Contains reports whether bucket k belongs to the shard.
func (s *Shard) Contains(k BucketKey) bool { return k >= s.Lo && k < s.Hi }

// AddBP adds a backpointer read from the backpointers btree. Backpointers
// must be added in key order; val is the key's value (BackpointerBytes
// long: the loader checks; a shorter one is zero-padded).
func (s *Shard) AddBP(dev uint32, off uint64, val []byte) {
	switch s.mode {
	case Digest:
		if len(val) >= bp.BackpointerBytes {
			s.addBPDigest(dev, off, (*[bp.BackpointerBytes]byte)(val))
		} else {
			var padded [bp.BackpointerBytes]byte
			copy(padded[:], val)
			s.addBPDigest(dev, off, &padded)
		}
		return
	case Recheck:
		if k, ok := s.bpBucketKey(dev, off); !ok || !s.only.Has(k) {
			return
		}
	}
	// The entry is filled in place: a local copied in would be read back
	// with wide loads that stall on the narrow stores that built it.
	n := len(s.bps)
	if r := len(s.devRuns); r == 0 || s.devRuns[r-1].dev != dev {
		if r > 0 && dev < s.devRuns[r-1].dev {
			s.bpsUnsorted = true
		}
		s.devRuns = append(s.devRuns, devRun{start: n, dev: dev})
	} else if off < s.bps[n-1].Off {
		s.bpsUnsorted = true
	}
	if n < cap(s.bps) {
		s.bps = s.bps[:n+1]
	} else {
		s.bps = append(s.bps, BPEntry{})
	}
	e := &s.bps[n]
	e.Off = off
	var v *[bp.BackpointerBytes]byte
	if len(val) >= bp.BackpointerBytes {
		v = (*[bp.BackpointerBytes]byte)(val)
	} else {
		var padded [bp.BackpointerBytes]byte
		copy(padded[:], val)
		v = &padded
	}
	inBucket := uint64(0) // format B values with small flags pack without it
	if !s.cfg.FormatB || binary.LittleEndian.Uint32(v[4:]) >= packFlags {
		inBucket = s.inBucket(dev, off)
	}
	if packBP(&e.w, v, s.cfg.FormatB, inBucket) {
		return
	}
	e.w[0], e.w[1], e.w[2] = uint64(len(s.whole)), 0, notPacked
	s.whole = append(s.whole, *v)
}

// TruncateBPs drops the backpointers added after the first n (a loader
// undoing the keys of a node it leaves to another path).
func (s *Shard) TruncateBPs(n int) {
	if n < len(s.bps) {
		// The values of the entries dropped are the last ones kept
		// whole: cut at the first.
		for i := n; i < len(s.bps); i++ {
			if e := &s.bps[i]; e.w[2]&notPacked != 0 {
				s.whole = s.whole[:e.w[0]]
				break
			}
		}
		s.bps = s.bps[:n]
	}
	for r := len(s.devRuns); r > 0 && s.devRuns[r-1].start >= len(s.bps); r-- {
		s.devRuns = s.devRuns[:r-1]
	}
}

// runEnd returns the end of devRuns[r] in bps.
func (s *Shard) runEnd(r int) int {
	if r+1 < len(s.devRuns) {
		return s.devRuns[r+1].start
	}
	return len(s.bps)
}

// devAt returns the device of bps[i].
func (s *Shard) devAt(i int) uint32 {
	r := s.devRuns
	if len(r) == 1 {
		return r[0].dev
	}
	lo, hi := 0, len(r) // the last run that starts at or before i
	for hi-lo > 1 {
		if h := int(uint(lo+hi) >> 1); r[h].start <= i {
			lo = h
		} else {
			hi = h
		}
	}
	return r[lo].dev
}

// isMatched reports whether a pointer matched bps[i].
func (s *Shard) isMatched(i int) bool {
	return i>>6 < len(s.matched) && s.matched[i>>6]&(1<<(uint(i)&63)) != 0
}

// setMatched records that a pointer matched bps[i].
func (s *Shard) setMatched(i int) {
	if i>>6 >= len(s.matched) {
		s.matched = append(s.matched, make([]uint64, i>>6+1-len(s.matched))...)
	}
	s.matched[i>>6] |= 1 << (uint(i) & 63)
}

// AddAlloc adds the alloc key of a bucket; keys come in order. Keys out
// of order (a corrupt alloc btree, e.g. sibling leaves whose ranges
// overlap) are sorted before the first look-up (indexBuckets), keys of
// one bucket in the order they came; a Digest shard also has its whole
// range rechecked then (Mismatches).
func (s *Shard) AddAlloc(k BucketKey, a bp.AllocV4) {
	if s.mode == Recheck && !s.only.Has(k) {
		return
	}
	if s.nAlloc > 0 && k <= s.buckets[s.nAlloc-1].key {
		s.allocBad = s.allocBad || s.mode == Digest
		s.allocUnsorted = s.allocUnsorted || k < s.buckets[s.nAlloc-1].key
		if k == s.buckets[s.nAlloc-1].key {
			return // held twice: the first key stands (the kernel's iterator gives one)
		}
	}
	s.buckets = append(s.buckets, bucketState{key: k, hasAlloc: true, a: a})
	s.nAlloc++
}

// Counts returns how many backpointers and alloc keys the shard holds.
func (s *Shard) Counts() (bps, allocs int) {
	if s.mode == Digest {
		return s.nBP, s.nAlloc
	}
	return len(s.bps), s.nAlloc
}

// bpBucketKey returns the bucket of the backpointer at offset off of
// device dev; ok is false for a device without a bucket size.
func (s *Shard) bpBucketKey(dev uint32, off uint64) (BucketKey, bool) {
	bs, ok := s.cfg.BucketSize(uint64(dev))
	if !ok || bs == 0 || s.cfg.Shift >= 64 {
		return 0, false
	}
	return MakeBucketKey(uint64(dev), (off>>s.cfg.Shift)/uint64(bs)), true
}

// DevCounts returns how many backpointers the shard holds per device. It
// is counted by Finish (in the walk over the backpointers it makes
// anyway); before Finish it is empty.
func (s *Shard) DevCounts() map[uint32]int { return s.devCounts }

func (s *Shard) bucket(k BucketKey) *bucketState {
	if s.lastOK && k == s.lastKey {
		return &s.buckets[s.lastIdx]
	}
	idx := s.bucketIndex(k)
	s.lastKey, s.lastIdx, s.lastOK = k, idx, true
	return &s.buckets[idx]
}

// bucketIndex finds (or adds) bucket k's entry.
func (s *Shard) bucketIndex(k BucketKey) int {
	if d := uint64(k) - uint64(s.denseLo); d < uint64(len(s.dense)) {
		if i := s.dense[d]; i > 0 {
			return int(i) - 1
		}
		return s.extraIndex(k)
	}
	if dev := uint64(k) >> 48; dev < uint64(len(s.denseSegs)) {
		g := &s.denseSegs[dev]
		if d := uint64(k) - uint64(g.lo); d < uint64(len(g.idx)) {
			if i := g.idx[d]; i > 0 {
				return int(i) - 1
			}
			return s.extraIndex(k)
		}
	}
	i, j := 0, s.nAlloc
	for i < j {
		h := int(uint(i+j) >> 1)
		if s.buckets[h].key < k {
			i = h + 1
		} else {
			j = h
		}
	}
	if i < s.nAlloc && s.buckets[i].key == k {
		return i
	}
	return s.extraIndex(k)
}

// extraIndex finds (or adds) the entry of bucket k, which has no alloc key.
func (s *Shard) extraIndex(k BucketKey) int {
	if j, ok := s.extra[k]; ok {
		return j
	}
	s.buckets = append(s.buckets, bucketState{key: k})
	s.extra[k] = len(s.buckets) - 1
	return len(s.buckets) - 1
}

// dropDense drops the dense bucket index and frees its memory.
func (s *Shard) dropDense() {
	s.dense, s.denseSegs = nil, nil
	s.denseArr.Free()
	s.denseArr = nil
}

// denseMax bounds the dense index to a few words per alloc key: a shard
// over a mostly empty device keeps the binary search.
const denseMax = 8

// inEntry is a bucket's backpointer offsets, [lo, hi), when ok.
type inEntry struct {
	key    BucketKey
	ok     bool
	lo, hi uint64
}

// denseSeg is the dense bucket index of one device: bucket lo+i maps to
// idx[i] (as dense does).
type denseSeg struct {
	lo  BucketKey
	idx []int32
}

// makeDense builds the dense bucket index when the alloc keys span no
// more than denseMax buckets per key (at most 32 bytes per alloc key,
// against its 120-byte entry), besides 1024 per device: one array when
// they lie on one device, else one per device (makeDenseDevs).
func (s *Shard) makeDense() {
	if s.nAlloc == 0 || s.nAlloc >= 1<<31-1 {
		return
	}
	lo, hi := s.buckets[0].key, s.buckets[s.nAlloc-1].key
	if lo.Dev() != hi.Dev() {
		s.makeDenseDevs()
		return
	}
	if uint64(hi-lo) >= uint64(denseMax*s.nAlloc+1024) {
		return
	}
	// Fresh zero memory, on huge pages when large: nothing to fill.
	s.denseArr = hugemem.Alloc[int32](int(hi - lo + 1))
	s.dense = s.denseArr.S[:hi-lo+1]
	for i := range s.buckets[:s.nAlloc] {
		k := s.buckets[i].key
		if k < lo || k > hi || i > 0 && k < s.buckets[i-1].key {
			// Not sorted (the loader keeps what the btree gives): the
			// search decides, as it always did.
			s.dropDense()
			return
		}
		if d := &s.dense[k-lo]; *d == 0 {
			*d = int32(i) + 1 // the first of equal keys, as the search finds
		}
	}
	s.denseLo = lo
}

// makeDenseDevs is makeDense for alloc keys on several devices: a dense
// index per device, over the span of its keys, in one array.
func (s *Shard) makeDenseDevs() {
	type span struct {
		lo, hi BucketKey
		n      int
	}
	var spans []span // by device
	for i := range s.buckets[:s.nAlloc] {
		k := s.buckets[i].key
		if i > 0 && k < s.buckets[i-1].key {
			return // not sorted: the search decides
		}
		d := k.Dev()
		if d >= len(spans) {
			spans = append(spans, make([]span, d+1-len(spans))...)
		}
		g := &spans[d]
		if g.n == 0 {
			g.lo = k
		}
		g.hi = k
		g.n++
	}
	total, devs := 0, 0
	for _, g := range spans {
		if g.n > 0 {
			total += int(g.hi-g.lo) + 1
			devs++
		}
	}
	if uint64(total) >= uint64(denseMax*s.nAlloc+1024*devs) {
		return
	}
	s.denseArr = hugemem.Alloc[int32](total)
	arr := s.denseArr.S[:total]
	s.denseSegs = make([]denseSeg, len(spans))
	off := 0
	for d, g := range spans {
		if g.n > 0 {
			n := int(g.hi-g.lo) + 1
			s.denseSegs[d] = denseSeg{lo: g.lo, idx: arr[off : off+n : off+n]}
			off += n
		}
	}
	for i := range s.buckets[:s.nAlloc] {
		k := s.buckets[i].key
		g := &s.denseSegs[k.Dev()]
		if x := &g.idx[k-g.lo]; *x == 0 {
			*x = int32(i) + 1 // the first of equal keys, as the search finds
		}
	}
}

// indexBuckets records, for every alloc key's bucket, the range of the
// shard's backpointers that fall in it (both arrays are sorted by bucket).
func (s *Shard) indexBuckets() {
	s.indexed = true
	s.sortLoaded()
	s.makeDense()
	if len(s.bps) >= 1<<31 {
		return
	}
	s.matched = make([]uint64, (len(s.bps)+63)/64)
	bi := 0
	for r := range s.devRuns {
		dev, end := s.devRuns[r].dev, s.runEnd(r)
		bs, ok := s.cfg.BucketSize(uint64(dev))
		if !ok || bs == 0 {
			continue
		}
		for i := s.devRuns[r].start; i < end; {
			b := (s.bps[i].Off >> s.cfg.Shift) / uint64(bs)
			k := MakeBucketKey(uint64(dev), b)
			j := i + 1
			// The bucket's backpointers are those below the next
			// bucket's first position (one division per bucket, not
			// per entry); the shift back up is exact unless it
			// overflows, which the per-entry division then decides.
			if top := (b + 1) * uint64(bs); top>>(64-s.cfg.Shift) == 0 && s.cfg.Shift < 64 && b < 1<<48 {
				lim := top << s.cfg.Shift
				for j < end && s.bps[j].Off < lim {
					j++
				}
			} else {
				for j < end && MakeBucketKey(uint64(dev), (s.bps[j].Off>>s.cfg.Shift)/uint64(bs)) == k {
					j++
				}
			}
			for bi < s.nAlloc && s.buckets[bi].key < k {
				s.buckets[bi].indexed = true
				bi++
			}
			if bi < s.nAlloc && s.buckets[bi].key == k {
				s.buckets[bi].indexed, s.buckets[bi].bpLo, s.buckets[bi].bpHi = true, int32(i), int32(j)
				bi++
			}
			i = j
		}
	}
	for ; bi < s.nAlloc; bi++ {
		s.buckets[bi].indexed = true
	}
}

// sortLoaded puts the backpointers and alloc keys a corrupt btree handed
// the shard out of order into key order, keeping the order in which they
// came among equal keys (a position or bucket held twice: the first one
// is the one a look-up finds, as before). Every look-up then finds what
// the shard holds, whatever the order of the leaves; before, a binary
// search among unsorted entries could miss one that was there.
func (s *Shard) sortLoaded() {
	if s.allocUnsorted {
		s.allocUnsorted = false
		slices.SortStableFunc(s.buckets[:s.nAlloc], func(a, b bucketState) int { return cmp.Compare(a.key, b.key) })
		// A bucket held twice keeps its first key (see AddAlloc).
		kept := slices.CompactFunc(s.buckets[:s.nAlloc], func(a, b bucketState) bool { return a.key == b.key })
		if n := len(kept); n < s.nAlloc {
			s.buckets = append(kept, s.buckets[s.nAlloc:]...)
			s.nAlloc = n
		}
		s.lastOK = false
	}
	if !s.bpsUnsorted {
		return
	}
	s.bpsUnsorted = false
	byOff := func(a, b BPEntry) int { return cmp.Compare(a.Off, b.Off) }
	devsInOrder := true // every device in one run, the runs in device order
	for r := 1; r < len(s.devRuns); r++ {
		devsInOrder = devsInOrder && s.devRuns[r-1].dev < s.devRuns[r].dev
	}
	if devsInOrder {
		// Overlapping leaves of one device: each run sorted in place, no
		// memory taken (an Exact shard fills its share of the budget).
		for r := range s.devRuns {
			if run := s.bps[s.devRuns[r].start:s.runEnd(r)]; !slices.IsSortedFunc(run, byOff) {
				slices.SortStableFunc(run, byOff)
			}
		}
		return
	}
	// A device stepped back: the entries are put in (device, offset)
	// order through a permutation of 4 bytes an entry, applied in place
	// cycle by cycle (entries are 32 bytes). Past 2^31 entries the shard
	// is not indexed either (indexBuckets).
	if len(s.bps) >= 1<<31 {
		return
	}
	idx := make([]int32, len(s.bps))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int {
		if c := cmp.Compare(s.devAt(int(a)), s.devAt(int(b))); c != 0 {
			return c
		}
		return cmp.Compare(s.bps[a].Off, s.bps[b].Off)
	})
	var runs []devRun
	for i, j := range idx {
		if d := s.devAt(int(j)); len(runs) == 0 || runs[len(runs)-1].dev != d {
			runs = append(runs, devRun{start: i, dev: d})
		}
	}
	// Position i takes the entry at idx[i]; a done position is marked
	// by idx[i] = -1.
	for i := range idx {
		if idx[i] < 0 || int(idx[i]) == i {
			continue
		}
		tmp, j := s.bps[i], i
		for {
			k := int(idx[j])
			idx[j] = -1
			if k == i {
				s.bps[j] = tmp
				break
			}
			s.bps[j] = s.bps[k]
			j = k
		}
	}
	s.devRuns = runs
}

// findBPIn looks p up among bucket b's backpointers when they are indexed,
// else in the whole shard. Pointers mostly arrive in the order of their
// backpointers (extents written in sequence), so the entry after the last
// one found is tried first, then a binary search of the bucket's range.
func (s *Shard) findBPIn(b *bucketState, p bp.Pos) int {
	if !b.indexed {
		return s.findBP(p)
	}
	if p.Snapshot != 0 || p.Inode > 0xffffffff {
		return -1
	}
	if uint32(p.Inode) != uint32(b.key.Dev()) {
		return -1 // not this bucket's device: none of its entries
	}
	// The bucket's entries are all on its device: offsets decide.
	if c := int(b.bpNext); c >= int(b.bpLo) && c < int(b.bpHi) {
		// Taken only when it is the first entry at its position, as the
		// search below would find (a corrupt btree may hold a position
		// twice; the answer must not depend on the records' order).
		if e := &s.bps[c]; e.Off == p.Offset && (c == int(b.bpLo) || s.bps[c-1].Off != p.Offset) {
			b.bpNext = int32(c + 1)
			return c
		}
	}
	i := s.searchOff(int(b.bpLo), int(b.bpHi), p.Offset)
	if i >= 0 {
		b.bpNext = int32(i + 1)
	}
	return i
}

// findBP looks p up among all of the shard's backpointers: in the run of
// its device (the first that holds it, should a corrupt btree have
// stepped back).
func (s *Shard) findBP(p bp.Pos) int {
	if p.Snapshot != 0 || p.Inode > 0xffffffff {
		return -1
	}
	for r := range s.devRuns {
		if s.devRuns[r].dev == uint32(p.Inode) {
			if i := s.searchOff(s.devRuns[r].start, s.runEnd(r), p.Offset); i >= 0 {
				return i
			}
		}
	}
	return -1
}

// searchOff returns the index of the first backpointer at offset off in
// s.bps[lo:hi] (sorted, one device), or -1.
func (s *Shard) searchOff(lo, hi int, off uint64) int {
	i, j := lo, hi
	for i < j {
		h := int(uint(i+j) >> 1)
		if s.bps[h].Off < off {
			i = h + 1
		} else {
			j = h
		}
	}
	if i < hi && s.bps[i].Off == off {
		return i
	}
	return -1
}

// stripeBlock returns the erasure-coding state of bucket k.
func (s *Shard) stripeBlock(k BucketKey) *stripeBlock {
	if s.ec == nil {
		s.ec = map[BucketKey]*stripeBlock{}
	}
	sb := s.ec[k]
	if sb == nil {
		sb = &stripeBlock{}
		s.ec[k] = sb
	}
	return sb
}

// genAfter reports int8(a-b) > 0 (8-bit wrapping generation compare).
func genAfter(a, b uint8) bool { return int8(a-b) > 0 }

// Apply processes a batch of records. The shard must be fully loaded.
func (s *Shard) Apply(refs []Ref) {
	if !s.indexed {
		s.indexBuckets()
	}
	for i := range refs {
		s.apply(&refs[i])
	}
}

func (s *Shard) apply(r *Ref) {
	if s.mode == Recheck && !s.only.Has(r.Bucket) {
		return
	}
	b := s.bucket(r.Bucket)
	switch r.Kind {
	case RefSB, RefJournal:
		b.hasRefs = true
		b.dirty += uint64(r.Sectors)
		if b.hint == bp.DataFree {
			b.hint = r.DataType
		}
		return
	}
	stale := false
	if b.hasAlloc {
		if genAfter(r.Gen, b.a.Gen) {
			if s.mode != Recheck {
				s.findings = append(s.findings, s.ptrFinding(report.PtrGenNewerThanBucket, r,
					fmt.Sprintf("pointer gen %d newer than bucket gen %d", r.Gen, b.a.Gen)))
			}
			stale = true
		} else if r.Gen != b.a.Gen {
			stale = true
			if !r.Cached && s.mode != Recheck {
				s.findings = append(s.findings, s.ptrFinding(report.StaleDirtyPtr, r,
					fmt.Sprintf("dirty pointer gen %d, bucket gen %d", r.Gen, b.a.Gen)))
			}
		}
	} else if s.mode != Recheck { // else the Digest pass reported it
		s.missingAllocKey(b, r)
	}
	if r.Kind == RefStripe {
		// A stripe block (__mark_stripe_bucket): one stripe reference; a
		// parity block also holds the stripe's sectors as dirty sectors.
		b.hasRefs = true
		b.stripes++
		sb := s.stripeBlock(r.Bucket)
		sb.blocks++
		sb.stripe = bp.DecodePos(r.BPVal[12:])
		sb.block, sb.recorded = r.StripeBlock, r.StripeCount
		if r.DataType == bp.DataParity {
			b.hint = bp.DataParity
			if !stale {
				b.dirty += uint64(r.Sectors)
			}
		}
	} else if !stale {
		b.hasRefs = true
		if r.Cached {
			b.cached += uint64(r.Sectors)
		} else if r.DataType == bp.DataStripe && s.cfg.StripeSectors {
			// An erasure-coded pointer counts in stripe_sectors (1.8+).
			b.stripe += uint64(r.Sectors)
			s.stripeBlock(r.Bucket).ecSectors += uint64(r.Sectors)
			if b.hint == bp.DataFree || b.hint == bp.DataCached {
				b.hint = r.DataType
			}
		} else {
			b.dirty += uint64(r.Sectors)
			if b.hint == bp.DataFree || b.hint == bp.DataCached {
				b.hint = r.DataType
			} else if s.cfg.MultipleSticky && b.hint != r.DataType && b.hint != bp.DataParity && b.hint != bp.DataStripe {
				b.hint = bp.DataMultiple
			}
			if r.DataType == bp.DataStripe {
				s.stripeBlock(r.Bucket).ecSectors += uint64(r.Sectors)
			}
		}
	}
	if !r.NeedsBP || (r.Cached && stale) {
		return
	}
	if s.mode == Digest {
		s.addPtrDigest(b, r)
		return
	}
	i := -1
	if r.Kind == RefStripe {
		i = s.findBP(r.BPPos()) // a stripe block's backpointer sits at its end
	} else {
		i = s.findBPIn(b, r.BPPos())
	}
	if i < 0 {
		f := s.ptrFinding(report.PtrToMissingBackpointer, r, "missing backpointer")
		want := r.BPVal // copied here only: slicing it makes it escape
		f.Want = s.cfg.Describe(r.BPPos(), want[:])
		s.findings = append(s.findings, f)
		return
	}
	if !s.sameAt(i, uint32(r.Bucket.Dev()), &r.BPVal) {
		// Judged at the end: another key may claim this backpointer.
		s.pending = append(s.pending, mismatch{ref: *r, entry: i})
		return
	}
	s.setMatched(i)
}

// missingAllocKey reports a pointer into bucket b, which has no alloc key:
// one ptr_to_missing_alloc_key per bucket, for the pointer whose finding
// sorts first (report.Compare), so that the finding does not depend on the
// order in which records arrive (producers and shards run in parallel).
func (s *Shard) missingAllocKey(b *bucketState, r *Ref) {
	f := s.ptrFinding(report.PtrToMissingAllocKey, r,
		fmt.Sprintf("data type %s ptr gen %d missing in alloc btree", r.DataType, r.Gen))
	if !b.missingOK {
		b.missingOK = true
		if s.missingAt == nil {
			s.missingAt = map[BucketKey]int{}
		}
		s.missingAt[b.key] = len(s.findings)
		s.findings = append(s.findings, f)
		return
	}
	if i, ok := s.missingAt[b.key]; ok && findingBefore(&f, &s.findings[i]) {
		s.findings[i] = f
	}
}

// findingBefore orders findings totally: report.Compare, then the fields
// it leaves out.
func findingBefore(a, b *report.Finding) bool {
	if c := report.Compare(a, b); c != 0 {
		return c < 0
	}
	if a.Detail != b.Detail {
		return a.Detail < b.Detail
	}
	return a.KeyType < b.KeyType
}

// resolveMismatches judges pointers whose backpointer position holds a
// different value: when the backpointer's own key claims it too, two keys
// point at the same space (duplicate claim); otherwise the pointer's
// backpointer is missing and the stored one is wrong.
func (s *Shard) resolveMismatches() {
	for i := range s.pending {
		m := &s.pending[i]
		r := &m.ref
		dev := s.devAt(m.entry)
		off := s.bps[m.entry].Off
		pos := bp.Pos{Inode: uint64(dev), Offset: off}
		got := s.value(m.entry, dev)
		if s.isMatched(m.entry) && s.cfg.CheckDup != nil {
			s.findings = append(s.findings, s.cfg.CheckDup(r, pos, got[:])...)
			continue
		}
		want := r.BPVal
		f := s.ptrFinding(report.PtrToMissingBackpointer, r, "backpointer does not match the pointer")
		f.Got = s.cfg.Describe(r.BPPos(), got[:])
		f.Want = s.cfg.Describe(r.BPPos(), want[:])
		if kind := s.leftover(dev, off, &got, &want); kind != "" {
			report.MarkLeftover(&f, kind)
			if s.leftovers == nil {
				s.leftovers = map[int]string{}
			}
			s.leftovers[m.entry] = kind
		}
		s.findings = append(s.findings, f)
	}
	s.pending = nil
}

// leftover says what an upgrade left in the backpointer stored at offset
// off (value got) (a report.Leftover* kind) when a pointer expects want
// there, or "": the value differs from want only as the upgrade left it.
func (s *Shard) leftover(dev uint32, off uint64, got, want *[bp.BackpointerBytes]byte) string {
	if s.oldLayout(dev, off, got) && string(got[:3]) == string(want[:3]) && string(got[8:]) == string(want[8:]) {
		return report.LeftoverLayout114
	}
	if s.cfg.ECFlags && s.cfg.FormatB {
		v, err := bp.DecodeBackpointer(got[:], true)
		if err != nil || v.Flags&(bp.BPFlagErasureCoded|bp.BPFlagStripePtr) != 0 || v.DataType != bp.DataStripe {
			return ""
		}
		w, err := bp.DecodeBackpointer(want[:], true)
		if err == nil && w.Flags&bp.BPFlagErasureCoded != 0 {
			v.Flags |= w.Flags & (bp.BPFlagErasureCoded | bp.BPFlagStripePtr)
			var fixed [bp.BackpointerBytes]byte
			v.Encode(fixed[:], true)
			if fixed == *want {
				return report.LeftoverECFlags137
			}
		}
	}
	return ""
}

// oldLayout reports whether a stored backpointer (at offset off, value
// val) of a format B filesystem with the format A shift keeps the format
// A value layout (bp.OldLayoutB).
func (s *Shard) oldLayout(dev uint32, off uint64, val *[bp.BackpointerBytes]byte) bool {
	if !s.cfg.FormatB || s.cfg.Shift != bp.ShiftA {
		return false
	}
	bs, ok := s.cfg.BucketSize(uint64(dev))
	if !ok || bs == 0 {
		return false
	}
	start := (off >> bp.ShiftA) / uint64(bs) * uint64(bs) << bp.ShiftA
	return bp.OldLayoutB(val[:], off-start)
}

func (s *Shard) ptrFinding(code string, r *Ref, detail string) report.Finding {
	v := r.BP(s.cfg.FormatB)
	return report.Finding{
		Code: code, Dev: r.Bucket.Dev(), Bucket: r.Bucket.Bucket(),
		BP: r.BPPos(), HasBP: r.NeedsBP,
		Btree: s.cfg.BtreeName(v.BtreeID), Level: int(v.Level), Pos: v.Pos,
		KeyType: r.KeyType.String(), Detail: detail,
	}
}

// dropLost removes the pointer findings that only follow from lost
// nodes: missing backpointers whose backpointer leaf was unreadable,
// missing alloc keys whose alloc leaf was unreadable.
func (s *Shard) dropLost(lost *Lost) {
	out := s.findings[:0]
	for _, f := range s.findings {
		k := MakeBucketKey(uint64(f.Dev), f.Bucket)
		switch {
		case f.Code == report.PtrToMissingBackpointer && lost.bpLost(f.BP):
			continue
		case f.Code == report.PtrToMissingAllocKey && lost.allocLost(k):
			continue
		}
		out = append(out, f)
	}
	s.findings = out
}

// finishStripeBlocks compares the sector count each stripe key records for
// a block with the sectors of the erasure-coded pointers into the block's
// bucket (bch2_gc_write_stripes_key). A bucket holding blocks of several
// stripes cannot be apportioned and is not judged.
func (s *Shard) finishStripeBlocks(lost *Lost) {
	if lost.stripesLost() {
		return // the stripe keys of some blocks were not read
	}
	keys := make([]BucketKey, 0, len(s.ec))
	for k := range s.ec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		sb := s.ec[k]
		if sb.blocks != 1 || sb.recorded == 0 || lost.allocLost(k) {
			continue
		}
		if b := s.bucket(k); b.incomplete {
			continue
		}
		if got := uint64(sb.recorded - 1); got != sb.ecSectors {
			s.findings = append(s.findings, report.Finding{Code: report.StripeSectorCountWrong, Dev: k.Dev(), Bucket: k.Bucket(),
				Btree: s.cfg.BtreeName(bp.BtreeStripes), Pos: sb.stripe, KeyType: bp.KeyStripe.String(),
				Got: fmt.Sprint(got), Want: fmt.Sprint(sb.ecSectors),
				Detail: fmt.Sprintf("stripe block %d has wrong sector count", sb.block)})
		}
	}
}

// allocDataType is the data type a bucket should have (alloc_data_type).
func allocDataType(a *bp.AllocV4, multipleSticky bool, stripes uint32, dirty, cached, stripe uint64, hint bp.DataType) bp.DataType {
	switch {
	case multipleSticky && a.DataType == bp.DataMultiple:
		return bp.DataMultiple
	case stripes != 0:
		if hint == bp.DataParity {
			return hint
		}
		return bp.DataStripe
	case dirty+stripe != 0:
		if hint == bp.DataCached || hint == bp.DataStripe {
			return bp.DataUser
		}
		return hint
	case cached != 0:
		return bp.DataCached
	case a.NeedDiscard():
		return bp.DataNeedDiscard
	case a.Gen-a.OldestGen >= 96:
		return bp.DataNeedGCGens
	}
	return bp.DataFree
}

// Finish ends the shard's work: backpointers no pointer claimed become
// findings, and every bucket's alloc key is compared with the sums of its
// pointers. It returns all findings of the shard.
//
// lost lists what read errors hid in this pass; findings that only follow
// from the loss are left out (see Lost). It may be nil.
func (s *Shard) Finish(lost *Lost) []report.Finding {
	cfg := s.cfg
	if !s.indexed { // no record came: the loaded keys are still to be sorted
		s.indexBuckets()
	}
	s.resolveMismatches()
	if !lost.Empty() {
		s.dropLost(lost)
	}
	// Backpointers per device, counted by runs; the unmatched ones
	// found 64 at a time in the bitmap.
	s.devCounts = map[uint32]int{}
	for r := range s.devRuns {
		if n := s.runEnd(r) - s.devRuns[r].start; n > 0 {
			s.devCounts[s.devRuns[r].dev] += n
		}
	}
	for i := range s.bpDig { // Digest mode: none in s.bps
		s.devCounts[uint32(s.bpDig[i].key.Dev())] += int(s.bpDig[i].n)
	}

	for i := 0; i < len(s.bps); i++ {
		if w := i >> 6; i&63 == 0 && w < len(s.matched) && s.matched[w] == ^uint64(0) {
			i += 63
			continue
		}
		if s.isMatched(i) {
			continue
		}
		e := &s.bps[i]
		dev := s.devAt(i)
		pos := bp.Pos{Inode: uint64(dev), Offset: e.Off}
		got := s.value(i, dev)
		v, _ := bp.DecodeBackpointer(got[:], cfg.FormatB)
		bs, _ := cfg.BucketSize(uint64(dev))
		k := MakeBucketKey(uint64(dev), (e.Off>>cfg.Shift)/uint64(bs))
		if lost.ownerLost(&v) {
			s.bucket(k).incomplete = true
			if s.mode == Recheck {
				s.incompleteKeys = append(s.incompleteKeys, k)
			}
			continue
		}
		f := report.Finding{Dev: k.Dev(), Bucket: k.Bucket(), BP: pos, HasBP: true,
			Btree: cfg.BtreeName(v.BtreeID), Level: int(v.Level), Pos: v.Pos, Got: cfg.Describe(pos, got[:])}
		b := s.bucket(k)
		if !b.hasAlloc && !b.hasRefs {
			f.Code = report.BackpointerToMissingAlloc
			f.Detail = fmt.Sprintf("backpointer for nonexistent alloc key %d:%d", k.Dev(), k.Bucket())
		} else {
			f.Code = report.BackpointerToMissingPtr
			if v.Level == 0 {
				f.Detail = "backpointer doesn't match extent it points to"
			} else {
				f.Detail = "backpointer doesn't match btree node it points to"
			}
		}
		if kind := s.leftovers[i]; kind != "" {
			// The half a pointer found with a leftover value; one no
			// pointer claims is an orphan, whatever its layout.
			report.MarkLeftover(&f, kind)
		}
		s.findings = append(s.findings, f)
	}
	if s.mode == Recheck {
		// The sums and stripe blocks were judged by the Digest pass.
		return s.findings
	}
	stripesLost := lost.stripesLost()
	for i := range s.buckets {
		b := &s.buckets[i]
		dev, bucket := uint64(b.key.Dev()), b.key.Bucket()
		if !cfg.ValidBucket(dev, bucket) || b.incomplete || lost.allocLost(b.key) {
			continue
		}
		if !b.hasAlloc && !b.hasRefs {
			continue
		}
		if stripesLost && (b.stripes > 0 || b.a.StripeRefcount != 0 || b.a.DataType == bp.DataStripe || b.a.DataType == bp.DataParity) {
			continue // its stripe references may sit in the lost nodes
		}
		want := allocDataType(&b.a, cfg.MultipleSticky, b.stripes, b.dirty, b.cached, b.stripe, b.hint)
		gen := b.a.Gen
		add := func(code, field string, got, should string) {
			s.findings = append(s.findings, report.Finding{Code: code, Dev: int(dev), Bucket: bucket, Got: got, Want: should,
				Detail: fmt.Sprintf("gen %d data type %s has wrong %s", gen, want, field)})
		}
		if b.a.DataType != want {
			s.findings = append(s.findings, report.Finding{Code: report.AllocKeyDataTypeWrong, Dev: int(dev), Bucket: bucket,
				Got: b.a.DataType.String(), Want: want.String(),
				Detail: fmt.Sprintf("gen %d has wrong data_type", gen)})
		}
		if uint64(b.a.DirtySectors) != b.dirty {
			add(report.AllocKeyDirtySectorsWrong, "dirty_sectors", fmt.Sprint(b.a.DirtySectors), fmt.Sprint(b.dirty))
		}
		if cfg.CheckStripe && uint64(b.a.StripeSectors) != b.stripe {
			add(report.AllocKeyStripeSectorsWrong, "stripe_sectors", fmt.Sprint(b.a.StripeSectors), fmt.Sprint(b.stripe))
		}
		if cfg.CheckCached && uint64(b.a.CachedSectors) != b.cached {
			add(report.AllocKeyCachedSectorsWrong, "cached_sectors", fmt.Sprint(b.a.CachedSectors), fmt.Sprint(b.cached))
		}
		if cfg.CheckStripeRefcount && b.a.StripeRefcount != b.stripes {
			add(report.AllocKeyStripeWrong, "stripe_refcount", fmt.Sprint(b.a.StripeRefcount), fmt.Sprint(b.stripes))
		}
	}
	s.finishStripeBlocks(lost)
	return s.findings
}
