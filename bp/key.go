package bp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrKey marks every key decoding error; test with errors.Is.
var ErrKey = errors.New("bad key")

// Version is the 96-bit key version (bversion).
type Version struct {
	Hi uint32
	Lo uint64
}

// Key is an unpacked key header (struct bkey) without its value.
type Key struct {
	U64s          uint16 // key+value size in u64s of the unpacked key (as bcachefs prints it)
	Format        uint8  // 0 packed, 1 unpacked (needs_whiteout masked off)
	NeedsWhiteout bool
	Type          KeyType
	Version       Version
	Size          uint32
	Pos           Pos
}

// Start returns the start of an extent key's range (Pos.Offset - Size).
func (k *Key) Start() uint64 { return k.Pos.Offset - uint64(k.Size) }

// KeyU64s is the size in u64s of an unpacked key header.
const KeyU64s = 5

// KeyBytes is the size in bytes of an unpacked key header.
const KeyBytes = KeyU64s * 8

// Key formats (the low 7 bits of the second header byte).
const (
	FormatPacked   = 0
	FormatUnpacked = 1
)

// DecodeUnpacked decodes an unpacked key header (struct bkey, 40 bytes)
// from b and returns it with its value. It checks that b holds the whole
// key as its u64s says.
func DecodeUnpacked(b []byte) (Key, []byte, error) {
	if len(b) < KeyBytes {
		return Key{}, nil, fmt.Errorf("%w: unpacked key needs %d bytes, have %d", ErrKey, KeyBytes, len(b))
	}
	k := Key{
		U64s:          uint16(b[0]),
		Format:        b[1] & 0x7f,
		NeedsWhiteout: b[1]&0x80 != 0,
		Type:          KeyType(b[2]),
		Version:       Version{Lo: binary.LittleEndian.Uint64(b[4:]), Hi: binary.LittleEndian.Uint32(b[12:])},
		Size:          binary.LittleEndian.Uint32(b[16:]),
		Pos:           DecodePos(b[20:]),
	}
	n := int(k.U64s) * 8
	if n < KeyBytes {
		return k, nil, fmt.Errorf("%w: unpacked key u64s %d is below the header size", ErrKey, k.U64s)
	}
	if n > len(b) {
		return k, nil, fmt.Errorf("%w: key u64s %d runs past the end (%d bytes left)", ErrKey, k.U64s, len(b))
	}
	return k, b[KeyBytes:n], nil
}

// PutUnpacked writes k's 40-byte unpacked header into b.
func PutUnpacked(b []byte, k *Key) {
	_ = b[KeyBytes-1]
	b[0] = uint8(k.U64s)
	b[1] = FormatUnpacked
	if k.NeedsWhiteout {
		b[1] |= 0x80
	}
	b[2] = byte(k.Type)
	b[3] = 0
	binary.LittleEndian.PutUint64(b[4:], k.Version.Lo)
	binary.LittleEndian.PutUint32(b[12:], k.Version.Hi)
	binary.LittleEndian.PutUint32(b[16:], k.Size)
	k.Pos.Put(b[20:])
}

// Format is a per-node packed key format (struct bkey_format).
type Format struct {
	KeyU64s  uint8
	NrFields uint8
	Bits     [6]uint8
	Offset   [6]uint64
}

// Packed key fields, in bkey_format order.
const (
	FieldInode = iota
	FieldOffset
	FieldSnapshot
	FieldSize
	FieldVersionHi
	FieldVersionLo
)

// FormatBytes is the on-disk size of a bkey_format.
const FormatBytes = 56

var fieldWidth = [6]uint8{64, 64, 32, 32, 32, 64}

// CurrentFormat is BKEY_FORMAT_CURRENT: the unpacked layout seen as a packed
// format.
var CurrentFormat = Format{KeyU64s: KeyU64s, NrFields: 6, Bits: fieldWidth}

// DecodeFormat reads a bkey_format from b (at least FormatBytes bytes) and
// validates it as the kernel does: six fields, no field wider than its
// unpacked width, and key_u64s matching the field bits.
func DecodeFormat(b []byte) (Format, error) {
	var f Format
	if len(b) < FormatBytes {
		return f, fmt.Errorf("%w: bkey_format needs %d bytes, have %d", ErrKey, FormatBytes, len(b))
	}
	f.KeyU64s = b[0]
	f.NrFields = b[1]
	copy(f.Bits[:], b[2:8])
	for i := range f.Offset {
		f.Offset[i] = binary.LittleEndian.Uint64(b[8+8*i:])
	}
	return f, f.Validate()
}

// Validate checks the format's invariants.
func (f *Format) Validate() error {
	if f.NrFields != 6 {
		return fmt.Errorf("%w: bkey_format has %d fields, want 6", ErrKey, f.NrFields)
	}
	bits := 24
	for i, b := range f.Bits {
		if b > fieldWidth[i] {
			return fmt.Errorf("%w: bkey_format field %d has %d bits, more than %d", ErrKey, i, b, fieldWidth[i])
		}
		bits += int(b)
	}
	if want := (bits + 63) / 64; int(f.KeyU64s) != want {
		return fmt.Errorf("%w: bkey_format key_u64s %d, fields need %d", ErrKey, f.KeyU64s, want)
	}
	return nil
}

