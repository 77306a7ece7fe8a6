package csum

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// crc64Bitwise is the slow bit-at-a-time reference for CRC64BE.
func crc64Bitwise(crc uint64, p []byte) uint64 {
	for _, b := range p {
		crc ^= uint64(b) << 56
		for range 8 {
			if crc&(1<<63) != 0 {
				crc = crc<<1 ^ crc64Poly
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// crc32cBitwise is a slow bit-at-a-time reference for the raw reflected
// Castagnoli update.
func crc32cBitwise(crc uint32, p []byte) uint32 {
	for _, b := range p {
		crc ^= uint32(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82F63B78
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

var unkeyed = []Type{None, CRC32CNonzero, CRC64Nonzero, CRC32C, CRC64, XXHash}

func TestVectors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want map[Type]uint64
	}{
		{"123456789", []byte("123456789"), map[Type]uint64{
			CRC32C:        0x58e3fa20,
			CRC32CNonzero: 0xe3069283,
			CRC64:         0x6c40df5f0b497347,
			CRC64Nonzero:  0x62ec59e3f1a4f00a,
			XXHash:        0x8cb841db40e6ae83,
			None:          0,
		}},
		{"empty", nil, map[Type]uint64{
			CRC32C:        0,
			CRC32CNonzero: 0,
			CRC64:         0,
			CRC64Nonzero:  0,
			XXHash:        0xef46db3751d8e999,
			None:          0,
		}},
		{"8 zero bytes", make([]byte, 8), map[Type]uint64{
			CRC32C:        0,
			CRC32CNonzero: 0x8c28b28a,
			CRC64:         0,
			CRC64Nonzero:  0x03534142a6ce566d,
			XXHash:        0x34c96acdcadb1bbb,
			None:          0,
		}},
	}
	for _, tc := range tests {
		for typ, want := range tc.want {
			t.Run(tc.name+"/"+typ.String(), func(t *testing.T) {
				got, err := Compute(typ, tc.in)
				if err != nil {
					t.Fatal(err)
				}
				if got != (Sum{Lo: want}) {
					t.Errorf("Compute = %v, want lo=%016x hi=0", got, want)
				}
				h, err := New(typ)
				if err != nil {
					t.Fatal(err)
				}
				h.Write(tc.in)
				if hs := h.Sum(); hs != got {
					t.Errorf("Hasher.Sum = %v, want %v", hs, got)
				}
			})
		}
	}
}

func TestPrimitives(t *testing.T) {
	in := []byte("123456789")
	if got := CRC32CUpdate(0, in); got != 0x58e3fa20 {
		t.Errorf("CRC32CUpdate(0) = %08x", got)
	}
	if got := CRC32CUpdate(0xFFFFFFFF, in) ^ 0xFFFFFFFF; got != crc32.Checksum(in, crc32.MakeTable(crc32.Castagnoli)) {
		t.Errorf("CRC32CUpdate(~0)^~0 = %08x, want standard CRC-32C", got)
	}
	if got := CRC64BE(0, in); got != 0x6c40df5f0b497347 {
		t.Errorf("CRC64BE(0) = %016x", got)
	}
	if got := ^CRC64BE(^uint64(0), in); got != 0x62ec59e3f1a4f00a {
		t.Errorf("^CRC64BE(^0) = %016x", got)
	}
	// Raw updates chain: update(update(s, a), b) == update(s, a||b).
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		buf := randBytes(rng, rng.IntN(500))
		cut := rng.IntN(len(buf) + 1)
		s32 := rng.Uint32()
		if got, want := CRC32CUpdate(CRC32CUpdate(s32, buf[:cut]), buf[cut:]), crc32cBitwise(s32, buf); got != want {
			t.Fatalf("CRC32CUpdate chain len=%d cut=%d: %08x want %08x", len(buf), cut, got, want)
		}
		s64 := rng.Uint64()
		if got, want := CRC64BE(CRC64BE(s64, buf[:cut]), buf[cut:]), crc64Bitwise(s64, buf); got != want {
			t.Fatalf("CRC64BE chain len=%d cut=%d: %016x want %016x", len(buf), cut, got, want)
		}
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
	return b
}

func TestCRC64Lengths(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	buf := randBytes(rng, 300+8)
	for off := range 8 {
		for n := 0; n <= 300; n++ {
			p := buf[off : off+n]
			for _, seed := range []uint64{0, ^uint64(0), 0x0123456789abcdef} {
				want := crc64Bitwise(seed, p)
				if got := crc64Generic(seed, p); got != want {
					t.Fatalf("crc64Generic off=%d len=%d seed=%x: %016x want %016x", off, n, seed, got, want)
				}
				if got := CRC64BE(seed, p); got != want {
					t.Fatalf("CRC64BE off=%d len=%d seed=%x: %016x want %016x", off, n, seed, got, want)
				}
			}
		}
	}
}

func TestCRC64Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	iters := 100
	if testing.Short() {
		iters = 10
	}
	for range iters {
		n := rng.IntN(64<<10 + 1)
		buf := randBytes(rng, n)
		seed := rng.Uint64()
		want := crc64Bitwise(seed, buf)
		if got := crc64Generic(seed, buf); got != want {
			t.Fatalf("crc64Generic len=%d: %016x want %016x", n, got, want)
		}
		if got := CRC64BE(seed, buf); got != want {
			t.Fatalf("CRC64BE len=%d: %016x want %016x", n, got, want)
		}
	}
	// Full 64 KiB buffer too.
	buf := randBytes(rng, 64<<10)
	if got, want := CRC64BE(0, buf), crc64Bitwise(0, buf); got != want {
		t.Fatalf("CRC64BE 64KiB: %016x want %016x", got, want)
	}
}

// checkSplit verifies that streaming data through a Hasher in the pieces
// given by cuts gives the same result as Compute.
func checkSplit(t testing.TB, typ Type, data []byte, cuts []int) {
	t.Helper()
	want, err := Compute(typ, data)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(typ)
	if err != nil {
		t.Fatal(err)
	}
	prev := 0
	for _, c := range cuts {
		h.Write(data[prev:c])
		prev = c
	}
	h.Write(data[prev:])
	if got := h.Sum(); got != want {
		t.Fatalf("type %v len=%d cuts=%v: Hasher %v, Compute %v", typ, len(data), cuts, got, want)
	}
	// Sum must not disturb the state, and Reset must restart cleanly.
	if got := h.Sum(); got != want {
		t.Fatalf("type %v: second Sum %v, want %v", typ, got, want)
	}
	h.Reset()
	h.Write(data)
	if got := h.Sum(); got != want {
		t.Fatalf("type %v: after Reset %v, want %v", typ, got, want)
	}
}

func TestHasherSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	data := randBytes(rng, 1000)
	for _, typ := range unkeyed {
		t.Run(typ.String(), func(t *testing.T) {
			// Every single cut point in a short buffer.
			short := data[:100]
			for c := 0; c <= len(short); c++ {
				checkSplit(t, typ, short, []int{c})
			}
			// Random multi-way splits, including empty pieces.
			for range 200 {
				n := rng.IntN(len(data) + 1)
				k := rng.IntN(6)
				cuts := make([]int, k)
				for i := range cuts {
					cuts[i] = rng.IntN(n + 1)
				}
				for i := 1; i < len(cuts); i++ { // insertion sort
					for j := i; j > 0 && cuts[j] < cuts[j-1]; j-- {
						cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
					}
				}
				checkSplit(t, typ, data[:n], cuts)
			}
			// Byte-at-a-time.
			cuts := make([]int, 0, 64)
			for i := 1; i < 64; i++ {
				cuts = append(cuts, i)
			}
			checkSplit(t, typ, data[:64], cuts)
		})
	}
}

func TestTypeMethods(t *testing.T) {
	names := []string{"none", "crc32c_nonzero", "crc64_nonzero", "chacha20_poly1305_80",
		"chacha20_poly1305_128", "crc32c", "crc64", "xxhash"}
	sizes := []int{0, 4, 8, 10, 16, 4, 8, 8}
	for i := range 256 {
		typ := Type(i)
		valid := i <= 7
		if typ.Valid() != valid {
			t.Errorf("Type(%d).Valid() = %v", i, typ.Valid())
		}
		if typ.Keyed() != (i == 3 || i == 4) {
			t.Errorf("Type(%d).Keyed() = %v", i, typ.Keyed())
		}
		wantName, wantSize := fmt.Sprintf("Type(%d)", i), 0
		if valid {
			wantName, wantSize = names[i], sizes[i]
		}
		if typ.String() != wantName {
			t.Errorf("Type(%d).String() = %q, want %q", i, typ.String(), wantName)
		}
		if typ.Size() != wantSize {
			t.Errorf("Type(%d).Size() = %d, want %d", i, typ.Size(), wantSize)
		}
	}
}

func TestErrors(t *testing.T) {
	data := []byte("abc")
	for _, typ := range []Type{ChaCha20Poly1305_80, ChaCha20Poly1305_128} {
		if _, err := Compute(typ, data); !errors.Is(err, ErrKeyed) {
			t.Errorf("Compute(%v) err = %v, want ErrKeyed", typ, err)
		}
		if h, err := New(typ); !errors.Is(err, ErrKeyed) || h != nil {
			t.Errorf("New(%v) = %v, %v, want nil, ErrKeyed", typ, h, err)
		}
	}
	for i := 8; i < 256; i++ {
		typ := Type(i)
		if s, err := Compute(typ, data); !errors.Is(err, ErrUnknownType) || !s.IsZero() {
			t.Errorf("Compute(%d) = %v, %v, want zero, ErrUnknownType", i, s, err)
		}
		if h, err := New(typ); !errors.Is(err, ErrUnknownType) || h != nil {
			t.Errorf("New(%d) = %v, %v, want nil, ErrUnknownType", i, h, err)
		}
	}
	for _, typ := range unkeyed {
		if _, err := Compute(typ, data); err != nil {
			t.Errorf("Compute(%v) err = %v", typ, err)
		}
	}
}

func TestSum(t *testing.T) {
	b := []byte{
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		0xff, // trailing bytes ignored
	}
	s := SumFromBytes(b)
	if s.Lo != 0x0807060504030201 || s.Hi != 0x1817161514131211 {
		t.Errorf("SumFromBytes = %v", s)
	}
	if s.IsZero() {
		t.Error("IsZero on non-zero sum")
	}
	if !SumFromBytes(make([]byte, 16)).IsZero() {
		t.Error("IsZero on zero sum")
	}
	if (Sum{Hi: 1}).IsZero() || (Sum{Lo: 1}).IsZero() {
		t.Error("IsZero with one half set")
	}
	// Short input must not panic.
	if got := SumFromBytes([]byte{1, 2}); got != (Sum{Lo: 0x0201}) {
		t.Errorf("SumFromBytes(short) = %v", got)
	}
	if !SumFromBytes(nil).IsZero() {
		t.Error("SumFromBytes(nil) not zero")
	}
	// Round trip of a computed checksum through its on-disk encoding.
	sum, _ := Compute(CRC64, []byte("123456789"))
	var enc [16]byte
	binary.LittleEndian.PutUint64(enc[:8], sum.Lo)
	binary.LittleEndian.PutUint64(enc[8:], sum.Hi)
	if SumFromBytes(enc[:]) != sum {
		t.Error("SumFromBytes round trip failed")
	}
}

func TestDispatch(t *testing.T) {
	if crc64Update == nil {
		t.Fatal("crc64Update not initialised")
	}
	buf := bytes.Repeat([]byte("bcachefs"), 1000)
	if got, want := crc64Update(0, buf), crc64Generic(0, buf); got != want {
		t.Errorf("crc64Update = %016x, crc64Generic = %016x", got, want)
	}
}

func FuzzCRC64(f *testing.F) {
	f.Add([]byte("123456789"), uint64(0), uint16(4))
	f.Add([]byte{}, ^uint64(0), uint16(0))
	f.Add(make([]byte, 8), ^uint64(0), uint16(3))
	f.Add(bytes.Repeat([]byte{0xa5}, 257), uint64(0x0123456789abcdef), uint16(129))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, split uint16) {
		want := crc64Bitwise(seed, data)
		if got := crc64Generic(seed, data); got != want {
			t.Fatalf("crc64Generic = %016x, bitwise = %016x", got, want)
		}
		if got := CRC64BE(seed, data); got != want {
			t.Fatalf("CRC64BE = %016x, bitwise = %016x", got, want)
		}
		cut := 0
		if len(data) > 0 {
			cut = int(split) % (len(data) + 1)
		}
		if got := CRC64BE(CRC64BE(seed, data[:cut]), data[cut:]); got != want {
			t.Fatalf("split at %d: %016x, want %016x", cut, got, want)
		}
		for _, typ := range unkeyed {
			checkSplit(t, typ, data, []int{cut})
		}
	})
}

func BenchmarkCompute(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, typ := range []Type{CRC32C, CRC32CNonzero, CRC64, CRC64Nonzero, XXHash} {
		for _, size := range []int{64, 4096, 65536} {
			data := randBytes(rng, size)
			b.Run(fmt.Sprintf("type=%v/size=%d", typ, size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := Compute(typ, data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
