package gen

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"sort"

	"bpcheck/bp"
	"bpcheck/report"
)

// Erasure coding (Params.ECStripes): after the other extents, every
// device's open data bucket is closed and each stripe takes one fresh
// bucket on every device: nr_data = devices-1 data blocks and one parity
// block, the parity on device (idx-1) mod devices, data block b on the
// b-th device after it. The data blocks are filled, block after block,
// with the extents of new files (one pointer each, behind a stripe_ptr
// entry, as bch2_extent_ptr_decoded_append orders them); parity blocks
// hold no extents. What the v1.36.1 triggers make of this is written with
// it: alloc keys (data blocks: data type stripe, stripe_sectors = the
// extents' sectors, stripe_refcount 1; parity: data type parity,
// dirty_sectors = the stripe's sectors, stripe_refcount 1), the
// backpointers of the extents (data type stripe) and of every stripe
// block (btree stripes, at the block's last bp position, bucket_len 0),
// the stripe keys with their block sector counts, the bucket_to_stripe
// bits and the accounting (replicas with nr_required = nr_data, per
// device stripe and parity buckets).

const (
	// btreeBucketToStripe is the bucket_to_stripe btree's id.
	btreeBucketToStripe bp.BtreeID = 26
	// inodeOptErasureCode is Inode_opt_erasure_code, the bit of
	// bi_fields_set for an erasure_code option set on the inode.
	inodeOptErasureCode = 8
	// inodeOptDataReplicas is Inode_opt_data_replicas.
	inodeOptDataReplicas = 4
	// maxECDevices is BCH_BKEY_PTRS_MAX: a stripe has at most 16 blocks.
	maxECDevices = 16
)

// ecStripe is one stripe as its key records it.
type ecStripe struct {
	idx    uint64
	ptrs   []bp.Ptr
	counts []uint16 // sectors of extents per block (0 for parity)
}

// ecState is the erasure-coding part of a generator.
type ecState struct {
	nData   int
	r       *rng
	faults  map[int]string // block number (stripe·devices + block) → fault kind
	stripes []ecStripe
	// userSectors sums the erasure-coded extents' sectors.
	userSectors uint64
	// lru holds the fragmentation lru entries of partly filled data
	// buckets closed when the stripes began.
	lru []tailKey
	// the open erasure-coded file
	ino  uint64
	off  uint64
	left uint64
}

// ecKinds are the faults placed in stripes.
var ecKinds = []string{KindWrongStripeSectors, KindWrongParitySectors, KindMissingStripeBP, KindWrongStripeBlockCount}

// maxECExtents bounds the erasure-coded extents (hence files): every
// extent of a block but its last holds at least ExtentMin sectors.
func maxECExtents(p *Params) uint64 {
	if p.ECStripes <= 0 || p.Devices < 2 || p.BucketSize <= 0 {
		return 0
	}
	bs := uint64(p.BucketSize) / sectorSize
	lo := max(roundUp(uint64(p.ExtentMin), blockSectors), blockSectors)
	return uint64(p.ECStripes) * uint64(p.Devices-1) * (bs/lo + 1)
}

// newECState schedules the stripe faults: each kind's blocks are drawn at
// random among the blocks that suit it and no other fault took.
func newECState(p *Params) (*ecState, error) {
	nd := p.Devices
	ec := &ecState{nData: nd - 1, r: newRNG(p.Seed, 4), faults: map[int]string{}}
	fr := newRNG(p.Seed, 5)
	for _, k := range ecKinds {
		var free []int
		for blk := 0; blk < p.ECStripes*nd; blk++ {
			b := blk % nd
			if ec.faults[blk] != "" {
				continue
			}
			switch k {
			case KindWrongStripeSectors, KindWrongStripeBlockCount:
				if b >= ec.nData {
					continue
				}
			case KindWrongParitySectors:
				if b < ec.nData {
					continue
				}
			}
			free = append(free, blk)
		}
		c := p.Inject[k]
		if c > len(free) {
			return nil, fmt.Errorf("%d %s faults asked for, but only %d stripe blocks suit them (use more stripes)", c, k, len(free))
		}
		for i := 0; i < c; i++ {
			j := i + int(fr.intn(uint64(len(free)-i)))
			free[i], free[j] = free[j], free[i]
			ec.faults[free[i]] = k
		}
	}
	return ec, nil
}