// Put writes f in its on-disk layout into b (at least FormatBytes bytes).
func (f *Format) Put(b []byte) {
	_ = b[FormatBytes-1]
	b[0] = f.KeyU64s
	b[1] = f.NrFields
	copy(b[2:8], f.Bits[:])
	for i, o := range f.Offset {
		binary.LittleEndian.PutUint64(b[8+8*i:], o)
	}
}

// bitsAt returns n (≤ 64) bits of the little-endian word array w starting at
// bit lo.
func bitsAt(w *[KeyU64s]uint64, lo, n uint) uint64 {
	if n == 0 {
		return 0
	}
	i, s := lo/64, lo%64
	v := w[i] >> s
	if s != 0 && i+1 < KeyU64s {
		v |= w[i+1] << (64 - s)
	}
	if n < 64 {
		v &= 1<<n - 1
	}
	return v
}

// DecodeKey decodes the key at the start of b, packed with f or unpacked,
// and returns its header and value. The key occupies b[0]*8 bytes of b.
// The format must have been validated.
func (f *Format) DecodeKey(b []byte) (Key, []byte, error) {
	var k Key
	val, err := f.DecodeKeyInto(&k, b)
	return k, val, err
}

// DecodeKeyInto is DecodeKey storing the header in *k, for hot loops that
// decode straight into their own arrays (a returned Key would be copied).
// On error *k holds what was decoded before the error.
func (f *Format) DecodeKeyInto(k *Key, b []byte) ([]byte, error) {
	if len(b) < 8 {
		*k = Key{}
		return nil, fmt.Errorf("%w: key header needs 8 bytes, have %d", ErrKey, len(b))
	}
	format := b[1] & 0x7f
	switch format {
	case FormatUnpacked:
		var val []byte
		var err error
		*k, val, err = DecodeUnpacked(b)
		return val, err
	case FormatPacked:
	default:
		*k = Key{}
		return nil, fmt.Errorf("%w: key format %d", ErrKey, format)
	}
	*k = Key{Format: FormatPacked, NeedsWhiteout: b[1]&0x80 != 0, Type: KeyType(b[2])}
	ku := int(f.KeyU64s)
	if ku == 0 || ku > KeyU64s {
		return nil, fmt.Errorf("%w: bkey_format key_u64s %d", ErrKey, ku)
	}
	stored := int(b[0])
	n := stored * 8
	if stored < ku {
		return nil, fmt.Errorf("%w: packed key u64s %d below format key_u64s %d", ErrKey, stored, ku)
	}
	if n > len(b) {
		return nil, fmt.Errorf("%w: key u64s %d runs past the end (%d bytes left)", ErrKey, stored, len(b))
	}
	// An unvalidated format whose fields do not fit its key_u64s would
	// index past the key's words.
	fieldBits := 0
	for _, b := range f.Bits {
		if b > 64 {
			return nil, fmt.Errorf("%w: bkey_format field of %d bits", ErrKey, b)
		}
		fieldBits += int(b)
	}
	if fieldBits > 64*ku {
		return nil, fmt.Errorf("%w: bkey_format fields need %d bits, key_u64s %d holds %d", ErrKey, fieldBits, ku, 64*ku)
	}
	k.U64s = uint16(stored - ku + KeyU64s)
	var w [KeyU64s]uint64
	_ = b[8*ku-1]
	for i := 0; i < ku; i++ {
		w[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	// The fields, unrolled: each is packed below the previous one, from
	// the top of the key's words; 32-bit fields wrap as the kernel's
	// unpack does.
	c := uint(64 * ku)
	c -= uint(f.Bits[FieldInode])
	k.Pos.Inode = bitsAt(&w, c, uint(f.Bits[FieldInode])) + f.Offset[FieldInode]
	c -= uint(f.Bits[FieldOffset])
	k.Pos.Offset = bitsAt(&w, c, uint(f.Bits[FieldOffset])) + f.Offset[FieldOffset]
	c -= uint(f.Bits[FieldSnapshot])
	k.Pos.Snapshot = uint32(bitsAt(&w, c, uint(f.Bits[FieldSnapshot])) + f.Offset[FieldSnapshot])
	c -= uint(f.Bits[FieldSize])
	k.Size = uint32(bitsAt(&w, c, uint(f.Bits[FieldSize])) + f.Offset[FieldSize])
	c -= uint(f.Bits[FieldVersionHi])
	k.Version.Hi = uint32(bitsAt(&w, c, uint(f.Bits[FieldVersionHi])) + f.Offset[FieldVersionHi])
	c -= uint(f.Bits[FieldVersionLo])
	k.Version.Lo = bitsAt(&w, c, uint(f.Bits[FieldVersionLo])) + f.Offset[FieldVersionLo]
	return b[ku*8 : n], nil
}
