package csum

// Derivation of the constants used by the carry-less multiply (CLMUL)
// implementation of CRC64BE, and a pure-Go model of the folding algorithm
// that the assembly implements. Everything here is portable, so the
// mathematics is checked on every platform and with -tags noasm; the
// comparison with the hard-coded table used by the assembly (and the
// generator that writes it) is in crc64_amd64_test.go.
//
// Notation: polynomials over GF(2), bit i of an integer is the coefficient
// of x^i. P = x^64 + crc64Poly. For a message M of n bytes (first byte =
// highest-degree coefficients, MSB first) the raw crc64_be update is
//
//	update(crc, M) = (crc·x^(8n) + M·x^64) mod P.
//
// Folding: split M into 128-bit blocks (each loaded with its bytes reversed
// so that the first byte lands in bits 127..120). A 128-bit value
// A = H·x^64 + L that still has to be multiplied by x^D (because D more
// bits follow it) satisfies
//
//	A·x^D ≡ H·(x^(D+64) mod P) + L·(x^D mod P)   (mod P),
//
// and each product is a 64×64 → 127-bit carry-less multiply, so the sum
// again fits in 128 bits and can be XORed into the block D bits further
// on. The fold distances used are D = 1024 (8 lanes of 16 bytes, 128 bytes
// per step), D = 896, 768, …, 128 (collapsing lanes 0..6 onto lane 7) and
// D = 128 (one 16-byte block at a time). At the end a single 128-bit A
// remains with M ≡ A, and the CRC is A·x^64 mod P:
//
//	T = H·(x^128 mod P) + L·x^64          (a 128-bit value, ≡ A·x^64)
//	crc = T mod P                          (Barrett reduction)
//
// Barrett: with μ = floor(x^128 / P) = x^64 + μ' and T = Th·x^64 + Tl,
// the quotient is q = floor(Th·μ / x^64) = Th + hi64(Th·μ'), and
// T mod P = Tl + lo64(q·crc64Poly) (the x^64 term of P only affects bits
// above 63, which cancel).
//
// x^k mod P is computed by shifting 1 left k times and subtracting P
// whenever the x^64 coefficient appears; the bits that fall out of the top
// form floor(x^k / P), which gives μ. Both are cross-checked below against
// independent computations (the CRC of zero bytes, and μ·P = x^128 + r
// with deg r < 64).

import (
	"math/rand/v2"
	"testing"
)

// xnDivModP returns floor(x^n / P) mod x^64 and x^n mod P.
func xnDivModP(n int) (quo, rem uint64) {
	rem = 1
	for range n {
		carry := rem >> 63
		rem <<= 1
		quo = quo<<1 | carry
		if carry != 0 {
			rem ^= crc64Poly
		}
	}
	return quo, rem
}

// xnModP returns x^n mod P.
func xnModP(n int) uint64 {
	_, r := xnDivModP(n)
	return r
}

// crc64BarrettMu returns μ' = floor(x^128 / P) − x^64.
func crc64BarrettMu() uint64 {
	q, _ := xnDivModP(128)
	return q
}

// crc64FoldDistances are the fold distances in bits, in the order in which
// their constant pairs appear in the table: the 8-lane loop, then lanes
// 0..6 onto lane 7 (the last of which, 128, is also the 1-lane fold and
// supplies x^128 mod P for the final step).
var crc64FoldDistances = [...]int{1024, 896, 768, 640, 512, 384, 256, 128}

// Byte-reversal mask for PSHUFB: result byte i = source byte 15-i.
const (
	crc64BswapLo = 0x08090a0b0c0d0e0f
	crc64BswapHi = 0x0001020304050607
)

// deriveCRC64Consts computes the constant table used by the assembly:
// for each fold distance D the pair (x^D mod P, x^(D+64) mod P) as the
// (low, high) halves of an XMM register, then (μ', crc64Poly) for the
// Barrett reduction, then the PSHUFB byte-reversal mask.
func deriveCRC64Consts() [20]uint64 {
	var c [20]uint64
	for i, d := range crc64FoldDistances {
		c[2*i] = xnModP(d)
		c[2*i+1] = xnModP(d + 64)
	}
	c[16] = crc64BarrettMu()
	c[17] = crc64Poly
	c[18] = crc64BswapLo
	c[19] = crc64BswapHi
	return c
}

// clmul is a software 64×64 → 128-bit carry-less multiply (PCLMULQDQ).
func clmul(a, b uint64) (hi, lo uint64) {
	for i := range 64 {
		if b>>i&1 != 0 {
			lo ^= a << i
			if i > 0 {
				hi ^= a >> (64 - i)
			}
		}
	}
	return hi, lo
}

// u128 is a 128-bit polynomial: bit i of lo is x^i, of hi x^(64+i).
type u128 struct{ hi, lo uint64 }

