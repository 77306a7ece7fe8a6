package bp

import (
	"encoding/binary"
	"fmt"
)

// BtreePtrV2Bytes is the size of the btree_ptr_v2 value header.
const BtreePtrV2Bytes = 40

// BtreePtrV2 is the header of a btree_ptr_v2 value.
type BtreePtrV2 struct {
	MemPtr         uint64
	Seq            uint64
	SectorsWritten uint16
	Flags          uint16
	MinKey         Pos
}

// BtreePtrRangeUpdated is the btree_ptr_v2 flag RANGE_UPDATED.
const BtreePtrRangeUpdated = 1

// DecodeBtreePtrV2 decodes a btree_ptr_v2 value header.
func DecodeBtreePtrV2(val []byte) (BtreePtrV2, error) {
	if len(val) < BtreePtrV2Bytes {
		return BtreePtrV2{}, fmt.Errorf("%w: btree_ptr_v2 value is %d bytes, below its %d-byte header", ErrKey, len(val), BtreePtrV2Bytes)
	}
	return BtreePtrV2{
		MemPtr:         binary.LittleEndian.Uint64(val[0:]),
		Seq:            binary.LittleEndian.Uint64(val[8:]),
		SectorsWritten: binary.LittleEndian.Uint16(val[16:]),
		Flags:          binary.LittleEndian.Uint16(val[18:]),
		MinKey:         DecodePos(val[20:]),
	}, nil
}

// AllocV4Bytes is the full size of an alloc_v4 value (BCH_ALLOC_V4_U64s).
const AllocV4Bytes = 64

// AllocV4 is a decoded alloc_v4 value. Field names follow format B; the
// format A names are in the comments.
type AllocV4 struct {
	JournalSeqNonempty uint64 // A: journal_seq
	Flags              uint32
	Gen                uint8
	OldestGen          uint8
	DataType           DataType
	StripeRedundancy   uint8 // B: stripe_redundancy_obsolete
	DirtySectors       uint32
	CachedSectors      uint32
	IOTime             [2]uint64
	StripeRefcount     uint32 // A: stripe (stripe index)
	NrExternalBPs      uint32
	JournalSeqEmpty    uint64 // A: fragmentation_lru
	StripeSectors      uint32
}

// Alloc flag accessors.
func (a *AllocV4) NeedDiscard() bool { return a.Flags&1 != 0 }

// NeedIncGen reports the NEED_INC_GEN flag.
func (a *AllocV4) NeedIncGen() bool { return a.Flags&2 != 0 }

// BackpointersStart returns BACKPOINTERS_START in u64s.
func (a *AllocV4) BackpointersStart() uint32 { return a.Flags >> 2 & 0x3f }

// NrBackpointers returns NR_BACKPOINTERS (legacy embedded backpointers).
func (a *AllocV4) NrBackpointers() uint32 { return a.Flags >> 8 & 0x3f }

// DecodeAllocV4 decodes an alloc_v4 value following __bch2_alloc_to_v4:
// bytes at or beyond BACKPOINTERS_START*8 read as zero; a start of 0 means
// the old 6-u64 size.
func DecodeAllocV4(val []byte) (AllocV4, error) {
	var buf [AllocV4Bytes]byte
	if len(val) < 16 {
		return AllocV4{}, fmt.Errorf("%w: alloc_v4 value is %d bytes", ErrKey, len(val))
	}
	flags := binary.LittleEndian.Uint32(val[8:])
	start := int(flags>>2&0x3f) * 8
	if start == 0 {
		start = 48
	}
	n := copy(buf[:], val)
	if start < n {
		n = start
	}
	for i := n; i < AllocV4Bytes; i++ {
		buf[i] = 0
	}
	b := buf[:]
	return AllocV4{
		JournalSeqNonempty: binary.LittleEndian.Uint64(b[0:]),
		Flags:              flags,
		Gen:                b[12],
		OldestGen:          b[13],
		DataType:           DataType(b[14]),
		StripeRedundancy:   b[15],
		DirtySectors:       binary.LittleEndian.Uint32(b[16:]),
		CachedSectors:      binary.LittleEndian.Uint32(b[20:]),
		IOTime:             [2]uint64{binary.LittleEndian.Uint64(b[24:]), binary.LittleEndian.Uint64(b[32:])},
		StripeRefcount:     binary.LittleEndian.Uint32(b[40:]),
		NrExternalBPs:      binary.LittleEndian.Uint32(b[44:]),
		JournalSeqEmpty:    binary.LittleEndian.Uint64(b[48:]),
		StripeSectors:      binary.LittleEndian.Uint32(b[56:]),
	}, nil
}

// BackpointerBytes is the size of a backpointer value.
const BackpointerBytes = 32

// Backpointer is a decoded backpointer value in either layout. In format A
// BucketOffset holds the 40-bit bucket_offset and BucketGen/Flags are zero;
// in format B BucketOffset is zero.
type Backpointer struct {
	BtreeID      BtreeID
	Level        uint8
	DataType     DataType
	BucketOffset uint64 // A only
	BucketGen    uint8  // B only
	Flags        uint32 // B only
	BucketLen    uint32
	Pos          Pos
}

// Backpointer flag bits (format B).
const (
	BPFlagReconcileMask = 3
	BPFlagErasureCoded  = 1 << 2
	BPFlagStripePtr     = 1 << 3
)

