package bp

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Extent entry types (enum bch_extent_entry_type): the index of the lowest
// set bit of an entry's first word.
const (
	EntryPtr         = 0
	EntryCRC32       = 1
	EntryCRC64       = 2
	EntryCRC128      = 3
	EntryStripePtr   = 4
	EntryRebalance   = 5
	EntryFlags       = 6
	EntryReconcile   = 7
	EntryReconcileBP = 8
	entryTypes       = 9
)

var entryU64s = [entryTypes]int{1, 1, 2, 3, 1, 1, 1, 1, 1}

// EntrySize returns the type of the extent entry whose first word is w
// and its size in u64s: a known type's, or the superblock's
// extent_type_u64s (extra) for newer ones; 0 when the type is unknown.
// Every walk of extent entries steps by it.
func EntrySize(w uint64, extra []uint8) (t, n int) {
	t = bits.TrailingZeros64(w)
	switch {
	case t < entryTypes:
		return t, entryU64s[t]
	case t < len(extra):
		return t, int(extra[t])
	}
	return t, 0
}

// Ptr is a decoded bch_extent_ptr.
type Ptr struct {
	Offset    uint64 // sectors from the start of the device
	Dev       uint8
	Gen       uint8
	Cached    bool
	Unwritten bool
}

// DecodePtr decodes an 8-byte pointer word.
func DecodePtr(w uint64) Ptr {
	var p Ptr
	p.decode(w)
	return p
}

// decode fills p from an 8-byte pointer word field by field (hot loops:
// a struct built elsewhere and copied in is read back with wide loads
// that cannot be forwarded from the narrow stores that built it).
func (p *Ptr) decode(w uint64) {
	p.Offset = w >> 4 & (1<<44 - 1)
	p.Dev = uint8(w >> 48)
	p.Gen = uint8(w >> 56)
	p.Cached = w>>1&1 != 0
	p.Unwritten = w>>3&1 != 0
}

// Encode returns p as an on-disk pointer word.
func (p Ptr) Encode() uint64 {
	w := uint64(1) | (p.Offset&(1<<44-1))<<4 | uint64(p.Dev)<<48 | uint64(p.Gen)<<56
	if p.Cached {
		w |= 1 << 1
	}
	if p.Unwritten {
		w |= 1 << 3
	}
	return w
}

// Compression types.
const (
	CompressionNone           = 0
	CompressionIncompressible = 5
)

var compressionNames = [...]string{"none", "lz4_old", "gzip", "lz4", "zstd", "incompressible"}

// CompressionName returns the bcachefs name of a compression type.
func CompressionName(t uint8) string {
	if int(t) < len(compressionNames) {
		return compressionNames[t]
	}
	return fmt.Sprintf("(unknown compression type %d)", t)
}

// CRC is an unpacked crc entry (struct bch_extent_crc_unpacked).
type CRC struct {
	Kind             uint8 // entry type that held it: EntryCRC32/64/128, or 0 if implicit
	CsumType         uint8
	CompressionType  uint8
	CompressedSize   uint32
	UncompressedSize uint32
	Offset           uint32
	Nonce            uint32
	CsumLo, CsumHi   uint64
	LiveSize         uint32
}

// Compressed reports whether the data is compressed (not none nor
// incompressible).
func (c *CRC) Compressed() bool { return Compressed(c.CompressionType) }

// StripePtr is a decoded bch_extent_stripe_ptr.
type StripePtr struct {
	Block      uint8
	Redundancy uint8
	Idx        uint64
}

// DecodedPtr is one pointer of a key with the crc entry and stripe pointer
// that apply to it.
type DecodedPtr struct {
	Ptr       Ptr
	CRC       CRC
	HasStripe bool
	Stripe    StripePtr
}

// DiskSectors returns the sectors the pointer occupies on disk for a key of
// the given live size (ptr_disk_sectors).
func (d *DecodedPtr) DiskSectors(size uint32) uint32 {
	if d.CRC.Compressed() && d.CRC.UncompressedSize != 0 {
		return uint32((uint64(size)*uint64(d.CRC.CompressedSize) + uint64(d.CRC.UncompressedSize) - 1) / uint64(d.CRC.UncompressedSize))
	}
	return size
}

// Entry is one raw extent entry.
type Entry struct {
	Type  int
	Words []byte // the entry's bytes, 8*u64s long
}

// EntryIter walks the extent entries of a value. Its zero value is not
// usable; make one with NewEntryIter.
type EntryIter struct {
	b     []byte
	off   int
	extra []uint8 // sizes of entry types beyond the known ones, from the superblock
}

// NewEntryIter returns an iterator over the entries in b. extra gives the
// sizes in u64s of entry types unknown to bpcheck (superblock field
// extent_type_u64s), indexed by type; it may be nil.
func NewEntryIter(b []byte, extra []uint8) EntryIter {
	return EntryIter{b: b, extra: extra}
}

// Offset returns the byte offset of the next entry within the value.
func (it *EntryIter) Offset() int { return it.off }

