package bp_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"bpcheck/bp"
)

// workedFormat is the bkey_format of the packed-key worked example in
// format.md §4.3.
var workedFormat = bp.Format{
	KeyU64s:  2,
	NrFields: 6,
	Bits:     [6]uint8{20, 30, 32, 10, 0, 8},
	Offset:   [6]uint64{4096, 0, 0xfffffff0, 0, 0, 0},
}

// workedKey is the packed key of the worked example in format.md §4.3.
var workedKey = []byte{0x02, 0x00, 0x06, 0x70, 0x80, 0xfe, 0x03, 0x00, 0x00, 0x40, 0x2c, 0x9a, 0xb7, 0x9e, 0x03, 0x03}

// workedWant is what workedKey unpacks to.
var workedWant = bp.Key{
	U64s:    5, // 2 stored - key_u64s 2 + 5 header u64s of the unpacked key
	Format:  bp.FormatPacked,
	Type:    bp.KeyExtent,
	Version: bp.Version{Hi: 0, Lo: 7},
	Size:    1000,
	Pos:     bp.Pos{Inode: 16441, Offset: 987654321, Snapshot: 0xffffffff},
}

// fieldValues returns k's six packed fields in bkey_format order.
func fieldValues(k *bp.Key) [6]uint64 {
	return [6]uint64{k.Pos.Inode, k.Pos.Offset, uint64(k.Pos.Snapshot), uint64(k.Size), uint64(k.Version.Hi), k.Version.Lo}
}

// unpackedWidth is the width in bits of each field of an unpacked key.
var unpackedWidth = [6]uint{64, 64, 32, 32, 32, 64}

// widthMask returns a mask of the low n bits (n ≤ 64).
func widthMask(n uint) uint64 {
	if n >= 64 {
		return math.MaxUint64
	}
	return 1<<n - 1
}

// packKey packs k with format f and appends val, independently of
// Format.DecodeKey: each field is stored minus its offset (modulo the
// field's unpacked width) as a big-endian bit stream that starts at the most
// significant bit of the last of f.KeyU64s little-endian words; the low 24
// bits of word 0 hold u64s, format 0 and the key type. The caller makes sure
// every field fits its bits.
func packKey(f *bp.Format, k *bp.Key, val []byte) []byte {
	ku := int(f.KeyU64s)
	w := make([]uint64, ku)
	cursor := 64 * ku
	for i, v := range fieldValues(k) {
		nb := int(f.Bits[i])
		cursor -= nb
		raw := (v - f.Offset[i]) & widthMask(unpackedWidth[i])
		for j := 0; j < nb; j++ {
			if raw>>j&1 != 0 {
				bit := cursor + j
				w[bit/64] |= 1 << (bit % 64)
			}
		}
	}
	u64s := ku + len(val)/8
	w[0] |= uint64(u64s) | uint64(bp.FormatPacked)<<8 | uint64(k.Type)<<16
	out := make([]byte, 0, 8*ku+len(val))
	for _, x := range w {
		out = binary.LittleEndian.AppendUint64(out, x)
	}
	return append(out, val...)
}

// formatBytes returns f in its on-disk layout.
func formatBytes(f *bp.Format) []byte {
	b := make([]byte, bp.FormatBytes)
	f.Put(b)
	return b
}

// TestDecodeKeyWorkedExample decodes the packed key of format.md §4.3 and
// variants of it (needs_whiteout set, a value appended).
func TestDecodeKeyWorkedExample(t *testing.T) {
	f, err := bp.DecodeFormat(formatBytes(&workedFormat))
	if err != nil {
		t.Fatalf("worked example format rejected: %v", err)
	}
	if f != workedFormat {
		t.Fatalf("format round trip: got %+v, want %+v", f, workedFormat)
	}
	k, val, err := f.DecodeKey(workedKey)
	if err != nil {
		t.Fatal(err)
	}
	if k != workedWant {
		t.Errorf("worked example:\n got %+v\nwant %+v", k, workedWant)
	}
	if len(val) != 0 {
		t.Errorf("value is %d bytes, want none", len(val))
	}
	// The independent packer reproduces the example's bytes exactly.
	if got := packKey(&workedFormat, &workedWant, nil); !bytes.Equal(got, workedKey) {
		t.Errorf("packKey(worked example) = % x, want % x", got, workedKey)
	}

	// needs_whiteout (bit 7 of the format byte) is masked off the format.
	wk := bytes.Clone(workedKey)
	wk[1] |= 0x80
	k, _, err = f.DecodeKey(wk)
	if err != nil {
		t.Fatal(err)
	}
	want := workedWant
	want.NeedsWhiteout = true
	if k != want {
		t.Errorf("with needs_whiteout: got %+v, want %+v", k, want)
	}

	// With a one-u64 value: u64s 3 stored, 6 unpacked, value is the
	// trailing 8 bytes, as a subslice of the input.
	v := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	kv := packKey(&workedFormat, &workedWant, v)
	kv = append(kv, 0xee, 0xee) // trailing bytes of the next key
	k, val, err = f.DecodeKey(kv)
	if err != nil {
		t.Fatal(err)
	}
	if k.U64s != 6 || !bytes.Equal(val, v) {
		t.Errorf("with value: u64s %d value % x, want 6 and % x", k.U64s, val, v)
	}
	if &val[0] != &kv[16] {
		t.Error("value does not alias the key bytes")
	}
}

// TestDecodeKeyErrors feeds DecodeKey keys that are cut short or whose
// header is impossible; each must fail with ErrKey.
func TestDecodeKeyErrors(t *testing.T) {
	f := workedFormat
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"short header", workedKey[:7]},
		{"u64s past end", append([]byte{3}, workedKey[1:]...)},
		{"u64s below key_u64s", append([]byte{1}, workedKey[1:]...)},
		{"format 2", append([]byte{2, 2}, workedKey[2:]...)},
		{"unpacked u64s below header", append([]byte{4, 1}, make([]byte, 38)...)},
		{"unpacked short", append([]byte{5, 1}, make([]byte, 30)...)},
		{"unpacked u64s past end", append([]byte{6, 1}, make([]byte, 38)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.DecodeKey(tc.b)
			if !errors.Is(err, bp.ErrKey) {
				t.Errorf("DecodeKey(% x) error %v, want ErrKey", tc.b, err)
			}
		})
	}
}

