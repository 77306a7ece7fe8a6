package csum

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

type crc64Impl struct {
	name string
	fn   func(uint64, []byte) uint64
}

// crc64Impls lists every CRC64BE path this build and CPU can run.
func crc64Impls(t testing.TB) []crc64Impl {
	impls := []crc64Impl{{"generic", crc64Generic}}
	if useFast {
		impls = append(impls, crc64Impl{"fast", crc64UpdateFast})
	} else {
		t.Logf("no carry-less multiply path on this build/CPU; checking generic only")
	}
	return impls
}

// checkCRC64 compares every implementation with the bitwise reference.
func checkCRC64(t *testing.T, impls []crc64Impl, crc uint64, p []byte, what string) {
	t.Helper()
	want := crc64Bitwise(crc, p)
	for _, im := range impls {
		if got := im.fn(crc, p); got != want {
			t.Fatalf("%s %s len=%d crc=%016x: %016x, want %016x", im.name, what, len(p), crc, got, want)
		}
	}
}

// TestCRC64AllLengthsAlignments covers every length 0..1024 at every
// alignment 0..15, which includes every cutoff of the fast path
// (crc64FastMin, 16-byte blocks, the 128-byte 8-lane loop).
func TestCRC64AllLengthsAlignments(t *testing.T) {
	impls := crc64Impls(t)
	rng := rand.New(rand.NewPCG(21, 22))
	const maxLen = 1024
	// 16-byte aligned backing store so that off is the real alignment.
	raw := randBytes(rng, maxLen+64)
	base := raw[(16-int(uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%16))%16:]
	for off := range 16 {
		for n := 0; n <= maxLen; n++ {
			checkCRC64(t, impls, rng.Uint64(), base[off:off+n], fmt.Sprintf("off=%d", off))
		}
	}
}

// TestCRC64Cutoffs checks lengths around the cutoffs and around multiples
// of the 128-byte block well beyond 1024, with 0, ^0 and random crcs.
func TestCRC64Cutoffs(t *testing.T) {
	impls := crc64Impls(t)
	rng := rand.New(rand.NewPCG(23, 24))
	buf := randBytes(rng, 70000)
	var lens []int
	for _, c := range []int{16, 32, 48, crc64FastMin, 112, 128, 144, 240, 256, 2048, 4096, 65536} {
		for d := -17; d <= 17; d++ {
			if c+d >= 0 {
				lens = append(lens, c+d)
			}
		}
	}
	for _, n := range lens {
		offs, crcs := []int{0, 1, 7, 8, 15}, []uint64{0, ^uint64(0), rng.Uint64()}
		if n > 8192 { // keep the bitwise reference affordable
			offs, crcs = []int{0, 15}, crcs[2:]
		}
		for _, off := range offs {
			for _, crc := range crcs {
				checkCRC64(t, impls, crc, buf[off:off+n], fmt.Sprintf("off=%d", off))
			}
		}
	}
}

// TestCRC64Large compares the paths on 1 MiB random buffers at several
// offsets; the bitwise reference is checked once.
func TestCRC64Large(t *testing.T) {
	impls := crc64Impls(t)
	rng := rand.New(rand.NewPCG(25, 26))
	buf := randBytes(rng, 1<<20+16)
	checkCRC64(t, impls, rng.Uint64(), buf[:1<<20], "1MiB")
	iters := 8
	if testing.Short() {
		iters = 2
	}
	for i := range iters {
		p := buf[i*3%16 : 1<<20-rng.IntN(300)]
		crc := rng.Uint64()
		want := crc64Generic(crc, p)
		for _, im := range impls {
			if got := im.fn(crc, p); got != want {
				t.Fatalf("%s len=%d: %016x, generic %016x", im.name, len(p), got, want)
			}
		}
	}
}