// closeForStripes closes d's open data bucket, writing its alloc key and
// (when partly filled) its fragmentation lru entry.
func (g *generator) closeForStripes(d *device) error {
	if !d.dataOpen {
		return nil
	}
	dirty := g.dataBucketDirty(d)
	if err := g.closeDataBucket(d); err != nil {
		return err
	}
	if dirty > 0 && dirty < d.bucketSectors {
		g.ec.lru = append(g.ec.lru, tailKey{pos: g.fragLRUPos(d, d.dataBucket, dirty)})
	}
	d.dataOpen = false
	d.dataBucket++
	return nil
}

// takeBucket hands out d's next bucket for a stripe block.
func (g *generator) takeBucket(d *device) (uint64, error) {
	b := d.dataBucket
	if b >= d.nodes.lowest(d) || b >= d.nodeTop {
		return 0, fmt.Errorf("%w: device %d is full at bucket %d (stripes)", ErrDeviceFull, d.idx, b)
	}
	d.dataBucket++
	return b, nil
}

// ecAllocVal is the alloc_v4 value of a stripe block's bucket of stripe
// idx: a stripe refcount of 1, or before 1.35 the stripe's index and
// redundancy (1).
func (g *generator) ecAllocVal(idx uint64, dt bp.DataType, dirty, stripeSectors, jseq, wtime uint64) []byte {
	a := bp.AllocV4{JournalSeqNonempty: jseq, Flags: bp.AllocFlags(true, true, 8), DataType: dt,
		DirtySectors: uint32(dirty), StripeSectors: uint32(stripeSectors), StripeRefcount: 1, IOTime: [2]uint64{1, wtime}}
	if g.f.allocStripeIdx {
		a.StripeRefcount, a.StripeRedundancy = uint32(idx), 1
	}
	var v [bp.AllocV4Bytes]byte
	a.Put(v[:])
	return v[:]
}

// stripeBP is the backpointer of block b of stripe st (bucket of ptr).
func (g *generator) stripeBP(st *ecStripe, b, nData int, sectors uint64) (bp.Pos, bp.Backpointer) {
	p := st.ptrs[b]
	dt := bp.DataUser
	if b >= nData {
		dt = bp.DataParity
	}
	return bp.Pos{Inode: uint64(p.Dev), Offset: (p.Offset+sectors)<<g.f.shift - 1},
		bp.Backpointer{BtreeID: bp.BtreeStripes, DataType: dt, Pos: stripePos(st.idx)}
}

func stripePos(idx uint64) bp.Pos { return bp.Pos{Offset: idx} }

