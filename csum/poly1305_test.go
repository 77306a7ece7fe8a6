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

// polyAll returns the tags of polySum, polyGeneric, polyVector (through
// this build's polyVecBlocks) and x/crypto's Poly1305, named.
func polyAll(msg []byte, key *[32]byte) map[string][16]byte {
	tags := map[string][16]byte{}
	var t [16]byte
	polySum(&t, msg, key)
	tags["polySum"] = t
	polyGeneric(&t, msg, key)
	tags["polyGeneric"] = t
	polyVector(&t, msg, key)
	tags["polyVector"] = t
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

// TestPoly1305Lanes checks the vector code's lanes against
// polyVecBlocksGo bit for bit, from random and from the largest lanes a
// chunk can leave, with random and the largest multipliers.
func TestPoly1305Lanes(t *testing.T) {
	if !polyVecOK {
		t.Skip("no vector Poly1305 on this CPU or build")
	}
	r := rand.New(rand.NewPCG(7, 8))
	maxElem := polyElem{mask44, mask44, mask42}
	for round := range 400 {
		chunks := 1 + r.IntN(9)
		msg := make([]byte, chunks*16*polyLanes)
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
			m = maxElem
		}
		var lanes [3][polyLanes]uint64
		for i := range lanes {
			for l := range lanes[i] {
				switch round % 5 {
				case 1:
					lanes[i][l] = r.Uint64() & (1<<45 - 1)
				case 2: // the largest a chunk leaves: a carried limb plus a block's
					lanes[i][l] = []uint64{mask44 + 1<<12 + mask44, mask44 + 1<<12 + mask44, mask42 + 1<<41}[i]
				}
			}
		}
		p := polyVecParams(&m)
		want := lanes
		polyVecBlocksGo(&want, &p, msg, chunks)
		got := lanes
		polyVecBlocks(&got, &p, msg, chunks)
		if got != want {
			t.Fatalf("round %d (%d chunks): lanes %x, want %x", round, chunks, got, want)
		}
	}
}

// FuzzPoly1305 checks every implementation against x/crypto's Poly1305 on
// any key and message.
func FuzzPoly1305(f *testing.F) {
	f.Add([]byte("key"), make([]byte, 600))
	f.Add(bytes.Repeat([]byte{0xff}, 32), bytes.Repeat([]byte{0xff}, 1100))
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
		if polyVecOK {
			impls = append(impls, struct {
				name string
				fn   func()
			}{"vector", func() { polyVector(&tag, msg, &key) }})
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

// TestPolyLaneMaps checks that polyBlockLane inverts polyLaneBlock.
func TestPolyLaneMaps(t *testing.T) {
	for l, j := range polyLaneBlock {
		if polyBlockLane[j] != l {
			t.Fatalf("lane %d takes block %d, but polyBlockLane[%d] = %d", l, j, j, polyBlockLane[j])
		}
	}
}