// TestCRC64FastChain checks that fast updates chain at arbitrary cuts.
func TestCRC64FastChain(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	buf := randBytes(rng, 5000)
	for range 500 {
		n := rng.IntN(len(buf) + 1)
		a, b := rng.IntN(n+1), rng.IntN(n+1)
		if a > b {
			a, b = b, a
		}
		crc := rng.Uint64()
		got := crc64UpdateFast(crc64UpdateFast(crc64UpdateFast(crc, buf[:a]), buf[a:b]), buf[b:n])
		if want := crc64Generic(crc, buf[:n]); got != want {
			t.Fatalf("len=%d cuts=%d,%d: %016x, want %016x", n, a, b, got, want)
		}
	}
}

// TestCRC64FastVectors runs the type 2 and 6 check values through each
// path, on their own and repeated past the fast path's cutoffs.
func TestCRC64FastVectors(t *testing.T) {
	for _, im := range crc64Impls(t) {
		in := []byte("123456789")
		if got := im.fn(0, in); got != 0x6c40df5f0b497347 {
			t.Errorf("%s crc64(123456789) = %016x", im.name, got)
		}
		if got := ^im.fn(^uint64(0), in); got != 0x62ec59e3f1a4f00a {
			t.Errorf("%s crc64_nonzero(123456789) = %016x", im.name, got)
		}
		if got := ^im.fn(^uint64(0), make([]byte, 8)); got != 0x03534142a6ce566d {
			t.Errorf("%s crc64_nonzero(8 zeros) = %016x", im.name, got)
		}
		long := bytes.Repeat(in, 1000)
		for _, seed := range []uint64{0, ^uint64(0)} {
			if got, want := im.fn(seed, long), crc64Bitwise(seed, long); got != want {
				t.Errorf("%s seed=%x 9000 bytes = %016x, want %016x", im.name, seed, got, want)
			}
		}
	}
	for _, typ := range []Type{CRC64, CRC64Nonzero} {
		data := bytes.Repeat([]byte("bcachefs"), 512)
		want := crc64Bitwise(0, data)
		if typ == CRC64Nonzero {
			want = ^crc64Bitwise(^uint64(0), data)
		}
		if got, err := Compute(typ, data); err != nil || got != (Sum{Lo: want}) {
			t.Errorf("Compute(%v, 4 KiB) = %v, %v, want %016x", typ, got, err, want)
		}
	}
}

func FuzzCRC64Fast(f *testing.F) {
	f.Add(uint64(0), []byte("123456789"))
	f.Add(^uint64(0), make([]byte, 64))
	f.Add(uint64(0x0123456789abcdef), bytes.Repeat([]byte{0xa5}, 257))
	f.Add(uint64(1), bytes.Repeat([]byte{0xff, 0}, 100))
	f.Fuzz(func(t *testing.T, crc uint64, data []byte) {
		want := crc64Generic(crc, data)
		if got := crc64UpdateFast(crc, data); got != want {
			t.Fatalf("fast = %016x, generic = %016x (len %d)", got, want, len(data))
		}
		// Odd alignments of the same bytes.
		if len(data) > 1 {
			if got, want := crc64UpdateFast(crc, data[1:]), crc64Generic(crc, data[1:]); got != want {
				t.Fatalf("fast[1:] = %016x, generic = %016x", got, want)
			}
		}
	})
}

func BenchmarkCRC64(b *testing.B) {
	rng := rand.New(rand.NewPCG(29, 30))
	impls := []crc64Impl{{"generic", crc64Generic}, {"fast", crc64UpdateFast}}
	sizes := []struct {
		name string
		n    int
	}{{"64", 64}, {"4096", 4096}, {"65536", 65536}, {"1MiB", 1 << 20}}
	for _, im := range impls {
		for _, sz := range sizes {
			data := randBytes(rng, sz.n)
			b.Run("impl="+im.name+"/size="+sz.name, func(b *testing.B) {
				if im.name == "fast" && !useFast {
					b.Skip("no carry-less multiply path on this build/CPU")
				}
				b.SetBytes(int64(sz.n))
				crc := uint64(0)
				for b.Loop() {
					crc = im.fn(crc, data)
				}
			})
		}
	}
}
