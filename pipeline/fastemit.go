package pipeline

import (
	"encoding/binary"

	"bpcheck/bp"
	"bpcheck/shard"
)

// fastPtrsMax is the most pointers of one extent the fast path takes (an
// extent has one per replica); more go the general way.
const fastPtrsMax = 4

// fastPtr is a pointer word of an extent with the fields of the crc entry
// before it that its backpointer needs.
type fastPtr struct {
	w                uint64
	crcOffset        uint32
	compressedSize   uint32
	uncompressedSize uint32
	compressed       bool
	compression      uint8 // the crc's compression type (accounting)
	bucket           shard.BucketKey
	// bucketSize is the member's bucket size in sectors (format A's
	// backpointers hold the pointer's offset within its bucket).
	bucketSize uint16
}

// emitExtentFast emits the records of a data extent (extent or reflink_v
// at level 0) in one walk of its entries: the pointers, the crc fields
// their backpointers need and (format B) the RECONCILE_PHYS work id are
// taken as the entries go by, and records are written straight into the
// batches. Format A backpointers carry the offset within the bucket and
// say user for a cached pointer where format B has gen, flags and cached
// (bp.Geometry.ExpectedBPInto). It does what emitKeyPtrs does for such a
// value, record for record (FuzzFastEmit compares the two). Anything
// else (stripe pointers, pointers to device 255 or to a device that is
// not a member, more than fastPtrsMax pointers, a malformed value) makes
// it return false before anything is emitted or counted, and emitKeyPtrs
// takes the key.
func (e *emitter) emitExtentFast(btree bp.BtreeID, k *bp.Key, entries []byte) (ok bool, err error) {
	c := e.c
	ptrs := &e.fast // every field a pointer uses is written below
	n := 0
	// The crc of the pointers that follow: implicit until a crc entry.
	var crcOffset uint32
	csize, usize := k.Size, k.Size
	compressed := false
	var compression uint8
	reconcile, seenReconcile := uint32(0), false
	sb := c.fs.SB
	extra := sb.ExtentTypeU64s
	for rest := entries; len(rest) > 0; {
		if len(rest) < 8 {
			return false, nil
		}
		w := binary.LittleEndian.Uint64(rest)
		if w == 0 {
			return false, nil
		}
		t, words := bp.EntrySize(w, extra)
		size := uint(words) * 8 // unsigned: fewer checks in the compiled loop
		if size == 0 || size > uint(len(rest)) {
			return false, nil
		}
		switch t {
		case bp.EntryPtr:
			if n == fastPtrsMax {
				return false, nil
			}
			// Field by field: a composite literal is built on the
			// stack and copied with wide loads that stall on the
			// narrow stores that built it.
			// Every pointer must be one the fast path can take before
			// any is emitted: a pointer to device 255 or to a device
			// that is not a member goes the general way.
			dev := uint8(w >> 48)
			m := sb.Member(dev)
			if m == nil {
				return false, nil
			}
			p := &ptrs[n]
			p.w = w
			p.crcOffset = crcOffset
			p.compressedSize = csize
			p.uncompressedSize = usize
			p.compressed = compressed
			p.compression = compression
			p.bucket = shard.MakeBucketKey(uint64(dev), m.BucketOf(w>>4&(1<<44-1)))
			p.bucketSize = m.BucketSize
			n++
		case bp.EntryCRC32, bp.EntryCRC64, bp.EntryCRC128:
			csize, usize, crcOffset, compression = bp.CRCSizes(t, w)
			compressed = bp.Compressed(compression)
		case bp.EntryStripePtr:
			return false, nil
		case bp.EntryReconcile:
			if !seenReconcile { // bp.ReconcilePhys: the first one decides
				seenReconcile = true
				reconcile = bp.ReconcileWork(w)
			}
		}
		rest = rest[size:]
	}
	if !c.anyRotational || !c.formatB {
		reconcile = 0
	}
	if e.count {
		e.stats.Keys++
		e.stats.Extents++
	}
	cachedNeedBP := sb.Version >= bp.VersionCachedBackpointers
	// The replicas entry of the extent (first pass): its dirty pointers'
	// devices and sectors.
	var devs [fastPtrsMax]uint8
	nd := 0
	var acctSectors int64
	var comp compRun // compression runs
	for i := range ptrs[:n] {
		p := &ptrs[i]
		dev := uint8(p.w >> 48)
		cached := p.w>>1&1 != 0
		bucketLen := k.Size
		if p.compressed && p.uncompressedSize != 0 {
			bucketLen = uint32((uint64(k.Size)*uint64(p.compressedSize) + uint64(p.uncompressedSize) - 1) / uint64(p.uncompressedSize))
		}
		if e.count {
			e.stats.Pointers++
			e.stats.PerDev[dev].Pointers++
			if p.compression != 0 || comp.compCur != 0 {
				e.acct.compPtr(&comp, p.compression, p.uncompressedSize, p.compressedSize)
			}
			if cached {
				e.acct.cached = true
			} else {
				devs[nd] = dev
				nd++
				acctSectors += int64(bucketLen)
			}
		}
		si, r := e.slot(p.bucket)
		if r == nil {
			continue // another pass's buckets
		}
		offset := p.w >> 4 & (1<<44 - 1)
		gen := uint8(p.w >> 56)
		dataType := bp.DataUser
		if cached {
			dataType = bp.DataCached
		}
		r.Kind = shard.RefPtr
		r.KeyType = k.Type
		r.NeedsBP = !cached || cachedNeedBP
		r.Cached = cached
		r.Gen = gen
		r.DataType = dataType
		r.StripeBlock = 0
		r.Sectors = bucketLen
		r.StripeCount = 0
		r.Bucket = p.bucket
		r.BPOff = offset<<c.shift + uint64(p.crcOffset)
		if c.formatB {
			var flags uint32
			if c.rotational[dev] {
				flags = reconcile & bp.BPFlagReconcileMask
			}
			bp.EncodeBackpointerB(r.BPVal[:], btree, 0, dataType, gen, flags, bucketLen, &k.Pos)
		} else {
			var inBucket uint64
			if bs := uint64(p.bucketSize); bs&(bs-1) == 0 {
				inBucket = offset & (bs - 1) // bs 0: 0, as below
			} else {
				inBucket = offset % bs
			}
			bp.EncodeBackpointerA(r.BPVal[:], btree, 0, bp.DataUser, inBucket<<bp.ShiftA+uint64(p.crcOffset), bucketLen, &k.Pos)
		}
		if err := e.commit(si); err != nil {
			return true, err
		}
	}
	if e.count {
		if comp.compCur != 0 {
			e.acct.compFlush(&comp)
		}
		// The common case inline: one dirty pointer, in the run of the
		// previous extent (acctExtent).
		sig := runSigOne | uint64(devs[0])<<24
		if r := &e.runs[runSlot(sig)]; nd == 1 && r.sig == sig && e.runSnap == k.Pos.Snapshot&e.runSnapMask && (k.Type == bp.KeyExtent || !e.runSnapKeys) {
			r.sectors += acctSectors
		} else {
			e.acctExtent(k, devs[:nd], acctSectors)
		}
	}
	return true, nil
}

