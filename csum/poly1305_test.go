package csum

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"

	//lint:ignore SA1019 the reference Poly1305 of these tests
	"golang.org/x/crypto/poly1305"
)

// bigPoly is Poly1305 by its definition (RFC 8439 section 2.5) in
// math/big: an independent reference for the limb arithmetic.
func bigPoly(msg []byte, key *[32]byte) [16]byte {
	le := func(b []byte) *big.Int {
		r := make([]byte, len(b))
		for i := range b {
			r[len(b)-1-i] = b[i]
		}
		return new(big.Int).SetBytes(r)
	}
	rb := bytes.Clone(key[:16])
	for _, i := range []int{3, 7, 11, 15} {
		rb[i] &= 15
	}
	for _, i := range []int{4, 8, 12} {
		rb[i] &= 252
	}
	r, s := le(rb), le(key[16:])
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 130), big.NewInt(5))
	acc := new(big.Int)
	for i := 0; i < len(msg); i += 16 {
		blk := append(bytes.Clone(msg[i:min(i+16, len(msg))]), 1)
		acc.Add(acc, le(blk))
		acc.Mul(acc, r)
		acc.Mod(acc, p)
	}
	acc.Add(acc, s)
	var tag [16]byte
	b := acc.Bytes()
	for i := 0; i < 16 && i < len(b); i++ {
		tag[i] = b[len(b)-1-i]
	}
	return tag
}

// polyAll returns the tags of polySum, polyGeneric, polyVector through
// every vector implementation the CPU has and through the Go twins of
// all, and x/crypto's Poly1305, named.
func polyAll(msg []byte, key *[32]byte) map[string][16]byte {
	tags := map[string][16]byte{}
	var t [16]byte
	polySum(&t, msg, key)
	tags["polySum"] = t
	polyGeneric(&t, msg, key)
	tags["polyGeneric"] = t
	for _, vs := range [][]polyVec{polyVecs, polyVecsGo} {
		for i := range vs {
			if v := &vs[i]; v.ok {
				polyVector(v, &t, msg, key)
				tags[v.name] = t
			}
		}
	}
	poly1305.Sum(&t, msg, key)
	tags["x/crypto"] = t
	return tags
}

// checkPoly fails t unless every implementation gives want.
func checkPoly(t *testing.T, what string, msg []byte, key *[32]byte, want [16]byte) {
	t.Helper()
	for name, got := range polyAll(msg, key) {
		if got != want {
			t.Fatalf("%s (%d bytes): %s gives %x, want %x", what, len(msg), name, got, want)
		}
	}
}

// TestPoly1305RFC8439 checks RFC 8439 section 2.5.2's test vector.
func TestPoly1305RFC8439(t *testing.T) {
	k, _ := hex.DecodeString("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
	w, _ := hex.DecodeString("a8061dc1305136c6c22b8baf0c0127a9")
	var key [32]byte
	var want [16]byte
	copy(key[:], k)
	copy(want[:], w)
	msg := []byte("Cryptographic Forum Research Group")
	if got := bigPoly(msg, &key); got != want {
		t.Fatalf("the math/big reference gives %x, want %x", got, want)
	}
	checkPoly(t, "RFC 8439", msg, &key, want)
}

// polyKeys are one-time keys at the edges: r and s all zeros, all ones
// (r then the largest a clamp leaves), and mixed.
func polyKeys(r *rand.Rand) [][32]byte {
	var zero, ones, rOnes, sOnes [32]byte
	for i := range ones {
		ones[i] = 0xff
	}
	copy(rOnes[:16], ones[:])
	copy(sOnes[16:], ones[:])
	keys := [][32]byte{zero, ones, rOnes, sOnes}
	for range 4 {
		var k [32]byte
		for i := range k {
			k[i] = byte(r.Uint32())
		}
		keys = append(keys, k)
	}
	return keys
}

// TestPoly1305LikeReference checks every implementation against the
// math/big reference and x/crypto on every length up to 2100 bytes and a
// few long ones, with random keys and messages and with the edges: keys
// of all zeros or all ones, messages of all ones (the largest limbs).
func TestPoly1305LikeReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	lengths := []int{4096, 4096 + 127, 65536, 1 << 20}
	for l := 0; l <= 2100; l++ {
		lengths = append(lengths, l)
	}
	keys := polyKeys(r)
	for _, l := range lengths {
		buf := make([]byte, l+1)
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		msg := buf[1:] // unaligned
		ones := bytes.Repeat([]byte{0xff}, l)
		key := keys[4+l%4]
		if l <= 2100 && l%7 == 0 || l > 2100 {
			checkPoly(t, "random", msg, &key, bigPoly(msg, &key))
		} else {
			var want [16]byte
			poly1305.Sum(&want, msg, &key)
			checkPoly(t, "random", msg, &key, want)
		}
		if l%61 == 0 || l > 2100 {
			for i := range keys {
				checkPoly(t, fmt.Sprintf("ones, key %d", i), ones, &keys[i], bigPoly(ones, &keys[i]))
			}
		}
	}
}

