package bp

import (
	"encoding/binary"
	"math/bits"
)

// This file holds the encoders: the inverse of the decoders in key.go,
// extent.go and values.go, used by the synthetic filesystem generator.
// Each encoder writes exactly the bytes its decoder reads back.

// FormatState accumulates the range of every packed-key field over a set of
// keys and positions, to compute the bkey_format bcachefs would pick for a
// node holding them (bch2_bkey_format_init / _add_key / _add_pos / _done).
type FormatState struct {
	Min, Max [6]uint64
}

// NewFormatState returns an empty state. As in the kernel, the size field
// always includes 0.
func NewFormatState() FormatState {
	var s FormatState
	for i := range s.Min {
		s.Min[i] = ^uint64(0)
	}
	s.Min[FieldSize] = 0
	return s
}

func (s *FormatState) add(i int, v uint64) {
	if v < s.Min[i] {
		s.Min[i] = v
	}
	if v > s.Max[i] {
		s.Max[i] = v
	}
}

// AddPos widens the state to hold position p (inode, offset, snapshot).
func (s *FormatState) AddPos(p Pos) {
	s.add(FieldInode, p.Inode)
	s.add(FieldOffset, p.Offset)
	s.add(FieldSnapshot, uint64(p.Snapshot))
}

// AddKey widens the state to hold every field of key k.
func (s *FormatState) AddKey(k *Key) {
	s.AddPos(k.Pos)
	s.add(FieldSize, uint64(k.Size))
	s.add(FieldVersionHi, uint64(k.Version.Hi))
	s.add(FieldVersionLo, k.Version.Lo)
}

// keyPackedBitsStart is KEY_PACKED_BITS_START: the u64s, format and type
// bytes at the start of every packed key.
const keyPackedBitsStart = 24

func (s *FormatState) fieldBits(i int) (bits uint, offset uint64) {
	min, max := s.Min[i], s.Max[i]
	if min > max {
		min = max
	}
	return clampField(i, uint(bits64(max-min)), min)
}

func bits64(v uint64) int { return 64 - bits.LeadingZeros64(v) }

// clampField is set_format_field: a field never gets more bits than its
// unpacked width, a full-width field has offset 0, and the offset is
// lowered so that offset + the largest stored value cannot exceed the
// unpacked maximum.
func clampField(i int, b uint, offset uint64) (uint, uint64) {
	w := uint(fieldWidth[i])
	if b > w {
		b = w
	}
	if b == w {
		return b, 0
	}
	unpackedMax := ^uint64(0) >> (64 - w)
	if lim := unpackedMax - (uint64(1)<<b - 1); offset > lim {
		offset = lim
	}
	return b, offset
}

// KeyU64s returns the key_u64s of the format Done would return, without
// building it. It is cheap enough to call after every added key.
func (s *FormatState) KeyU64s() int {
	total := uint(keyPackedBitsStart)
	for i := range s.Min {
		b, _ := s.fieldBits(i)
		if i == FieldSize && b != 0 {
			b += min(4, 32-b)
		}
		total += b
	}
	return int((total + 63) / 64)
}

// Done returns the format for the accumulated ranges, as
// bch2_bkey_format_done computes it: each field gets the bits of its
// range above its minimum, the size field 4 more bits (for extent
// merging), and spare bits of the last word round fields up to whole
// bytes.
func (s *FormatState) Done() Format {
	f := Format{NrFields: 6}
	total := uint(keyPackedBitsStart)
	for i := range s.Min {
		b, off := s.fieldBits(i)
		f.Bits[i], f.Offset[i] = uint8(b), off
		total += b
	}
	if b := uint(f.Bits[FieldSize]); b != 0 {
		extra := min(4, 32-b)
		f.Bits[FieldSize] += uint8(extra)
		total += extra
	}
	f.KeyU64s = uint8((total + 63) / 64)
	spare := uint(f.KeyU64s)*64 - total
	for i := range f.Bits {
		b := uint(f.Bits[i])
		r := (b+7)/8*8 - b
		if r <= spare {
			nb, off := clampField(i, b+r, f.Offset[i])
			f.Bits[i], f.Offset[i] = uint8(nb), off
			spare -= r
		}
	}
	return f
}