// TestUnpackedKeyRoundTrip checks the struct bkey byte layout through
// PutUnpacked/DecodeUnpacked, and that BKEY_FORMAT_CURRENT reads the same
// bytes as a packed key.
func TestUnpackedKeyRoundTrip(t *testing.T) {
	k := bp.Key{
		U64s:          7,
		Format:        bp.FormatUnpacked,
		NeedsWhiteout: true,
		Type:          bp.KeyBackpointer,
		Version:       bp.Version{Hi: 0xdeadbeef, Lo: 0x0123456789abcdef},
		Size:          0xfedcba98,
		Pos:           bp.Pos{Inode: 0x1122334455667788, Offset: 0x99aabbccddeeff00, Snapshot: 0xcafef00d},
	}
	b := make([]byte, 7*8)
	bp.PutUnpacked(b, &k)
	for i := bp.KeyBytes; i < len(b); i++ {
		b[i] = byte(i)
	}
	// Byte layout of struct bkey (format.md §4.2).
	if b[0] != 7 || b[1] != 0x81 || b[2] != byte(bp.KeyBackpointer) || b[3] != 0 {
		t.Errorf("header bytes % x", b[:4])
	}
	if got := binary.LittleEndian.Uint32(b[20:]); got != k.Pos.Snapshot {
		t.Errorf("snapshot at byte 20 = %#x", got)
	}
	if got := binary.LittleEndian.Uint64(b[32:]); got != k.Pos.Inode {
		t.Errorf("inode at byte 32 = %#x", got)
	}
	got, val, err := bp.DecodeUnpacked(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != k || !bytes.Equal(val, b[bp.KeyBytes:]) {
		t.Errorf("round trip: got %+v value % x", got, val)
	}
	// Through Format.DecodeKey with any format the unpacked key decodes
	// the same way.
	got2, _, err := workedFormat.DecodeKey(b)
	if err != nil || got2 != k {
		t.Errorf("DecodeKey(unpacked) = %+v, %v", got2, err)
	}
	// BKEY_FORMAT_CURRENT is the unpacked layout seen as a packed key: the
	// same bytes with format 0 decode to the same fields.
	b[1] = bp.FormatPacked
	got3, val3, err := bp.CurrentFormat.DecodeKey(b)
	if err != nil {
		t.Fatal(err)
	}
	want := k
	want.Format, want.NeedsWhiteout = bp.FormatPacked, false
	if got3 != want || !bytes.Equal(val3, val) {
		t.Errorf("CurrentFormat: got %+v, want %+v", got3, want)
	}
}

// TestPackedRoundTrip packs random keys with random valid formats and checks
// that DecodeKey returns every field.
func TestPackedRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 5000; iter++ {
		var f bp.Format
		f.NrFields = 6
		total := 24
		for i := range f.Bits {
			switch rng.IntN(4) {
			case 0:
				f.Bits[i] = 0
			case 1:
				f.Bits[i] = uint8(unpackedWidth[i])
			default:
				f.Bits[i] = uint8(rng.IntN(int(unpackedWidth[i]) + 1))
			}
			total += int(f.Bits[i])
			if rng.IntN(2) == 0 {
				f.Offset[i] = rng.Uint64() & widthMask(unpackedWidth[i])
			}
		}
		f.KeyU64s = uint8((total + 63) / 64)
		if err := f.Validate(); err != nil {
			t.Fatalf("random format %+v: %v", f, err)
		}
		var v [6]uint64
		for i := range v {
			v[i] = (f.Offset[i] + rng.Uint64()&widthMask(uint(f.Bits[i]))) & widthMask(unpackedWidth[i])
		}
		k := bp.Key{
			U64s: 5, Format: bp.FormatPacked, Type: bp.KeyType(rng.IntN(40)),
			Pos:     bp.Pos{Inode: v[0], Offset: v[1], Snapshot: uint32(v[2])},
			Size:    uint32(v[3]),
			Version: bp.Version{Hi: uint32(v[4]), Lo: v[5]},
		}
		val := make([]byte, 8*rng.IntN(3))
		k.U64s += uint16(len(val) / 8)
		b := packKey(&f, &k, val)
		got, gotVal, err := f.DecodeKey(b)
		if err != nil {
			t.Fatalf("format %+v key %+v: %v", f, k, err)
		}
		if got != k || len(gotVal) != len(val) {
			t.Fatalf("format %+v:\n got %+v\nwant %+v", f, got, k)
		}
	}
}

// TestFormatValidate accepts valid formats and rejects each broken rule:
// nr_fields, a field wider than its unpacked width, key_u64s.
func TestFormatValidate(t *testing.T) {
	good := []bp.Format{
		bp.CurrentFormat,
		workedFormat,
		{KeyU64s: 1, NrFields: 6}, // header only
		{KeyU64s: 1, NrFields: 6, Bits: [6]uint8{0, 40, 0, 0, 0}}, // 24+40 = 64 bits
		{KeyU64s: 2, NrFields: 6, Bits: [6]uint8{0, 41, 0, 0, 0}}, // 65 bits
	}
	for _, f := range good {
		if err := f.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", f, err)
		}
	}
	bad := map[string]bp.Format{
		"nr_fields 5":         {KeyU64s: 5, NrFields: 5, Bits: [6]uint8{64, 64, 32, 32, 32, 64}},
		"nr_fields 7":         {KeyU64s: 5, NrFields: 7, Bits: [6]uint8{64, 64, 32, 32, 32, 64}},
		"nr_fields 0":         {KeyU64s: 1},
		"inode 65 bits":       {KeyU64s: 2, NrFields: 6, Bits: [6]uint8{65}},
		"offset 65 bits":      {KeyU64s: 2, NrFields: 6, Bits: [6]uint8{0, 65}},
		"snapshot 33 bits":    {KeyU64s: 1, NrFields: 6, Bits: [6]uint8{0, 0, 33}},
		"size 33 bits":        {KeyU64s: 1, NrFields: 6, Bits: [6]uint8{0, 0, 0, 33}},
		"version_hi 33 bits":  {KeyU64s: 1, NrFields: 6, Bits: [6]uint8{0, 0, 0, 0, 33}},
		"version_lo 65 bits":  {KeyU64s: 2, NrFields: 6, Bits: [6]uint8{0, 0, 0, 0, 0, 65}},
		"key_u64s too small":  {KeyU64s: 1, NrFields: 6, Bits: [6]uint8{0, 41}},
		"key_u64s too large":  {KeyU64s: 3, NrFields: 6, Bits: [6]uint8{0, 41}},
		"key_u64s 0":          {KeyU64s: 0, NrFields: 6},
		"key_u64s 6 for full": {KeyU64s: 6, NrFields: 6, Bits: [6]uint8{64, 64, 32, 32, 32, 64}},
	}
	for name, f := range bad {
		err := f.Validate()
		if !errors.Is(err, bp.ErrKey) {
			t.Errorf("%s: Validate = %v, want ErrKey", name, err)
		}
		// DecodeFormat applies the same rules to the on-disk bytes.
		if _, err := bp.DecodeFormat(formatBytes(&f)); !errors.Is(err, bp.ErrKey) {
			t.Errorf("%s: DecodeFormat = %v, want ErrKey", name, err)
		}
	}
	if _, err := bp.DecodeFormat(make([]byte, bp.FormatBytes-1)); !errors.Is(err, bp.ErrKey) {
		t.Errorf("DecodeFormat(55 bytes) = %v, want ErrKey", err)
	}
}