// polyEdgeMsg returns a message of n bytes (a multiple of 16, at least
// 32) whose Poly1305 sum under key, before s is added, is target modulo
// 2^130-5: random blocks, the last one solved for with math/big (retried
// until it is a block's value). Such sums end at or just above 2^130-5
// in the limbs, where only the final conditional subtraction makes them
// right; random messages reach it with a chance of ~2^-128.
func polyEdgeMsg(r *rand.Rand, key *[32]byte, n int, target int64) []byte {
	le := func(b []byte) *big.Int {
		x := make([]byte, len(b))
		for i := range b {
			x[len(b)-1-i] = b[i]
		}
		return new(big.Int).SetBytes(x)
	}
	rb := bytes.Clone(key[:16])
	for _, i := range []int{3, 7, 11, 15} {
		rb[i] &= 15
	}
	for _, i := range []int{4, 8, 12} {
		rb[i] &= 252
	}
	rv := le(rb)
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 130), big.NewInt(5))
	two128 := new(big.Int).Lsh(big.NewInt(1), 128)
	rinv := new(big.Int).ModInverse(rv, p)
	for {
		msg := make([]byte, n)
		for j := range msg {
			msg[j] = byte(r.Uint32())
		}
		acc := new(big.Int)
		for i := 0; i < n-16; i += 16 {
			acc.Add(acc, le(msg[i:i+16]))
			acc.Add(acc, two128)
			acc.Mul(acc, rv)
			acc.Mod(acc, p)
		}
		// (acc + last + 2^128) * r = target: last = target/r - acc - 2^128.
		last := new(big.Int).Mul(big.NewInt(target), rinv)
		last.Sub(last, acc)
		last.Sub(last, two128)
		last.Mod(last, p)
		if last.Cmp(two128) >= 0 {
			continue
		}
		b := last.Bytes()
		for i := range 16 {
			msg[n-16+i] = 0
		}
		for i := range b {
			msg[n-1-i] = b[i]
		}
		return msg
	}
}

// TestPoly1305FinalReduction checks every implementation on messages
// whose sum is 0 to 4 modulo 2^130-5 (and one below), on the scalar and
// on the vector paths' lengths, with keys whose s is zero and all ones.
func TestPoly1305FinalReduction(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{32, 48, 160, 1024, 2048, 2064, 4096} {
		for target := int64(-1); target <= 4; target++ {
			var key [32]byte
			for i := range 16 {
				key[i] = byte(r.Uint32())
			}
			if target%2 == 0 {
				for i := 16; i < 32; i++ {
					key[i] = 0xff
				}
			}
			msg := polyEdgeMsg(r, &key, n, target)
			checkPoly(t, fmt.Sprintf("sum %d mod p", target), msg, &key, bigPoly(msg, &key))
		}
	}
}

// TestPoly1305Lanes checks the vector code's lanes against their Go
// twins bit for bit, from zero, random and the largest lanes a chunk can
// leave, with random and the largest multipliers.
func TestPoly1305Lanes(t *testing.T) {
	ran := 0
	for _, v := range polyVecs {
		if v.ok {
			ran++
		} else {
			t.Logf("%s: not on this CPU", v.name)
		}
	}
	if ran == 0 {
		t.Skip("no vector Poly1305 on this CPU or build")
	}
	r := rand.New(rand.NewPCG(7, 8))
	for round := range 400 {
		chunks := 1 + r.IntN(9)
		msg := make([]byte, chunks*128)
		for j := range msg {
			msg[j] = byte(r.Uint32())
		}
		if round%4 == 1 {
			for j := range msg {
				msg[j] = 0xff
			}
		}
		m := polyElem{r.Uint64() & mask44, r.Uint64() & mask44, r.Uint64() & mask42}
		if round%3 == 2 {
			m = polyElem{mask44, mask44, mask42}
		}
		if polyVecOn("ifma") {
			var lanes [3][8]uint64
			for i := range lanes {
				for l := range lanes[i] {
					switch round % 5 {
					case 1:
						lanes[i][l] = r.Uint64() & (1<<45 - 1)
					case 2: // the largest a chunk leaves: a carried limb plus a block's
						lanes[i][l] = []uint64{mask44 + mask44, mask44 + 1<<12 + mask44, mask42 + 1<<41}[i]
					}
				}
			}
			p := [5]uint64{m[0], m[1], m[2], m[1] * 20, m[2] * 20}
			want, got := lanes, lanes
			polyIFMAGo(&want, &p, msg, chunks)
			polyIFMAAsm(&got, &p, msg, chunks)
			if got != want {
				t.Fatalf("ifma, round %d (%d chunks): lanes %x, want %x", round, chunks, got, want)
			}
		}
		if polyVecOn("avx2") {
			var lanes [5][4]uint64
			for i := range lanes {
				for l := range lanes[i] {
					switch round % 5 {
					case 1:
						lanes[i][l] = r.Uint64() & (1<<27 - 1)
					case 2: // the largest a chunk leaves
						lanes[i][l] = []uint64{mask26 + mask26, mask26 + 1<<9 + mask26, mask26 + mask26, mask26 + mask26, mask26 + 1<<7 + 1<<25}[i]
					}
				}
			}
			var p [9][4]uint64
			mr := polyAVX2Limbs(&m)
			for l := range 4 {
				for i := range 5 {
					p[i][l] = mr[i]
				}
				for i := 1; i < 5; i++ {
					p[4+i][l] = mr[i] * 5
				}
			}
			want, got := lanes, lanes
			polyAVX2Go(&want, &p, msg, 2*chunks)
			polyAVX2Asm(&got, &p, msg, 2*chunks)
			if got != want {
				t.Fatalf("avx2, round %d (%d chunks): lanes %x, want %x", round, 2*chunks, got, want)
			}
		}
	}
}