// runSigOne is the replicas signature (acctSums.key) of user data on one
// device, needing it, without the device.
const runSigOne = uint64(bp.DataUser) | 1<<8 | 1<<16

// runSlots is how many runs (replicas entries) of one snapshot the
// emitter sums at once, direct-mapped by their signature (runSlot):
// where the data is spread over several devices, consecutive extents
// take turns between entries.
const (
	runSlotBits = 5
	runSlots    = 1 << runSlotBits
)

// runSlot is the emitter's run for replicas signature sig.
func runSlot(sig uint64) int { return int(sig * 0x9e3779b97f4a7c15 >> (64 - runSlotBits)) }

// acctRun is the sectors of the extents of one replicas entry (sig, as
// acctSums.key packs it; 0: none) not yet added to acctSums.
type acctRun struct {
	sig     uint64
	sectors int64
}

// acctExtent accounts the dirty pointers of a fast-path extent: devs (up
// to fastPtrsMax) and their sectors. Extents are summed in the emitter's
// runs, one per replicas entry (in its slot, runSlot; and where the era
// counts per snapshot, up to 1.31 and from 1.39 the sectors of the
// extents btree's keys, of one snapshot), which reach acctSums.key once
// each, when another entry takes the slot or at the end (flushAcctRun):
// a word added per extent instead of a call. From 1.39 a key that is not
// an extent (reflink_v) goes to key, which counts its snapshot
// differently.
func (e *emitter) acctExtent(k *bp.Key, devs []uint8, sectors int64) {
	n := len(devs)
	if n == 0 {
		return
	}
	if e.runSnapKeys && k.Type != bp.KeyExtent {
		e.flushAcctRun()
		e.acct.key(0, k, devs, sectors, 1)
		return
	}
	for i := 1; i < n; i++ { // as key sorts them
		for j := i; j > 0 && devs[j] < devs[j-1]; j-- {
			devs[j], devs[j-1] = devs[j-1], devs[j]
		}
	}
	sig := uint64(bp.DataUser) | 1<<8 | uint64(n)<<16
	for i, d := range devs {
		sig |= uint64(d) << (24 + 8*i)
	}
	snap := k.Pos.Snapshot & e.runSnapMask
	if e.nRuns > 0 && snap != e.runSnap {
		e.flushAcctRun()
	}
	e.runSnap = snap
	switch r := &e.runs[runSlot(sig)]; r.sig {
	case sig:
		r.sectors += sectors
	case 0:
		*r = acctRun{sig: sig, sectors: sectors}
		e.nRuns++
	default:
		e.flushRun(r)
		*r = acctRun{sig: sig, sectors: sectors}
	}
}

// flushRun hands run r to acctSums.key and leaves r's slot empty (the
// count of runs as it was: the caller fills the slot again).
func (e *emitter) flushRun(r *acctRun) {
	n := int(r.sig >> 16 & 0xff)
	var devs [fastPtrsMax]uint8
	for j := range devs[:n] {
		devs[j] = uint8(r.sig >> (24 + 8*j))
	}
	k := bp.Key{Type: bp.KeyExtent, Pos: bp.Pos{Snapshot: e.runSnap}}
	e.acct.key(0, &k, devs[:n], r.sectors, 1)
	*r = acctRun{}
}

// flushAcctRun hands the runs of extents that acctExtent summed to
// acctSums.key. Producers flush before their sums are merged.
func (e *emitter) flushAcctRun() {
	if e.nRuns > 0 {
		for i := range e.runs {
			if e.runs[i].sig != 0 {
				e.flushRun(&e.runs[i])
			}
		}
	}
	e.nRuns, e.runSnap = 0, 0
}