// addStripes writes the stripes and their extents.
func (g *generator) addStripes() error {
	p := &g.p
	ec := g.ec
	nd := len(g.devs)
	for _, d := range g.devs {
		if err := g.closeForStripes(d); err != nil {
			return err
		}
	}
	nSizes, minSize := g.src.nSizes, g.src.minSize
	for s := 0; s < p.ECStripes; s++ {
		st := ecStripe{idx: uint64(s + 1), ptrs: make([]bp.Ptr, nd), counts: make([]uint16, nd)}
		par := s % nd
		for b := 0; b < nd; b++ {
			d := g.devs[(par+1+b)%nd]
			bucket, err := g.takeBucket(d)
			if err != nil {
				return err
			}
			st.ptrs[b] = bp.Ptr{Offset: bucket * d.bucketSectors, Dev: uint8(d.idx)}
			fault := ec.faults[s*nd+b]
			bs := d.bucketSectors
			var stored uint64
			dt := bp.DataParity
			if b < ec.nData {
				// Fill the data block with extents.
				used := uint64(0)
				for used < bs {
					if ec.left == 0 {
						ec.ino = g.src.newInode()
						ec.off = 0
						ec.left = fileLen(p, ec.r)
					}
					size := min(minSize+blockSectors*ec.r.intn(nSizes), bs-used)
					if err := g.addECExtent(&st, b, st.ptrs[b].Offset+used, uint32(size)); err != nil {
						return err
					}
					used += size
				}
				st.counts[b] = uint16(used)
				if fault == KindWrongStripeBlockCount {
					st.counts[b] = uint16(wrongBy(used))
					sp := stripePos(st.idx)
					g.findings = append(g.findings, g.finding(report.StripeSectorCountWrong, d.idx, bucket, nil, bp.BtreeStripes, 0, &sp,
						fmt.Sprintf("stripe block %d has wrong sector count", b)))
				}
				stored = used
				dt = bp.DataStripe
				if fault == KindWrongStripeSectors {
					stored = wrongBy(used)
					g.findings = append(g.findings, g.finding(report.AllocKeyStripeSectorsWrong, d.idx, bucket, nil, 0, 0, nil,
						fmt.Sprintf("stripe_sectors %d, want %d", stored, used)))
				}
				d.stripeBuckets++
				d.stripeSectors += used
			} else {
				stored = bs
				if fault == KindWrongParitySectors {
					stored = wrongBy(bs)
					g.findings = append(g.findings, g.finding(report.AllocKeyDirtySectorsWrong, d.idx, bucket, nil, 0, 0, nil,
						fmt.Sprintf("dirty_sectors %d, want %d", stored, bs)))
				}
				d.parityBuckets++
			}
			pos, v := g.stripeBP(&st, b, ec.nData, bs)
			if fault == KindMissingStripeBP {
				sp := stripePos(st.idx)
				g.findings = append(g.findings, g.finding(report.PtrToMissingBackpointer, d.idx, bucket, &pos, bp.BtreeStripes, 0, &sp,
					"stripe block backpointer dropped"))
			} else if err := g.bps[d.idx].add(pos, 0, bp.KeyBackpointer, g.bpVal(&v)); err != nil {
				return err
			}
			if fault != "" {
				g.injected[fault]++
			}
			var val []byte
			if dt == bp.DataStripe {
				val = g.ecAllocVal(st.idx, dt, 0, stored, g.journalSeq, g.src.clock)
			} else {
				val = g.ecAllocVal(st.idx, dt, stored, 0, g.journalSeq, g.src.clock)
			}
			if err := g.alloc[d.idx].add(bp.Pos{Inode: uint64(d.idx), Offset: bucket}, 0, bp.KeyAllocV4, val); err != nil {
				return err
			}
		}
		ec.stripes = append(ec.stripes, st)
	}
	if len(ec.stripes) > 0 {
		// bch2_bkey_to_replicas of a stripe: every device, nr_required
		// the data blocks; parity for the stripe, user for its extents.
		devs := make([]uint8, nd)
		for i := range devs {
			devs[i] = uint8(i)
		}
		g.noteReplicasReq(bp.DataParity, devs, uint8(ec.nData))
		if ec.userSectors > 0 {
			g.noteReplicasReq(bp.DataUser, devs, uint8(ec.nData))
		}
	}
	if ec.left > 0 {
		ec.left = 0
		return g.fileDone(ec.ino, ec.off)
	}
	return nil
}

// wrongBy is a sector count one block off (never 0).
func wrongBy(v uint64) uint64 {
	if v > blockSectors {
		return v - blockSectors
	}
	return v + blockSectors
}