// TestPosOrdering checks Cmp/Less on positions ordered by hand and against
// the 160-bit little-endian reading of their on-disk bytes.
func TestPosOrdering(t *testing.T) {
	// In increasing order: inode dominates offset, offset dominates
	// snapshot, all compared unsigned.
	ordered := []bp.Pos{
		bp.PosMin,
		{Snapshot: 1},
		{Snapshot: math.MaxUint32},
		{Offset: 1},
		{Offset: 1, Snapshot: 5},
		{Offset: math.MaxUint64},
		{Offset: math.MaxUint64, Snapshot: math.MaxUint32},
		{Inode: 1},
		{Inode: 1 << 63},
		bp.PosMax,
		bp.SPosMax,
	}
	for i, p := range ordered {
		for j, q := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := p.Cmp(q); got != want {
				t.Errorf("%v.Cmp(%v) = %d, want %d", p, q, got, want)
			}
			if got := p.Less(q); got != (want < 0) {
				t.Errorf("%v.Less(%v) = %v", p, q, got)
			}
		}
	}

	// format.md §4.1: the 20 on-disk bytes read as one little-endian
	// 160-bit integer sort like the positions.
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func() bp.Pos {
		vals := []uint64{0, 1, math.MaxUint64, rng.Uint64()}
		return bp.Pos{Inode: vals[rng.IntN(4)], Offset: vals[rng.IntN(4)], Snapshot: uint32(vals[rng.IntN(4)])}
	}
	for range 2000 {
		p, q := pick(), pick()
		var pb, qb [bp.PosSize]byte
		p.Put(pb[:])
		q.Put(qb[:])
		if bp.DecodePos(pb[:]) != p {
			t.Fatalf("Put/DecodePos round trip of %v", p)
		}
		slicesReverse(pb[:])
		slicesReverse(qb[:])
		if got, want := p.Cmp(q), bytes.Compare(pb[:], qb[:]); got != want {
			t.Fatalf("%v.Cmp(%v) = %d, 160-bit compare %d", p, q, got, want)
		}
	}
}

// slicesReverse reverses b in place.
func slicesReverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// TestPosSuccessorAndLayout checks Successor's carries, the on-disk bpos
// layout and String.
func TestPosSuccessorAndLayout(t *testing.T) {
	for _, tc := range []struct{ p, want bp.Pos }{
		{bp.PosMin, bp.Pos{Snapshot: 1}},
		{bp.Pos{Inode: 4, Offset: 8, Snapshot: 9}, bp.Pos{Inode: 4, Offset: 8, Snapshot: 10}},
		{bp.Pos{Inode: 4, Offset: 8, Snapshot: math.MaxUint32}, bp.Pos{Inode: 4, Offset: 9}},
		{bp.Pos{Inode: 4, Offset: math.MaxUint64, Snapshot: math.MaxUint32}, bp.Pos{Inode: 5}},
		{bp.PosMax, bp.Pos{Inode: math.MaxUint64, Offset: math.MaxUint64, Snapshot: 1}},
		{bp.SPosMax, bp.SPosMax},
	} {
		got := tc.p.Successor()
		if got != tc.want {
			t.Errorf("%v.Successor() = %v, want %v", tc.p, got, tc.want)
		}
		if tc.p != bp.SPosMax && !tc.p.Less(got) {
			t.Errorf("%v.Successor() = %v does not sort after it", tc.p, got)
		}
	}
	// On-disk layout: snapshot @0, offset @4, inode @12, little-endian.
	b := []byte{
		0x01, 0x02, 0x03, 0x04,
		0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
		0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
	}
	want := bp.Pos{Inode: 0x2726252423222120, Offset: 0x1716151413121110, Snapshot: 0x04030201}
	if got := bp.DecodePos(b); got != want {
		t.Errorf("DecodePos = %#v, want %#v", got, want)
	}
	if s := (bp.Pos{Inode: 1, Offset: 2, Snapshot: 3}).String(); s != "1:2:3" {
		t.Errorf("String = %q", s)
	}
	if s := bp.SPosMax.String(); s != "18446744073709551615:18446744073709551615:4294967295" {
		t.Errorf("SPosMax.String = %q", s)
	}
}

// Builders of extent entry words, written from the bit layout in format.md
// §5.3 (LSB = bit 0 of the entry's first little-endian u64).

// ptrWord builds a bch_extent_ptr.
func ptrWord(offset uint64, dev, gen uint8, cached, unwritten bool) uint64 {
	w := uint64(1) | offset<<4 | uint64(dev)<<48 | uint64(gen)<<56
	if cached {
		w |= 1 << 1
	}
	if unwritten {
		w |= 1 << 3
	}
	return w
}

// crcFields are the fields of a crc entry, sizes not yet minus one.
type crcFields struct {
	compressed, uncompressed, offset, nonce uint64
	csumType, compression                   uint64
	csumLo, csumHi                          uint64
}

// crc32Words builds a crc32 entry (1 u64).
func crc32Words(c crcFields) []uint64 {
	return []uint64{0b10 | (c.compressed-1)<<2 | (c.uncompressed-1)<<9 | c.offset<<16 |
		c.csumType<<24 | c.compression<<28 | c.csumLo<<32}
}

// crc64Words builds a crc64 entry (2 u64s).
func crc64Words(c crcFields) []uint64 {
	return []uint64{0b100 | (c.compressed-1)<<3 | (c.uncompressed-1)<<12 | c.offset<<21 |
		c.nonce<<30 | c.csumType<<40 | c.compression<<44 | c.csumHi<<48, c.csumLo}
}

// crc128Words builds a crc128 entry (3 u64s).
func crc128Words(c crcFields) []uint64 {
	return []uint64{0b1000 | (c.compressed-1)<<4 | (c.uncompressed-1)<<17 | c.offset<<30 |
		c.nonce<<43 | c.csumType<<56 | c.compression<<60, c.csumLo, c.csumHi}
}

// stripePtrWord builds a stripe_ptr entry.
func stripePtrWord(block, redundancy uint8, idx uint64) uint64 {
	return 1<<4 | uint64(block)<<5 | uint64(redundancy)<<13 | idx<<17
}