// fieldValues returns the six packed-key fields of k in format order.
func fieldValues(k *Key) [6]uint64 {
	return [6]uint64{k.Pos.Inode, k.Pos.Offset, uint64(k.Pos.Snapshot), uint64(k.Size), uint64(k.Version.Hi), k.Version.Lo}
}

// Fits reports whether every field of k can be stored in format f.
func (f *Format) Fits(k *Key) bool {
	v := fieldValues(k)
	for i := range v {
		if v[i] < f.Offset[i] {
			return false
		}
		d := v[i] - f.Offset[i]
		if f.Bits[i] < 64 && d>>f.Bits[i] != 0 {
			return false
		}
	}
	return true
}

// PackKey writes key k packed with format f into dst: the header (u64s =
// key_u64s + valU64s, packed format, type) and the fields, f.KeyU64s*8
// bytes in all. It returns the number of bytes written, or ok=false (and
// writes nothing) when a field does not fit the format.
func (f *Format) PackKey(dst []byte, k *Key, valU64s int) (n int, ok bool) {
	ku := int(f.KeyU64s)
	if ku == 0 || ku > KeyU64s || len(dst) < ku*8 || ku+valU64s > 255 {
		return 0, false
	}
	v := fieldValues(k)
	var w [KeyU64s]uint64
	cursor := uint(64 * ku)
	for i := 0; i < 6; i++ {
		nb := uint(f.Bits[i])
		if v[i] < f.Offset[i] {
			return 0, false
		}
		d := v[i] - f.Offset[i]
		if nb < 64 && d>>nb != 0 {
			return 0, false
		}
		if nb == 0 {
			continue
		}
		cursor -= nb
		setBits(&w, cursor, nb, d)
	}
	w[0] |= uint64(ku+valU64s) | uint64(FormatPacked)<<8 | uint64(k.Type)<<16
	if k.NeedsWhiteout {
		w[0] |= 0x80 << 8
	}
	for i := 0; i < ku; i++ {
		binary.LittleEndian.PutUint64(dst[8*i:], w[i])
	}
	return ku * 8, true
}

// setBits stores the low n (≤ 64) bits of v at bit lo of the word array.
func setBits(w *[KeyU64s]uint64, lo, n uint, v uint64) {
	i, s := lo/64, lo%64
	w[i] |= v << s
	if s != 0 && s+n > 64 && i+1 < KeyU64s {
		w[i+1] |= v >> (64 - s)
	}
}

// CRCEntryBytes returns the size in bytes of the smallest crc entry type
// that can hold c (0 when none can): crc32 for sizes up to 128 sectors with
// a 32-bit checksum and no nonce, crc64 up to 512 sectors with a checksum of
// at most 80 bits, crc128 up to 8192 sectors.
func (c *CRC) CRCEntryBytes() int {
	switch {
	case c.CompressedSize <= 128 && c.UncompressedSize <= 128 && c.Offset < 128 && c.Nonce == 0 && c.CsumHi == 0 && c.CsumLo>>32 == 0:
		return 8
	case c.CompressedSize <= 512 && c.UncompressedSize <= 512 && c.Offset < 512 && c.Nonce < 1024 && c.CsumHi>>16 == 0:
		return 16
	case c.CompressedSize <= 8192 && c.UncompressedSize <= 8192 && c.Offset < 8192 && c.Nonce < 8192:
		return 24
	}
	return 0
}