// DecodeBackpointer decodes a backpointer value; formatB selects the
// layout (metadata version ≥ 1.14).
func DecodeBackpointer(val []byte, formatB bool) (Backpointer, error) {
	if len(val) < BackpointerBytes {
		return Backpointer{}, fmt.Errorf("%w: backpointer value is %d bytes, want %d", ErrKey, len(val), BackpointerBytes)
	}
	bp := Backpointer{
		BtreeID:   BtreeID(val[0]),
		Level:     val[1],
		DataType:  DataType(val[2]),
		BucketLen: binary.LittleEndian.Uint32(val[8:]),
		Pos:       DecodePos(val[12:]),
	}
	if formatB {
		bp.BucketGen = val[3]
		bp.Flags = binary.LittleEndian.Uint32(val[4:])
	} else {
		bp.BucketOffset = BackpointerBucketOffsetA(val)
	}
	return bp, nil
}

// BackpointerBucketOffsetA returns the 40-bit bucket_offset of a format A
// backpointer value of at least BackpointerBytes bytes (the field
// DecodeBackpointer reads as BucketOffset).
func BackpointerBucketOffsetA(val []byte) uint64 {
	return uint64(val[3]) | uint64(binary.LittleEndian.Uint32(val[4:]))<<8
}

// Encode writes bp in the chosen layout into b (BackpointerBytes bytes).
func (bp *Backpointer) Encode(b []byte, formatB bool) {
	if formatB {
		EncodeBackpointerB(b, bp.BtreeID, bp.Level, bp.DataType, bp.BucketGen, bp.Flags, bp.BucketLen, &bp.Pos)
		return
	}
	EncodeBackpointerA(b, bp.BtreeID, bp.Level, bp.DataType, bp.BucketOffset, bp.BucketLen, &bp.Pos)
}

// EncodeBackpointerA writes a format A backpointer value into b (at least
// BackpointerBytes bytes) from its fields: bytes 3..7 hold the 40-bit
// bucket_offset where format B keeps bucket_gen and flags.
func EncodeBackpointerA(b []byte, btree BtreeID, level uint8, dataType DataType, bucketOffset uint64, bucketLen uint32, pos *Pos) {
	_ = b[BackpointerBytes-1]
	b[0], b[1], b[2] = byte(btree), level, byte(dataType)
	b[3] = byte(bucketOffset)
	binary.LittleEndian.PutUint32(b[4:], uint32(bucketOffset>>8))
	binary.LittleEndian.PutUint32(b[8:], bucketLen)
	pos.Put(b[12:])
}

// EncodeBackpointerB writes a format B backpointer value into b (at least
// BackpointerBytes bytes) from its fields, for callers that have them
// at hand rather than in a Backpointer.
func EncodeBackpointerB(b []byte, btree BtreeID, level uint8, dataType DataType, gen uint8, flags, bucketLen uint32, pos *Pos) {
	_ = b[BackpointerBytes-1]
	b[0], b[1], b[2], b[3] = byte(btree), level, byte(dataType), gen
	binary.LittleEndian.PutUint32(b[4:], flags)
	binary.LittleEndian.PutUint32(b[8:], bucketLen)
	pos.Put(b[12:])
}

// StripeHeaderBytes is the size of a stripe value's fixed header.
const StripeHeaderBytes = 8

// Stripe is the header of a stripe value.
type Stripe struct {
	Sectors uint16
	// Algorithm is byte 2 as stored: the algorithm alone before 1.37;
	// from 1.37 algorithm:4 | needs_reconcile:1 | can_widen:3.
	Algorithm   uint8
	NrBlocks    uint8
	NrRedundant uint8
	CsumGranBit uint8
	CsumType    uint8
}

// NeedsReconcile reports the needs_reconcile bit of a 1.37+ stripe (bit 4
// of byte 2), which gives its blocks' backpointers on rotational members
// RECONCILE_PHYS hipri. Before 1.37 the byte is the algorithm (0, Reed-
// Solomon), so callers gate it by version.
func (s *Stripe) NeedsReconcile() bool { return s.Algorithm>>4&1 != 0 }

// DecodeStripe decodes a stripe value header and returns it with the bytes
// of its block pointers (8 each).
func DecodeStripe(val []byte) (Stripe, []byte, error) {
	if len(val) < StripeHeaderBytes {
		return Stripe{}, nil, fmt.Errorf("%w: stripe value is %d bytes", ErrKey, len(val))
	}
	s := Stripe{
		Sectors:     binary.LittleEndian.Uint16(val),
		Algorithm:   val[2],
		NrBlocks:    val[3],
		NrRedundant: val[4],
		CsumGranBit: val[5],
		CsumType:    val[6],
	}
	end := StripeHeaderBytes + 8*int(s.NrBlocks)
	if end > len(val) {
		return s, nil, fmt.Errorf("%w: stripe with %d blocks does not fit its %d-byte value", ErrKey, s.NrBlocks, len(val))
	}
	return s, val[StripeHeaderBytes:end], nil
}

// stripeCsumBytes is bch_crc_bytes: the size of one checksum of each
// checksum type.
var stripeCsumBytes = [...]int{0, 4, 8, 10, 16, 4, 8, 8}

// BlockCount returns the sector count the stripe value val records for
// block i (stripe_blockcount_get: a u16 per block after the pointers and
// the block checksums). ok is false when the checksum type is unknown (the
// counts cannot be found) or the value is too short.
func (s *Stripe) BlockCount(val []byte, i int) (count uint16, ok bool) {
	if int(s.CsumType) >= len(stripeCsumBytes) || s.CsumGranBit >= 64 || i < 0 || i >= int(s.NrBlocks) {
		return 0, false
	}
	perDev := (uint64(s.Sectors) + 1<<s.CsumGranBit - 1) >> s.CsumGranBit
	off := uint64(StripeHeaderBytes) + 8*uint64(s.NrBlocks) +
		uint64(s.NrBlocks)*perDev*uint64(stripeCsumBytes[s.CsumType]) + 2*uint64(i)
	if off+2 > uint64(len(val)) {
		return 0, false
	}
	return binary.LittleEndian.Uint16(val[off:]), true
}