// Next returns the next entry. ok is false at the end or on error.
func (it *EntryIter) Next() (e Entry, ok bool, err error) {
	if it.off >= len(it.b) {
		return Entry{}, false, nil
	}
	if len(it.b)-it.off < 8 {
		return Entry{}, false, fmt.Errorf("%w: extent entry at value byte %d: %d trailing bytes", ErrKey, it.off, len(it.b)-it.off)
	}
	w := binary.LittleEndian.Uint64(it.b[it.off:])
	if w == 0 {
		return Entry{}, false, fmt.Errorf("%w: extent entry at value byte %d is zero", ErrKey, it.off)
	}
	t, n := EntrySize(w, it.extra)
	if n == 0 {
		return Entry{}, false, fmt.Errorf("%w: unknown extent entry type %d at value byte %d", ErrKey, t, it.off)
	}
	if it.off+8*n > len(it.b) {
		return Entry{}, false, fmt.Errorf("%w: extent entry type %d at value byte %d runs past the value", ErrKey, t, it.off)
	}
	e = Entry{Type: t, Words: it.b[it.off : it.off+8*n]}
	it.off += 8 * n
	return e, true, nil
}

// DecodeCRC unpacks a crc entry for a key of the given live size.
func DecodeCRC(e Entry, liveSize uint32) CRC {
	var c CRC
	c.decode(e.Type, e.Words, liveSize)
	return c
}

// decode fills c from the words of a crc entry of type t, every field
// written in place (see Ptr.decode).
func (c *CRC) decode(t int, words []byte, liveSize uint32) {
	w := binary.LittleEndian.Uint64(words)
	c.Kind = uint8(t)
	c.LiveSize = liveSize
	switch t {
	case EntryCRC32:
		c.CompressedSize, c.UncompressedSize, c.Offset, c.CompressionType = CRCSizes(t, w)
		c.Nonce = 0
		c.CsumType = uint8(w >> 24 & 0xf)
		c.CsumLo = w >> 32
		c.CsumHi = 0
	case EntryCRC64:
		c.CompressedSize, c.UncompressedSize, c.Offset, c.CompressionType = CRCSizes(t, w)
		c.Nonce = uint32(w >> 30 & 0x3ff)
		c.CsumType = uint8(w >> 40 & 0xf)
		c.CsumHi = w >> 48
		c.CsumLo = binary.LittleEndian.Uint64(words[8:])
	case EntryCRC128:
		c.CompressedSize, c.UncompressedSize, c.Offset, c.CompressionType = CRCSizes(t, w)
		c.Nonce = uint32(w >> 43 & 0x1fff)
		c.CsumType = uint8(w >> 56 & 0xf)
		c.CsumLo = binary.LittleEndian.Uint64(words[8:])
		c.CsumHi = binary.LittleEndian.Uint64(words[16:])
	default:
		c.CompressedSize, c.UncompressedSize, c.Offset, c.Nonce = 0, 0, 0, 0
		c.CsumType, c.CompressionType = 0, 0
		c.CsumLo, c.CsumHi = 0, 0
	}
}

// CRCSizes returns the fields of a crc entry of type t (EntryCRC32/64/128)
// that a backpointer needs, from the entry's first word w: compressed and
// uncompressed size, offset into the uncompressed data, and compression
// type. Zeros for any other type.
func CRCSizes(t int, w uint64) (compressed, uncompressed, offset uint32, compression uint8) {
	switch t {
	case EntryCRC32:
		return uint32(w>>2&0x7f) + 1, uint32(w>>9&0x7f) + 1, uint32(w >> 16 & 0x7f), uint8(w >> 28 & 0xf)
	case EntryCRC64:
		return uint32(w>>3&0x1ff) + 1, uint32(w>>12&0x1ff) + 1, uint32(w >> 21 & 0x1ff), uint8(w >> 44 & 0xf)
	case EntryCRC128:
		return uint32(w>>4&0x1fff) + 1, uint32(w>>17&0x1fff) + 1, uint32(w >> 30 & 0x1fff), uint8(w >> 60 & 0xf)
	}
	return 0, 0, 0, 0
}

// Compressed reports whether compression type t means compressed data
// (not none nor incompressible).
func Compressed(t uint8) bool {
	return t != CompressionNone && t != CompressionIncompressible
}

// implicit sets c to the crc of a value without a crc entry: the key's
// size, uncompressed, no checksum.
func (c *CRC) implicit(size uint32) {
	c.Kind, c.CsumType, c.CompressionType = 0, 0, 0
	c.CompressedSize, c.UncompressedSize, c.LiveSize = size, size, size
	c.Offset, c.Nonce = 0, 0
	c.CsumLo, c.CsumHi = 0, 0
}

// copyFrom copies o into c field by field (see Ptr.decode).
func (c *CRC) copyFrom(o *CRC) {
	c.Kind, c.CsumType, c.CompressionType = o.Kind, o.CsumType, o.CompressionType
	c.CompressedSize, c.UncompressedSize, c.LiveSize = o.CompressedSize, o.UncompressedSize, o.LiveSize
	c.Offset, c.Nonce = o.Offset, o.Nonce
	c.CsumLo, c.CsumHi = o.CsumLo, o.CsumHi
}