// le64s lays out words as little-endian bytes.
func le64s(words ...uint64) []byte {
	b := make([]byte, 0, 8*len(words))
	for _, w := range words {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return b
}

// cat concatenates word lists.
func cat(ws ...[]uint64) []uint64 {
	var out []uint64
	for _, w := range ws {
		out = append(out, w...)
	}
	return out
}

// TestPtrRoundTrip decodes and encodes pointer words built from the bit
// layout of format.md §5.3.
func TestPtrRoundTrip(t *testing.T) {
	for _, p := range []bp.Ptr{
		{},
		{Offset: 1<<44 - 1, Dev: 255, Gen: 255, Cached: true, Unwritten: true},
		{Offset: 256037, Dev: 3, Gen: 17},
		{Offset: 12345, Dev: 1, Gen: 0, Cached: true},
	} {
		w := ptrWord(p.Offset, p.Dev, p.Gen, p.Cached, p.Unwritten)
		if got := bp.DecodePtr(w); got != p {
			t.Errorf("DecodePtr(%#x) = %+v, want %+v", w, got, p)
		}
		if got := p.Encode(); got != w {
			t.Errorf("%+v.Encode() = %#x, want %#x", p, got, w)
		}
	}
	// Bit 2 is unused; decoding ignores it.
	if got := bp.DecodePtr(ptrWord(7, 1, 2, false, false) | 1<<2); got != (bp.Ptr{Offset: 7, Dev: 1, Gen: 2}) {
		t.Errorf("unused bit 2 leaks: %+v", got)
	}
}

// TestCRCEntries decodes crc32, crc64 and crc128 entries with every field
// at a distinct (often maximal) value.
func TestCRCEntries(t *testing.T) {
	c32 := crcFields{compressed: 128, uncompressed: 1, offset: 0x7f, csumType: 5, compression: 3, csumLo: 0xdeadbeef}
	c64 := crcFields{compressed: 512, uncompressed: 300, offset: 0x1ff, nonce: 0x3ff, csumType: 6, compression: 4,
		csumLo: 0x0123456789abcdef, csumHi: 0xfedc}
	c128 := crcFields{compressed: 8192, uncompressed: 4096, offset: 0x1fff, nonce: 0x1abc, csumType: 4, compression: 15,
		csumLo: 0x1111222233334444, csumHi: 0x5555666677778888}
	for _, tc := range []struct {
		name  string
		typ   int
		words []uint64
		in    crcFields
	}{
		{"crc32", bp.EntryCRC32, crc32Words(c32), c32},
		{"crc64", bp.EntryCRC64, crc64Words(c64), c64},
		{"crc128", bp.EntryCRC128, crc128Words(c128), c128},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := le64s(tc.words...)
			it := bp.NewEntryIter(b, nil)
			e, ok, err := it.Next()
			if !ok || err != nil {
				t.Fatalf("Next = %v, %v", ok, err)
			}
			if e.Type != tc.typ || len(e.Words) != 8*len(tc.words) {
				t.Fatalf("entry type %d, %d bytes; want %d, %d", e.Type, len(e.Words), tc.typ, 8*len(tc.words))
			}
			c := bp.DecodeCRC(e, 77)
			want := bp.CRC{
				Kind: uint8(tc.typ), CsumType: uint8(tc.in.csumType), CompressionType: uint8(tc.in.compression),
				CompressedSize: uint32(tc.in.compressed), UncompressedSize: uint32(tc.in.uncompressed),
				Offset: uint32(tc.in.offset), Nonce: uint32(tc.in.nonce),
				CsumLo: tc.in.csumLo, CsumHi: tc.in.csumHi, LiveSize: 77,
			}
			if c != want {
				t.Errorf("DecodeCRC:\n got %+v\nwant %+v", c, want)
			}
			if _, ok, err := it.Next(); ok || err != nil {
				t.Errorf("after the entry: ok %v err %v", ok, err)
			}
		})
	}
}

// TestStripePtrEntry decodes a stripe_ptr entry with maximal fields.
func TestStripePtrEntry(t *testing.T) {
	w := stripePtrWord(0xab, 0xf, 1<<47-1)
	e, ok, err := func() (bp.Entry, bool, error) { it := bp.NewEntryIter(le64s(w), nil); return it.Next() }()
	if !ok || err != nil || e.Type != bp.EntryStripePtr {
		t.Fatalf("Next = %+v, %v, %v", e, ok, err)
	}
	want := bp.StripePtr{Block: 0xab, Redundancy: 0xf, Idx: 1<<47 - 1}
	if got := bp.DecodeStripePtr(e); got != want {
		t.Errorf("DecodeStripePtr = %+v, want %+v", got, want)
	}
}

// TestPtrIter decodes a value mixing every entry kind and checks which crc
// and stripe pointer each pointer gets (bkey_for_each_ptr_decode).
func TestPtrIter(t *testing.T) {
	c64 := crcFields{compressed: 30, uncompressed: 128, offset: 5, nonce: 9, csumType: 6, compression: 3, csumLo: 42, csumHi: 7}
	c32 := crcFields{compressed: 8, uncompressed: 8, offset: 2, csumType: 5, csumLo: 0xabcd}
	c128 := crcFields{compressed: 4000, uncompressed: 4000, offset: 100, nonce: 3, csumType: 7, csumLo: 1, csumHi: 2}
	rebalance := uint64(1<<5 | 3<<40) // type 5, skipped
	words := cat(
		[]uint64{ptrWord(10, 0, 1, false, false)}, // no crc yet: implicit
		crc64Words(c64),
		[]uint64{stripePtrWord(2, 1, 99)},
		[]uint64{ptrWord(20, 1, 2, false, false)}, // crc64 + stripe
		[]uint64{ptrWord(30, 2, 3, true, false)},  // crc64, stripe consumed
		[]uint64{rebalance},
		crc32Words(c32),
		[]uint64{ptrWord(40, 3, 4, false, true)}, // crc32
		crc128Words(c128),
		[]uint64{ptrWord(50, 4, 5, false, false)}, // crc128
	)
	const size = 100
	it := bp.NewPtrIter(le64s(words...), size, nil)
	var got []bp.DecodedPtr
	for {
		d, ok, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, d)
	}
	if len(got) != 5 {
		t.Fatalf("%d pointers, want 5", len(got))
	}
	implicit := bp.CRC{CompressedSize: size, UncompressedSize: size, LiveSize: size}
	if got[0].CRC != implicit || got[0].HasStripe || got[0].Ptr.Offset != 10 {
		t.Errorf("ptr 0: %+v", got[0])
	}
	if got[0].DiskSectors(size) != size {
		t.Errorf("ptr 0 disk sectors %d", got[0].DiskSectors(size))
	}
	if got[1].CRC.Kind != bp.EntryCRC64 || got[1].CRC.Offset != 5 || !got[1].HasStripe ||
		got[1].Stripe != (bp.StripePtr{Block: 2, Redundancy: 1, Idx: 99}) || got[1].Ptr.Dev != 1 {
		t.Errorf("ptr 1: %+v", got[1])
	}
	// compressed 30/128 with live size 100: ceil(100*30/128) = 24.
	if n := got[1].DiskSectors(size); n != 24 {
		t.Errorf("ptr 1 disk sectors %d, want 24", n)
	}
	if got[2].CRC != got[1].CRC || got[2].HasStripe || !got[2].Ptr.Cached {
		t.Errorf("ptr 2: %+v", got[2])
	}
	if got[3].CRC.Kind != bp.EntryCRC32 || got[3].CRC.CsumLo != 0xabcd || !got[3].Ptr.Unwritten || got[3].CRC.Compressed() {
		t.Errorf("ptr 3: %+v", got[3])
	}
	if got[4].CRC.Kind != bp.EntryCRC128 || got[4].CRC.CompressedSize != 4000 || got[4].CRC.CsumHi != 2 || got[4].Ptr.Gen != 5 {
		t.Errorf("ptr 4: %+v", got[4])
	}
}