// polyVecOn says whether the vector implementation name runs here.
func polyVecOn(name string) bool {
	for _, v := range polyVecs {
		if v.name == name {
			return v.ok
		}
	}
	return false
}

// TestPoly1305From26 checks the conversion of five 26-bit limbs (up to
// 2^28 each) to three of 44 bits against math/big.
func TestPoly1305From26(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	toBig := func(limbs []uint64, width uint) *big.Int {
		v := new(big.Int)
		for i := len(limbs) - 1; i >= 0; i-- {
			v.Lsh(v, width)
			v.Add(v, new(big.Int).SetUint64(limbs[i]))
		}
		return v
	}
	for range 10000 {
		var l [5]uint64
		for i := range l {
			l[i] = r.Uint64() & (1<<28 - 1)
		}
		e := polyFrom26(l[0], l[1], l[2], l[3], l[4])
		// limbs of 44 bits at 0, 44, 88: sum them as big numbers
		got := new(big.Int).Add(new(big.Int).SetUint64(e[0]), new(big.Int).Lsh(new(big.Int).SetUint64(e[1]), 44))
		got.Add(got, new(big.Int).Lsh(new(big.Int).SetUint64(e[2]), 88))
		if want := toBig(l[:], 26); got.Cmp(want) != 0 || e[0] >= 1<<46 || e[1] >= 1<<46 || e[2] >= 1<<46 {
			t.Fatalf("polyFrom26(%x) = %x, want %x with limbs under 2^46", l, e, want)
		}
	}
	m := polyElem{mask44, mask44, mask42}
	mr := polyAVX2Limbs(&m)
	if got, want := toBig(mr[:], 26), toBig(m[:], 44); got.Cmp(want) != 0 {
		t.Fatalf("polyAVX2Limbs(%x) = %x (%v), want %v", m, mr, got, want)
	}
}

// FuzzPoly1305 checks every implementation against x/crypto's Poly1305 on
// any key and message.
func FuzzPoly1305(f *testing.F) {
	f.Add([]byte("key"), make([]byte, 600))
	f.Add(bytes.Repeat([]byte{0xff}, 32), bytes.Repeat([]byte{0xff}, 1100))
	r := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{32, 2048} {
		var key [32]byte
		for i := range key {
			key[i] = byte(r.Uint32())
		}
		f.Add(key[:], polyEdgeMsg(r, &key, n, 0))
	}
	f.Fuzz(func(t *testing.T, k, msg []byte) {
		var key [32]byte
		copy(key[:], k)
		var want [16]byte
		poly1305.Sum(&want, msg, &key)
		checkPoly(t, "fuzz", msg, &key, want)
	})
}

// BenchmarkPoly1305 measures each implementation on messages of several
// lengths: where the vector code starts to pay (polyVecMin) and how fast
// it runs on a node's bset.
func BenchmarkPoly1305(b *testing.B) {
	var key [32]byte
	for i := range key {
		key[i] = byte(i * 7)
	}
	var tag [16]byte
	for _, n := range []int{256, 512, 1024, 4096, 65536} {
		msg := make([]byte, n)
		impls := []struct {
			name string
			fn   func()
		}{
			{"x-crypto", func() { poly1305.Sum(&tag, msg, &key) }},
			{"generic", func() { polyGeneric(&tag, msg, &key) }},
		}
		for i := range polyVecs {
			if v := &polyVecs[i]; v.ok {
				impls = append(impls, struct {
					name string
					fn   func()
				}{v.name, func() { polyVector(v, &tag, msg, &key) }})
			}
		}
		for _, im := range impls {
			b.Run(fmt.Sprintf("%s/%d", im.name, n), func(b *testing.B) {
				b.SetBytes(int64(n))
				for b.Loop() {
					im.fn()
				}
			})
		}
	}
}
