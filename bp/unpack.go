package bp

import "encoding/binary"

// Unpacker decodes the packed keys of one node. The bit position of each
// field of the node's Format is worked out once, when the Unpacker is made,
// instead of once per key; keys are decoded exactly as
// Format.DecodeKeyInto decodes them (a fuzz target compares the two).
type Unpacker struct {
	f     Format // for what the fast path does not take: errors, unpacked keys
	ku    int    // key_u64s; 0 when the format cannot be used by the fast path
	field [6]unpackField
}

// unpackField locates one packed field: bits [shift, shift+n) of word
// (continuing into word+1 when spans), masked to n bits, plus the
// format's offset.
type unpackField struct {
	word, shift uint8
	spans       bool
	mask, off   uint64
}

// Unpacker returns an Unpacker for f.
func (f *Format) Unpacker() Unpacker {
	u := Unpacker{f: *f}
	ku := int(f.KeyU64s)
	if ku == 0 || ku > KeyU64s {
		return u
	}
	// The fields are packed from the top of the key's words down, in
	// field order.
	c := uint(64 * ku)
	for i := range u.field {
		n := uint(f.Bits[i])
		if n > c || n > 64 {
			return u // inconsistent (unvalidated) format: the slow path decides
		}
		c -= n
		fl := &u.field[i]
		fl.off = f.Offset[i]
		if n == 0 {
			continue // mask 0: the field is its offset
		}
		fl.word, fl.shift = uint8(c/64), uint8(c%64)
		fl.spans = c%64+n > 64
		fl.mask = 1<<n - 1 // n = 64: 1<<64 is 0 in Go, so all ones
	}
	u.ku = ku
	return u
}

func (fl *unpackField) get(w *[8]uint64) uint64 {
	if fl.mask == 0 {
		return fl.off // a field of 0 bits: every key of the node has its offset
	}
	// The counts are masked to 6 bits (they are below 64 anyway) so that
	// the shifts compile to single instructions.
	v := w[fl.word&7] >> (fl.shift & 63)
	if fl.spans { // shift is 1..63 here
		v |= w[(fl.word+1)&7] << ((64 - fl.shift) & 63)
	}
	return v&fl.mask + fl.off
}

// DecodeKeyInto is Format.DecodeKeyInto with the field positions worked
// out in advance.
func (u *Unpacker) DecodeKeyInto(k *Key, b []byte) ([]byte, error) {
	ku := u.ku
	if ku == 0 || len(b) < 8 || b[1]&0x7f != FormatPacked {
		return u.f.DecodeKeyInto(k, b)
	}
	stored := int(b[0])
	n := stored * 8
	if stored < ku || n > len(b) {
		return u.f.DecodeKeyInto(k, b) // the error
	}
	k.U64s = uint16(stored - ku + KeyU64s)
	k.Format = FormatPacked
	k.NeedsWhiteout = b[1]&0x80 != 0
	k.Type = KeyType(b[2])
	var w [8]uint64 // the key's words, zero above
	kb := b[:8*ku]
	le := binary.LittleEndian
	switch ku { // 1..5, unrolled
	case 5:
		w[4] = le.Uint64(kb[32:])
		fallthrough
	case 4:
		w[3] = le.Uint64(kb[24:])
		fallthrough
	case 3:
		w[2] = le.Uint64(kb[16:])
		fallthrough
	case 2:
		w[1] = le.Uint64(kb[8:])
		fallthrough
	default:
		w[0] = le.Uint64(kb)
	}
	// 32-bit fields wrap as the kernel's unpack does.
	k.Pos.Inode = u.field[FieldInode].get(&w)
	k.Pos.Offset = u.field[FieldOffset].get(&w)
	k.Pos.Snapshot = uint32(u.field[FieldSnapshot].get(&w))
	k.Size = uint32(u.field[FieldSize].get(&w))
	k.Version.Hi = uint32(u.field[FieldVersionHi].get(&w))
	k.Version.Lo = u.field[FieldVersionLo].get(&w)
	return b[ku*8 : n], nil
}

// DecodePos decodes only the type and position of a packed key (the
// backpointer loader needs no more) into pos and returns the key's value.
// ok is false for anything DecodeKeyInto would not take the fast way: a
// key not in the node's packed format, one shorter than key_u64s or
// running past b, or a format the Unpacker does not take; the caller then
// uses DecodeKeyInto, which decides. When ok, t, *pos and val are what
// DecodeKeyInto gives.
func (u *Unpacker) DecodePos(pos *Pos, b []byte) (t KeyType, val []byte, ok bool) {
	ku := u.ku
	if ku == 0 || len(b) < 8 || b[1]&0x7f != FormatPacked {
		return 0, nil, false
	}
	stored := int(b[0])
	n := stored * 8
	if stored < ku || n > len(b) {
		return 0, nil, false
	}
	var w [8]uint64
	kb := b[:8*ku]
	le := binary.LittleEndian
	switch ku {
	case 5:
		w[4] = le.Uint64(kb[32:])
		fallthrough
	case 4:
		w[3] = le.Uint64(kb[24:])
		fallthrough
	case 3:
		w[2] = le.Uint64(kb[16:])
		fallthrough
	case 2:
		w[1] = le.Uint64(kb[8:])
		fallthrough
	default:
		w[0] = le.Uint64(kb)
	}
	pos.Inode = u.field[FieldInode].get(&w)
	pos.Offset = u.field[FieldOffset].get(&w)
	pos.Snapshot = uint32(u.field[FieldSnapshot].get(&w))
	return KeyType(b[2]), b[ku*8 : n], true
}