// TestEntryIterErrors: zero words, cut entries and unknown types end the
// iteration with ErrKey, unless the superblock gives the unknown type's size.
func TestEntryIterErrors(t *testing.T) {
	unknown9 := uint64(1 << 9)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"zero word", le64s(ptrWord(1, 0, 0, false, false), 0)},
		{"trailing bytes", append(le64s(ptrWord(1, 0, 0, false, false)), 1, 2, 3)},
		{"crc64 cut", le64s(crc64Words(crcFields{compressed: 1, uncompressed: 1})[0])},
		{"crc128 cut", le64s(crc128Words(crcFields{compressed: 1, uncompressed: 1})[:2]...)},
		{"unknown type 9", le64s(unknown9)},
		{"type 63", le64s(1 << 63)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := bp.NewPtrIter(tc.b, 8, nil)
			var err error
			for n := 0; n < 10; n++ {
				var ok bool
				if _, ok, err = it.Next(); !ok {
					break
				}
			}
			if !errors.Is(err, bp.ErrKey) {
				t.Errorf("error %v, want ErrKey", err)
			}
		})
	}
	// An unknown type whose size the superblock gives is skipped.
	extra := make([]uint8, 10)
	extra[9] = 2
	b := le64s(unknown9, 0xffff_ffff_ffff_fe00, ptrWord(7, 1, 1, false, false))
	it := bp.NewPtrIter(b, 8, extra)
	d, ok, err := it.Next()
	if !ok || err != nil || d.Ptr.Offset != 7 {
		t.Errorf("with extent_type_u64s: %+v %v %v", d, ok, err)
	}
}

// TestValueEntries checks which key types carry extent entries and the
// headers skipped before them.
func TestValueEntries(t *testing.T) {
	v2 := make([]byte, bp.BtreePtrV2Bytes+8)
	binary.LittleEndian.PutUint64(v2[bp.BtreePtrV2Bytes:], ptrWord(512, 0, 0, false, false))
	for _, tc := range []struct {
		t       bp.KeyType
		val     []byte
		skip    int
		ok, err bool
	}{
		{bp.KeyExtent, v2, 0, true, false},
		{bp.KeyBtreePtr, v2, 0, true, false},
		{bp.KeyBtreePtrV2, v2, bp.BtreePtrV2Bytes, true, false},
		{bp.KeyBtreePtrV2, v2[:39], 0, true, true},
		{bp.KeyReflinkV, v2, 8, true, false},
		{bp.KeyReflinkV, v2[:7], 0, true, true},
		{bp.KeyInode, v2, 0, false, false},
	} {
		e, ok, err := bp.ValueEntries(tc.t, tc.val)
		if ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("%v (%d bytes): ok %v err %v", tc.t, len(tc.val), ok, err)
			continue
		}
		if ok && !tc.err && len(e) != len(tc.val)-tc.skip {
			t.Errorf("%v: %d entry bytes, want %d", tc.t, len(e), len(tc.val)-tc.skip)
		}
	}
}

// allocValue builds a 64-byte alloc_v4 value with every field non-zero and
// the given BACKPOINTERS_START (u64s).
func allocValue(start uint32) []byte {
	b := make([]byte, bp.AllocV4Bytes)
	le := binary.LittleEndian
	le.PutUint64(b[0:], 0x1111)
	le.PutUint32(b[8:], 1|2|start<<2|3<<8)
	b[12], b[13], b[14], b[15] = 7, 5, byte(bp.DataUser), 1
	le.PutUint32(b[16:], 100)
	le.PutUint32(b[20:], 200)
	le.PutUint64(b[24:], 0x2424)
	le.PutUint64(b[32:], 0x3232)
	le.PutUint32(b[40:], 40)
	le.PutUint32(b[44:], 44)
	le.PutUint64(b[48:], 0x4848)
	le.PutUint32(b[56:], 56)
	le.PutUint32(b[60:], 0xffffffff) // pad
	return b
}

// TestDecodeAllocV4 checks the short-value rule of __bch2_alloc_to_v4:
// bytes at or beyond BACKPOINTERS_START*8 (48 when it is 0) read as zero.
func TestDecodeAllocV4(t *testing.T) {
	full := bp.AllocV4{
		JournalSeqNonempty: 0x1111, Gen: 7, OldestGen: 5, DataType: bp.DataUser, StripeRedundancy: 1,
		DirtySectors: 100, CachedSectors: 200, IOTime: [2]uint64{0x2424, 0x3232},
		StripeRefcount: 40, NrExternalBPs: 44, JournalSeqEmpty: 0x4848, StripeSectors: 56,
	}
	// cut returns full with every byte at or beyond n zeroed.
	cut := func(n int) bp.AllocV4 {
		a := full
		if n <= 56 {
			a.StripeSectors = 0
		}
		if n <= 48 {
			a.JournalSeqEmpty = 0
		}
		if n <= 44 {
			a.NrExternalBPs = 0
		}
		if n <= 40 {
			a.StripeRefcount = 0
		}
		if n <= 32 {
			a.IOTime[1] = 0
		}
		if n <= 24 {
			a.IOTime[0] = 0
		}
		return a
	}
	for _, tc := range []struct {
		name   string
		start  uint32
		length int
		want   bp.AllocV4
	}{
		{"start 8, 64 bytes", 8, 64, full},
		{"start 8, 48 bytes", 8, 48, cut(48)},
		{"start 7", 7, 64, cut(56)},
		{"start 6", 6, 64, cut(48)},
		{"start 0 means 6 u64s", 0, 64, cut(48)},
		{"start 4", 4, 64, cut(32)},
		{"start 3", 3, 64, cut(24)},
		{"start 10 (past the value)", 10, 64, full},
		{"start 8, 60 bytes", 8, 60, full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := allocValue(tc.start)[:tc.length]
			a, err := bp.DecodeAllocV4(v)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.Flags = 1 | 2 | tc.start<<2 | 3<<8
			if a != want {
				t.Errorf("\n got %+v\nwant %+v", a, want)
			}
			if a.BackpointersStart() != tc.start || a.NrBackpointers() != 3 || !a.NeedDiscard() || !a.NeedIncGen() {
				t.Errorf("flags: start %d nr %d discard %v inc_gen %v", a.BackpointersStart(), a.NrBackpointers(), a.NeedDiscard(), a.NeedIncGen())
			}
		})
	}
	if _, err := bp.DecodeAllocV4(make([]byte, 15)); !errors.Is(err, bp.ErrKey) {
		t.Errorf("15-byte value: %v, want ErrKey", err)
	}
}