// DecodeStripePtr unpacks a stripe_ptr entry.
func DecodeStripePtr(e Entry) StripePtr {
	w := binary.LittleEndian.Uint64(e.Words)
	return StripePtr{Block: uint8(w >> 5), Redundancy: uint8(w >> 13 & 0xf), Idx: w >> 17}
}

// PtrIter yields the pointers of an extent-like value with their crc and
// stripe pointer (bkey_for_each_ptr_decode).
type PtrIter struct {
	it        EntryIter
	size      uint32
	crc       CRC
	hasStripe bool
	stripe    StripePtr
}

// NewPtrIter returns a pointer iterator over the entries of an extent or
// reflink_v value (after its refcount) for a key of the given size.
func NewPtrIter(entries []byte, size uint32, extra []uint8) PtrIter {
	var p PtrIter
	p.Reset(entries, size, extra)
	return p
}

// Reset makes p iterate over entries as NewPtrIter would, in place (for
// hot loops: a returned iterator is copied).
func (p *PtrIter) Reset(entries []byte, size uint32, extra []uint8) {
	p.it.b, p.it.extra, p.it.off = entries, extra, 0
	p.size = size
	p.crc.implicit(size)
	p.hasStripe = false
	p.stripe.Block, p.stripe.Redundancy, p.stripe.Idx = 0, 0, 0
}

// Next returns the next pointer; ok is false at the end or on error.
func (p *PtrIter) Next() (d DecodedPtr, ok bool, err error) {
	ok, err = p.NextInto(&d)
	return d, ok, err
}

// NextInto stores the next pointer in *d; ok is false at the end or on
// error. It is Next for hot loops: filling the caller's value avoids
// copying a returned struct that was just written field by field, and the
// entries are walked here directly; anything malformed is left to
// EntryIter.Next, which reports it.
func (p *PtrIter) NextInto(d *DecodedPtr) (ok bool, err error) {
	b := p.it.b
	off := p.it.off
	for off < len(b) {
		if len(b)-off < 8 {
			break
		}
		w := binary.LittleEndian.Uint64(b[off:])
		if w == 0 {
			break
		}
		t, n := EntrySize(w, p.it.extra)
		if n == 0 || off+8*n > len(b) {
			break
		}
		switch t {
		case EntryPtr:
			p.it.off = off + 8
			d.Ptr.decode(w)
			d.CRC.copyFrom(&p.crc)
			d.HasStripe = p.hasStripe
			d.Stripe.Block, d.Stripe.Redundancy, d.Stripe.Idx = p.stripe.Block, p.stripe.Redundancy, p.stripe.Idx
			p.hasStripe = false
			return true, nil
		case EntryCRC32, EntryCRC64, EntryCRC128:
			p.crc.decode(t, b[off:off+8*n], p.size)
		case EntryStripePtr:
			p.hasStripe = true
			p.stripe.Block, p.stripe.Redundancy, p.stripe.Idx = uint8(w>>5), uint8(w>>13&0xf), w>>17
		}
		off += 8 * n
	}
	p.it.off = off
	if off == len(b) {
		return false, nil // the end
	}
	_, _, err = p.it.Next() // the error at off
	return false, err
}

// ValueEntries returns the part of a value that holds extent entries for
// keys of type t, or ok=false if t carries no extent entries. For
// btree_ptr_v2 and reflink_v it skips their fixed headers (EntriesStart).
func ValueEntries(t KeyType, val []byte) (entries []byte, ok bool, err error) {
	skip, ok := EntriesStart(t)
	if !ok {
		return nil, false, nil
	}
	if len(val) < skip {
		return nil, true, shortValue(t, len(val))
	}
	return val[skip:], true, nil
}

// EntriesStart returns where the extent entries of a value of type t
// start, or ok=false if t carries none. Hot paths that cannot afford the
// call to ValueEntries (it is not inlined) slice the value themselves.
func EntriesStart(t KeyType) (skip int, ok bool) {
	s := entriesAt[t]
	return int(s), s >= 0
}

// entriesAt is, per key type, where its value's extent entries start, or
// -1 for a type without them.
var entriesAt = func() (a [256]int8) {
	for i := range a {
		a[i] = -1
	}
	a[KeyExtent], a[KeyBtreePtr], a[KeyBtreePtrV2], a[KeyReflinkV] = 0, 0, BtreePtrV2Bytes, 8
	return a
}()

// shortValue is the error of a value shorter than its type's header.
func shortValue(t KeyType, n int) error {
	if t == KeyBtreePtrV2 {
		return fmt.Errorf("%w: btree_ptr_v2 value is %d bytes, below its %d-byte header", ErrKey, n, BtreePtrV2Bytes)
	}
	return fmt.Errorf("%w: reflink_v value is %d bytes, below its refcount", ErrKey, n)
}