// addECExtent writes the next extent of the open erasure-coded file: size
// sectors at off in block b of stripe st.
func (g *generator) addECExtent(st *ecStripe, b int, off uint64, size uint32) error {
	ec := g.ec
	dev := st.ptrs[b].Dev
	ec.off += uint64(size)
	ec.left--
	pos := bp.Pos{Inode: ec.ino, Offset: ec.off, Snapshot: math.MaxUint32}
	var ver uint64
	var err error
	if g.scratch, ver, err = g.appendDataCRC(g.scratch[:0], size, false); err != nil {
		return err
	}
	g.scratch = appendU64(g.scratch, stripePtrEntry(uint8(b), 1, st.idx))
	g.scratch = appendU64(g.scratch, bp.Ptr{Offset: off, Dev: dev}.Encode())
	g.snapKeys[0].add(len(g.scratch))
	if err := g.ext.addVer(pos, size, ver, bp.KeyExtent, g.scratch); err != nil {
		return err
	}
	g.extents++
	if ec.off == uint64(size) {
		g.inodes++
	}
	ec.userSectors += uint64(size)
	g.src.clock += uint64(size)
	bpPos := bp.Pos{Inode: uint64(dev), Offset: off << g.f.shift}
	v := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataStripe, BucketLen: size, Pos: pos}
	if g.f.ecBPFlags {
		v.Flags |= bp.BPFlagErasureCoded
	}
	if err := g.bps[dev].add(bpPos, 0, bp.KeyBackpointer, g.bpVal(&v)); err != nil {
		return err
	}
	if ec.left == 0 {
		return g.fileDone(ec.ino, ec.off)
	}
	return nil
}

// stripePtrEntry is a bch_extent_stripe_ptr entry: type bit 4, block,
// redundancy, stripe index.
func stripePtrEntry(block, redundancy uint8, idx uint64) uint64 {
	return 1<<bp.EntryStripePtr | uint64(block)<<5 | uint64(redundancy&0xf)<<13 | idx<<17
}

// stripeVal is the value of a stripe key (data/ec/format.h): sectors,
// algorithm 0, blocks, redundancy 1, csum granularity, csum type none (so
// no checksums), no disk label, the block pointers, then a u16 sector
// count per block, padded to whole u64s (stripe_val_u64s).
func stripeVal(st *ecStripe, sectors uint64, csumGranBits uint8) []byte {
	nb := len(st.ptrs)
	n := 8 + 8*nb + 2*nb
	v := make([]byte, (n+7)/8*8)
	binary.LittleEndian.PutUint16(v[0:], uint16(sectors))
	v[3] = byte(nb)
	v[4] = 1
	v[5] = csumGranBits
	for i, p := range st.ptrs {
		binary.LittleEndian.PutUint64(v[8+8*i:], p.Encode())
	}
	for i, c := range st.counts {
		binary.LittleEndian.PutUint16(v[8+8*nb+2*i:], c)
	}
	return v
}

// csumGranBits is csum_granularity_bits as ec_stripe_key_init sets it:
// ilog2(encoded_extent_max >> 9).
func (g *generator) csumGranBits() uint8 {
	return uint8(bits.Len64(uint64(g.f.encodedExtMax)>>9) - 1)
}

// stripeKeys are the stripes btree's keys.
func (g *generator) stripeKeys() []tailKey {
	var keys []tailKey
	for i := range g.ec.stripes {
		st := &g.ec.stripes[i]
		bs := g.devs[st.ptrs[0].Dev].bucketSectors
		keys = append(keys, tailKey{pos: stripePos(st.idx), typ: bp.KeyStripe, val: stripeVal(st, bs, g.csumGranBits())})
	}
	return keys
}

// bucketToStripeKeys are the bucket_to_stripe btree's keys: a set bit at
// (bucket_to_u64(bucket), stripe idx) for every stripe block.
func (g *generator) bucketToStripeKeys() []tailKey {
	var keys []tailKey
	for i := range g.ec.stripes {
		st := &g.ec.stripes[i]
		for _, p := range st.ptrs {
			b := p.Offset / g.devs[p.Dev].bucketSectors
			keys = append(keys, tailKey{pos: bp.Pos{Inode: uint64(p.Dev)<<48 | b, Offset: st.idx}})
		}
	}
	sortTailKeys(keys)
	return keys
}

func sortTailKeys(keys []tailKey) {
	sort.Slice(keys, func(a, b int) bool { return keys[a].pos.Less(keys[b].pos) })
}