// TestBackpointerRoundTrip encodes and decodes backpointer values in both
// layouts and checks the bytes that differ between them.
func TestBackpointerRoundTrip(t *testing.T) {
	pos := bp.Pos{Inode: 4096, Offset: 800, Snapshot: math.MaxUint32}
	a := bp.Backpointer{BtreeID: bp.BtreeReflink, Level: 2, DataType: bp.DataBtree, BucketOffset: 1<<40 - 1, BucketLen: 0xfedcba98, Pos: pos}
	b := bp.Backpointer{BtreeID: bp.BtreeExtents, Level: 0, DataType: bp.DataCached, BucketGen: 0xa5,
		Flags: 2 | bp.BPFlagErasureCoded | bp.BPFlagStripePtr, BucketLen: 24, Pos: pos}
	for _, tc := range []struct {
		name    string
		bp      bp.Backpointer
		formatB bool
		b3to8   []byte // bytes 3..7 of the value
	}{
		{"A", a, false, []byte{0xff, 0xff, 0xff, 0xff, 0xff}},
		{"A 37893", bp.Backpointer{BucketOffset: 37893, Pos: pos}, false, []byte{0x05, 0x94, 0, 0, 0}},
		{"B", b, true, []byte{0xa5, 0x0e, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := make([]byte, bp.BackpointerBytes)
			tc.bp.Encode(v, tc.formatB)
			if !bytes.Equal(v[3:8], tc.b3to8) {
				t.Errorf("bytes 3..8 = % x, want % x", v[3:8], tc.b3to8)
			}
			if v[0] != byte(tc.bp.BtreeID) || v[1] != tc.bp.Level || v[2] != byte(tc.bp.DataType) ||
				binary.LittleEndian.Uint32(v[8:]) != tc.bp.BucketLen || bp.DecodePos(v[12:]) != pos {
				t.Errorf("layout: % x", v)
			}
			got, err := bp.DecodeBackpointer(v, tc.formatB)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.bp {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tc.bp)
			}
			if _, err := bp.DecodeBackpointer(v[:31], tc.formatB); !errors.Is(err, bp.ErrKey) {
				t.Errorf("31 bytes: %v, want ErrKey", err)
			}
		})
	}
	// The same bytes read in the other layout: byte 3 is the gen in B, the
	// low byte of bucket_offset in A.
	v := make([]byte, bp.BackpointerBytes)
	b.Encode(v, true)
	asA, _ := bp.DecodeBackpointer(v, false)
	if asA.BucketOffset != 0x0e_a5 || asA.BucketGen != 0 || asA.Flags != 0 {
		t.Errorf("B bytes read as A: %+v", asA)
	}
}

// geometry returns a Geometry with one bucket size for members 0..3.
func geometry(version uint16, shift uint, bucketSize, nodeSectors uint32) *bp.Geometry {
	return &bp.Geometry{
		Version:          version,
		Shift:            shift,
		BtreeNodeSectors: nodeSectors,
		BucketSize: func(dev uint8) (uint32, bool) {
			if dev > 3 {
				return 0, false
			}
			return bucketSize, true
		},
		Rotational: func(dev uint8) bool { return dev == 1 },
	}
}

const (
	v1_9  = 1<<10 | 9
	v1_13 = 1<<10 | 13
	v1_20 = 1<<10 | 20
	v1_36 = 1<<10 | 36
)

// TestExpectedBPWorkedExample is format.md §6.3: bucket_size 256,
// ptr.offset 256037 (bucket 1000, +37), crc.offset 5.
func TestExpectedBPWorkedExample(t *testing.T) {
	k := bp.Key{Type: bp.KeyExtent, Size: 100, Pos: bp.Pos{Inode: 4096, Offset: 800, Snapshot: math.MaxUint32}}
	d := bp.DecodedPtr{
		Ptr: bp.Ptr{Offset: 256037, Dev: 2, Gen: 9},
		CRC: bp.CRC{Kind: bp.EntryCRC32, CompressedSize: 128, UncompressedSize: 128, Offset: 5, LiveSize: 100},
	}
	g := geometry(v1_9, bp.ShiftA, 256, 512)
	pos, got := g.ExpectedBP(bp.BtreeExtents, 0, &k, &d, 0)
	wantPos := bp.Pos{Inode: 2, Offset: 262181893}
	if pos != wantPos {
		t.Errorf("bp pos %v, want %v", pos, wantPos)
	}
	want := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataUser, BucketOffset: 37893, BucketLen: 100, Pos: k.Pos}
	if got != want {
		t.Errorf("A value:\n got %+v\nwant %+v", got, want)
	}
	if dev, bucket := g.BucketOfBP(pos, 256); dev != 2 || bucket != 1000 {
		t.Errorf("BucketOfBP = %d:%d, want 2:1000", dev, bucket)
	}
	// The key position is the bucket start (<<10) plus bucket_offset.
	if pos.Offset != 1000*256<<10+got.BucketOffset {
		t.Errorf("pos %d != bucket start + bucket_offset %d", pos.Offset, got.BucketOffset)
	}

	// Compressed 30/128, live size 100: bucket_len = ceil(100*30/128) = 24.
	dc := d
	dc.CRC.CompressedSize, dc.CRC.CompressionType = 30, 3 // lz4
	if _, got := g.ExpectedBP(bp.BtreeExtents, 0, &k, &dc, 0); got.BucketLen != 24 {
		t.Errorf("compressed bucket_len %d, want 24", got.BucketLen)
	}
	// Incompressible is not compressed: the live size counts.
	dc.CRC.CompressionType = bp.CompressionIncompressible
	if _, got := g.ExpectedBP(bp.BtreeExtents, 0, &k, &dc, 0); got.BucketLen != 100 {
		t.Errorf("incompressible bucket_len %d, want 100", got.BucketLen)
	}

	// Format B, shift 10: same position, gen instead of bucket_offset.
	gb := geometry(v1_36, bp.ShiftA, 256, 512)
	posB, gotB := gb.ExpectedBP(bp.BtreeExtents, 0, &k, &d, 0)
	wantB := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataUser, BucketGen: 9, BucketLen: 100, Pos: k.Pos}
	if posB != wantPos || gotB != wantB {
		t.Errorf("B: pos %v value %+v", posB, gotB)
	}
	// Format B with extent_bp_shift 16.
	g16 := geometry(v1_36, 16, 256, 512)
	pos16, _ := g16.ExpectedBP(bp.BtreeExtents, 0, &k, &d, 0)
	if pos16.Offset != 256037<<16+5 {
		t.Errorf("shift 16: pos %v", pos16)
	}
	if _, bucket := g16.BucketOfBP(pos16, 256); bucket != 1000 {
		t.Errorf("shift 16: bucket %d", bucket)
	}
	// Reconcile flags only for rotational members (dev 1 here) at level 0.
	dr := d
	dr.Ptr.Dev = 1
	if _, v := gb.ExpectedBP(bp.BtreeExtents, 0, &k, &dr, 2); v.Flags != 2 {
		t.Errorf("rotational reconcile flags %d, want 2", v.Flags)
	}
	if _, v := gb.ExpectedBP(bp.BtreeExtents, 0, &k, &d, 2); v.Flags != 0 {
		t.Errorf("non-rotational reconcile flags %d, want 0", v.Flags)
	}
}