// AppendCRC appends c as the smallest crc entry that holds it (see
// CRCEntryBytes); ok is false when c fits no entry type. Kind is ignored.
func (c *CRC) AppendCRC(b []byte) ([]byte, bool) {
	if c.CompressedSize == 0 || c.UncompressedSize == 0 || c.CsumType > 15 || c.CompressionType > 15 {
		return b, false
	}
	cs, us := uint64(c.CompressedSize-1), uint64(c.UncompressedSize-1)
	switch c.CRCEntryBytes() {
	case 8:
		w := uint64(1)<<EntryCRC32 | cs<<2 | us<<9 | uint64(c.Offset)<<16 |
			uint64(c.CsumType)<<24 | uint64(c.CompressionType)<<28 | c.CsumLo<<32
		return binary.LittleEndian.AppendUint64(b, w), true
	case 16:
		w := uint64(1)<<EntryCRC64 | cs<<3 | us<<12 | uint64(c.Offset)<<21 | uint64(c.Nonce)<<30 |
			uint64(c.CsumType)<<40 | uint64(c.CompressionType)<<44 | c.CsumHi<<48
		b = binary.LittleEndian.AppendUint64(b, w)
		return binary.LittleEndian.AppendUint64(b, c.CsumLo), true
	case 24:
		w := uint64(1)<<EntryCRC128 | cs<<4 | us<<17 | uint64(c.Offset)<<30 | uint64(c.Nonce)<<43 |
			uint64(c.CsumType)<<56 | uint64(c.CompressionType)<<60
		b = binary.LittleEndian.AppendUint64(b, w)
		b = binary.LittleEndian.AppendUint64(b, c.CsumLo)
		return binary.LittleEndian.AppendUint64(b, c.CsumHi), true
	}
	return b, false
}

// Put writes the 40-byte btree_ptr_v2 value header into b.
func (v *BtreePtrV2) Put(b []byte) {
	_ = b[BtreePtrV2Bytes-1]
	binary.LittleEndian.PutUint64(b[0:], v.MemPtr)
	binary.LittleEndian.PutUint64(b[8:], v.Seq)
	binary.LittleEndian.PutUint16(b[16:], v.SectorsWritten)
	binary.LittleEndian.PutUint16(b[18:], v.Flags)
	v.MinKey.Put(b[20:])
}

// Alloc flag bits and BACKPOINTERS_START as bcachefs stores them in the
// alloc_v4 flags word.
const (
	AllocFlagNeedDiscard = 1 << 0
	AllocFlagNeedIncGen  = 1 << 1
)

// AllocFlags builds an alloc_v4 flags word: the two flag bits and
// BACKPOINTERS_START (in u64s; 8 for a full-size value).
func AllocFlags(needDiscard, needIncGen bool, bpStart uint32) uint32 {
	f := (bpStart & 0x3f) << 2
	if needDiscard {
		f |= AllocFlagNeedDiscard
	}
	if needIncGen {
		f |= AllocFlagNeedIncGen
	}
	return f
}

// Put writes a full 64-byte alloc_v4 value into b. Flags is stored as is;
// with BACKPOINTERS_START 8 every field reads back.
func (a *AllocV4) Put(b []byte) {
	_ = b[AllocV4Bytes-1]
	le := binary.LittleEndian
	le.PutUint64(b[0:], a.JournalSeqNonempty)
	le.PutUint32(b[8:], a.Flags)
	b[12] = a.Gen
	b[13] = a.OldestGen
	b[14] = byte(a.DataType)
	b[15] = a.StripeRedundancy
	le.PutUint32(b[16:], a.DirtySectors)
	le.PutUint32(b[20:], a.CachedSectors)
	le.PutUint64(b[24:], a.IOTime[0])
	le.PutUint64(b[32:], a.IOTime[1])
	le.PutUint32(b[40:], a.StripeRefcount)
	le.PutUint32(b[44:], a.NrExternalBPs)
	le.PutUint64(b[48:], a.JournalSeqEmpty)
	le.PutUint32(b[56:], a.StripeSectors)
	le.PutUint32(b[60:], 0)
}