func (a u128) xor(b u128) u128 { return u128{a.hi ^ b.hi, a.lo ^ b.lo} }

// fold returns a value ≡ a·x^d (mod P) using the constant pair of d.
func (a u128) fold(d int) u128 {
	h1, l1 := clmul(a.hi, xnModP(d+64))
	h2, l2 := clmul(a.lo, xnModP(d))
	return u128{h1 ^ h2, l1 ^ l2}
}

// loadBE reads 16 message bytes as a polynomial (first byte highest).
func loadBE(p []byte) u128 {
	var v u128
	for _, b := range p[:8] {
		v.hi = v.hi<<8 | uint64(b)
	}
	for _, b := range p[8:16] {
		v.lo = v.lo<<8 | uint64(b)
	}
	return v
}

// crc64Reduce returns a·x^64 mod P by the final fold and Barrett reduction.
func crc64Reduce(a u128) uint64 {
	h, l := clmul(a.hi, xnModP(128))
	t := u128{h ^ a.lo, l} // T = H·(x^128 mod P) + L·x^64
	qh, _ := clmul(t.hi, crc64BarrettMu())
	q := qh ^ t.hi
	_, ql := clmul(q, crc64Poly)
	return t.lo ^ ql
}

// crc64FoldModel is a slow pure-Go model of crc64CLMUL: same lane
// structure, same constants, for len(p) a positive multiple of 16.
func crc64FoldModel(crc uint64, p []byte) uint64 {
	var acc u128
	if len(p) >= 128 {
		var lane [8]u128
		for i := range lane {
			lane[i] = loadBE(p[16*i:])
		}
		lane[0].hi ^= crc
		p = p[128:]
		for ; len(p) >= 128; p = p[128:] {
			for i := range lane {
				lane[i] = lane[i].fold(1024).xor(loadBE(p[16*i:]))
			}
		}
		acc = lane[7]
		for i := range 7 {
			acc = acc.xor(lane[i].fold(128 * (7 - i)))
		}
	} else {
		acc = loadBE(p)
		acc.hi ^= crc
		p = p[16:]
	}
	for ; len(p) >= 16; p = p[16:] {
		acc = acc.fold(128).xor(loadBE(p))
	}
	return crc64Reduce(acc)
}

func TestCRC64ConstsDerivation(t *testing.T) {
	// x^k mod P against the CRC of zero bytes: update(1, 0^n) = x^(8n) mod P.
	for k := 64; k <= 1088; k += 64 {
		want := crc64Bitwise(1, make([]byte, k/8))
		if got := xnModP(k); got != want {
			t.Errorf("x^%d mod P = %016x, CRC of zeros gives %016x", k, got, want)
		}
	}
	// Small powers are just the monomials.
	for k := range 64 {
		if got := xnModP(k); got != 1<<k {
			t.Errorf("x^%d mod P = %016x", k, got)
		}
	}
	// μ·P = x^128 + r with deg r < 64: (x^64+μ')(x^64+P') has
	// x^64..x^127 coefficients μ' + P' + hi64(μ'·P'), which must vanish.
	mu := crc64BarrettMu()
	if h, _ := clmul(mu, crc64Poly); mu^crc64Poly^h != 0 {
		t.Errorf("μ' = %016x is not floor(x^128/P) - x^64", mu)
	}
	// Software clmul against the obvious definition via bits.
	rng := rand.New(rand.NewPCG(11, 12))
	for range 1000 {
		a, b := rng.Uint64(), rng.Uint64()
		hi, lo := clmul(a, b)
		var wh, wl uint64
		for i := range 64 {
			for j := range 64 {
				if a>>i&1 != 0 && b>>j&1 != 0 {
					if k := i + j; k < 64 {
						wl ^= 1 << k
					} else {
						wh ^= 1 << (k - 64)
					}
				}
			}
		}
		if hi != wh || lo != wl {
			t.Fatalf("clmul(%x, %x) = %x:%x, want %x:%x", a, b, hi, lo, wh, wl)
		}
	}
}

func TestCRC64FoldModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for n := 16; n <= 1024+128; n += 16 {
		p := randBytes(rng, n)
		crc := rng.Uint64()
		if got, want := crc64FoldModel(crc, p), crc64Bitwise(crc, p); got != want {
			t.Fatalf("model len=%d: %016x, want %016x", n, got, want)
		}
	}
	for range 200 {
		a := u128{rng.Uint64(), rng.Uint64()}
		var b [16]byte
		for i := range 8 {
			b[i] = byte(a.hi >> (56 - 8*i))
			b[8+i] = byte(a.lo >> (56 - 8*i))
		}
		if got, want := crc64Reduce(a), crc64Bitwise(0, b[:]); got != want {
			t.Fatalf("reduce(%x:%x) = %016x, want %016x", a.hi, a.lo, got, want)
		}
	}
}