// TestExpectedBPStripe: erasure-coded pointers, including format B's dev
// 255 pointers whose backpointer position comes from the stripe (from
// metadata 1.37 erasure_coding on; v1.36.1's bch2_extent_ptr_to_bp has
// neither the flags nor the position rewrite).
func TestExpectedBPStripe(t *testing.T) {
	{
		k := bp.Key{Type: bp.KeyExtent, Size: 8, Pos: bp.Pos{Inode: 1, Offset: 8}}
		d := bp.DecodedPtr{Ptr: bp.Ptr{Offset: 1000, Dev: 0}, CRC: bp.CRC{CompressedSize: 8, UncompressedSize: 8, LiveSize: 8},
			HasStripe: true, Stripe: bp.StripePtr{Block: 3, Idx: 77}}
		g := geometry(v1_36, bp.ShiftA, 256, 512)
		if pos, v := g.ExpectedBP(bp.BtreeExtents, 0, &k, &d, 0); v.Flags != 0 || v.DataType != bp.DataStripe || pos != (bp.Pos{Inode: 0, Offset: 1000 << 10}) {
			t.Errorf("1.36 stripe pointer: pos %v value %+v", pos, v)
		}
	}
	const v1_37 = 1<<10 | 37
	k := bp.Key{Type: bp.KeyExtent, Size: 8, Pos: bp.Pos{Inode: 1, Offset: 8}}
	d := bp.DecodedPtr{
		Ptr:       bp.Ptr{Offset: 1000, Dev: 255},
		CRC:       bp.CRC{CompressedSize: 8, UncompressedSize: 8, LiveSize: 8},
		HasStripe: true, Stripe: bp.StripePtr{Block: 3, Idx: 77},
	}
	gb := geometry(v1_37, bp.ShiftA, 256, 512)
	pos, v := gb.ExpectedBP(bp.BtreeExtents, 0, &k, &d, 0)
	if pos != (bp.Pos{Inode: 77<<8 | 3, Offset: 1000 << 10}) {
		t.Errorf("dev 255 stripe pos %v", pos)
	}
	if v.DataType != bp.DataStripe || v.Flags != bp.BPFlagErasureCoded|bp.BPFlagStripePtr {
		t.Errorf("dev 255 stripe value %+v", v)
	}
	if !gb.NeedsBP(&d) {
		t.Error("B: dev 255 pointer with stripe_ptr needs a bp")
	}
	d.Ptr.Dev = 0
	if _, v := gb.ExpectedBP(bp.BtreeExtents, 0, &k, &d, 0); v.Flags != bp.BPFlagErasureCoded {
		t.Errorf("dev 0 stripe flags %d", v.Flags)
	}
	// Format A: no position rewrite, no flags.
	d.Ptr.Dev = 255
	ga := geometry(v1_9, bp.ShiftA, 256, 512)
	if pos, _ := ga.ExpectedBP(bp.BtreeExtents, 0, &k, &d, 0); pos.Inode != 255 {
		t.Errorf("A: dev 255 pos %v", pos)
	}
	if ga.NeedsBP(&d) {
		t.Error("A: dev 255 pointer needs no bp")
	}
	d.HasStripe = false
	if gb.NeedsBP(&d) {
		t.Error("B: dev 255 pointer without stripe_ptr needs no bp")
	}
}

// TestCachedPointers: format A and format B before 1.21 keep no
// backpointers for cached pointers; from 1.21 they do, with data type
// cached.
func TestCachedPointers(t *testing.T) {
	k := bp.Key{Type: bp.KeyExtent, Size: 16, Pos: bp.Pos{Inode: 4096, Offset: 16, Snapshot: math.MaxUint32}}
	cached := bp.DecodedPtr{Ptr: bp.Ptr{Offset: 512, Dev: 0, Gen: 3, Cached: true}, CRC: bp.CRC{CompressedSize: 16, UncompressedSize: 16, LiveSize: 16}}
	dirty := cached
	dirty.Ptr.Cached = false
	for _, tc := range []struct {
		version uint16
		needs   bool
		dt      bp.DataType
	}{
		{v1_9, false, bp.DataUser},
		{v1_13, false, bp.DataUser},
		{bp.VersionBackpointerBucketGen, false, bp.DataCached},
		{v1_20, false, bp.DataCached},
		{bp.VersionCachedBackpointers, true, bp.DataCached},
		{v1_36, true, bp.DataCached},
	} {
		g := geometry(tc.version, bp.ShiftA, 256, 512)
		if got := g.NeedsBP(&cached); got != tc.needs {
			t.Errorf("%s: NeedsBP(cached) = %v, want %v", bp.VersionString(tc.version), got, tc.needs)
		}
		if !g.NeedsBP(&dirty) {
			t.Errorf("%s: NeedsBP(dirty) = false", bp.VersionString(tc.version))
		}
		if _, v := g.ExpectedBP(bp.BtreeExtents, 0, &k, &cached, 0); v.DataType != tc.dt {
			t.Errorf("%s: cached data type %v, want %v", bp.VersionString(tc.version), v.DataType, tc.dt)
		}
		if _, v := g.ExpectedBP(bp.BtreeExtents, 0, &k, &dirty, 0); v.DataType != bp.DataUser {
			t.Errorf("%s: dirty data type %v", bp.VersionString(tc.version), v.DataType)
		}
	}
}

// TestBtreePtrBP: a btree node pointer records level = node level + 1 and
// bucket_len = the whole node size, whatever the key's size.
func TestBtreePtrBP(t *testing.T) {
	k := bp.Key{Type: bp.KeyBtreePtrV2, Pos: bp.SPosMax}
	d := bp.DecodedPtr{Ptr: bp.Ptr{Offset: 5*256 + 128, Dev: 0, Gen: 1}, CRC: bp.CRC{}}
	for _, tc := range []struct {
		version uint16
		nodeSec uint32
	}{{v1_9, 512}, {v1_36, 256}} {
		g := geometry(tc.version, bp.ShiftA, 256, tc.nodeSec)
		pos, v := g.ExpectedBP(bp.BtreeAlloc, 2, &k, &d, 3)
		if v.Level != 2 || v.DataType != bp.DataBtree || v.BucketLen != tc.nodeSec || v.BtreeID != bp.BtreeAlloc || v.Pos != bp.SPosMax {
			t.Errorf("%s: %+v", bp.VersionString(tc.version), v)
		}
		if pos != (bp.Pos{Offset: (5*256 + 128) << 10}) {
			t.Errorf("%s: pos %v", bp.VersionString(tc.version), pos)
		}
		if g.FormatB() {
			if v.Flags != 0 || v.BucketGen != 1 {
				t.Errorf("B btree ptr: flags %d gen %d", v.Flags, v.BucketGen)
			}
		} else if v.BucketOffset != 128<<10 {
			t.Errorf("A btree ptr: bucket_offset %d", v.BucketOffset)
		}
	}
	// A v1 btree_ptr is a btree pointer too.
	k.Type = bp.KeyBtreePtr
	if _, v := geometry(v1_9, bp.ShiftA, 256, 512).ExpectedBP(bp.BtreeExtents, 1, &k, &d, 0); v.DataType != bp.DataBtree || v.BucketLen != 512 {
		t.Errorf("btree_ptr v1: %+v", v)
	}
}

// TestDecodeBtreePtrV2AndStripe decodes btree_ptr_v2 and stripe headers and
// rejects values too short for them.
func TestDecodeBtreePtrV2AndStripe(t *testing.T) {
	v := make([]byte, bp.BtreePtrV2Bytes+8)
	le := binary.LittleEndian
	le.PutUint64(v[0:], 0xffff) // mem_ptr
	le.PutUint64(v[8:], 0x1234567890)
	le.PutUint16(v[16:], 24)
	le.PutUint16(v[18:], bp.BtreePtrRangeUpdated)
	minKey := bp.Pos{Inode: 1, Offset: 2, Snapshot: 3}
	minKey.Put(v[20:])
	got, err := bp.DecodeBtreePtrV2(v)
	want := bp.BtreePtrV2{MemPtr: 0xffff, Seq: 0x1234567890, SectorsWritten: 24, Flags: 1, MinKey: minKey}
	if err != nil || got != want {
		t.Errorf("DecodeBtreePtrV2 = %+v, %v", got, err)
	}
	if _, err := bp.DecodeBtreePtrV2(v[:39]); !errors.Is(err, bp.ErrKey) {
		t.Errorf("39 bytes: %v", err)
	}

	s := []byte{0x00, 0x01, 2, 3, 1, 12, 5, 0}
	s = append(s, le64s(ptrWord(1, 0, 0, false, false), ptrWord(2, 1, 0, false, false), ptrWord(3, 2, 0, false, false))...)
	s = append(s, 0xaa, 0xbb) // checksums etc. follow the pointers
	st, ptrs, err := bp.DecodeStripe(s)
	wantS := bp.Stripe{Sectors: 256, Algorithm: 2, NrBlocks: 3, NrRedundant: 1, CsumGranBit: 12, CsumType: 5}
	if err != nil || st != wantS || len(ptrs) != 24 || &ptrs[0] != &s[8] {
		t.Errorf("DecodeStripe = %+v, %d ptr bytes, %v", st, len(ptrs), err)
	}
	if st.NeedsReconcile() {
		t.Error("algorithm 2 read as needs_reconcile")
	}
	for b, want := range map[byte]bool{0x10: true, 0x12: true, 0xe0: false, 0xef: false, 0xf0: true} {
		st := bp.Stripe{Algorithm: b}
		if st.NeedsReconcile() != want {
			t.Errorf("byte 2 %#02x: NeedsReconcile %v, want %v (algorithm:4 | needs_reconcile:1 | can_widen:3)", b, !want, want)
		}
	}
	if _, _, err := bp.DecodeStripe(s[:31]); !errors.Is(err, bp.ErrKey) {
		t.Errorf("stripe cut in its pointers: %v", err)
	}
	if _, _, err := bp.DecodeStripe(s[:7]); !errors.Is(err, bp.ErrKey) {
		t.Errorf("stripe header cut: %v", err)
	}
}

// TestEraOf: each metadata version gets the fsck that judged its cases.
func TestEraOf(t *testing.T) {
	for _, tc := range []struct {
		v    uint16
		want string
	}{
		{bp.VersionMin, "bcachefs-tools v1.9.4"}, {1<<10 | 12, "bcachefs-tools v1.9.4"}, {1<<10 | 13, "bcachefs-tools v1.13.0"},
		{1<<10 | 14, "bcachefs-tools v1.25.3"}, {1<<10 | 28, "bcachefs-tools v1.25.3"},
		{1<<10 | 29, "bcachefs-tools v1.31.13"}, {1<<10 | 31, "bcachefs-tools v1.31.13"},
		{1<<10 | 32, "bcachefs-tools v1.36.1"}, {1<<10 | 35, "bcachefs-tools v1.36.1"}, {1<<10 | 36, "bcachefs-tools v1.36.1"},
		{1<<10 | 37, "bcachefs-tools v1.39.2"}, {1<<10 | 39, "bcachefs-tools v1.39.2"}, {1<<10 | 40, "bcachefs-tools v1.39.2"},
	} {
		if got := bp.EraOf(tc.v).Tools; got != tc.want {
			t.Errorf("EraOf(%s) = %s, want %s", bp.VersionString(tc.v), got, tc.want)
		}
	}
	if got := bp.EraOf(1<<10 | 30).String(); got != "bcachefs-tools v1.31.13 (metadata 1.29-1.31)" {
		t.Errorf("era of 1.30: %q", got)
	}
	if got := bp.EraOf(1<<10 | 13).String(); got != "bcachefs-tools v1.13.0 (metadata 1.13)" {
		t.Errorf("era of 1.13: %q", got)
	}
}
