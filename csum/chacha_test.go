package csum

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/chacha20"
)

// refCrypt is golang.org/x/crypto's ChaCha20 with bcachefs' nonce: words
// 1..3 the 96-bit nonce, word 0 the counter. It panics where the counter
// would pass 2^32 blocks.
func refCrypt(t testing.TB, key *Key, n Nonce, data []byte) {
	var iv [chacha20.NonceSize]byte
	binary.LittleEndian.PutUint32(iv[0:], n[1])
	binary.LittleEndian.PutUint32(iv[4:], n[2])
	binary.LittleEndian.PutUint32(iv[8:], n[3])
	c, err := chacha20.NewUnauthenticatedCipher(key[:], iv[:])
	if err != nil {
		t.Fatal(err)
	}
	c.SetCounter(n[0])
	c.XORKeyStream(data, data)
}

// TestChaChaRFC8439 checks the keystream against RFC 8439 §2.4.2's test
// vector (key 00..1f, counter 1, nonce 000000000000004a00000000).
func TestChaChaRFC8439(t *testing.T) {
	var key Key
	for i := range key {
		key[i] = byte(i)
	}
	plain := []byte("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
	want := []byte{
		0x6e, 0x2e, 0x35, 0x9a, 0x25, 0x68, 0xf9, 0x80, 0x41, 0xba, 0x07, 0x28, 0xdd, 0x0d, 0x69, 0x81,
		0xe9, 0x7e, 0x7a, 0xec, 0x1d, 0x43, 0x60, 0xc2, 0x0a, 0x27, 0xaf, 0xcc, 0xfd, 0x9f, 0xae, 0x0b,
		0xf9, 0x1b, 0x65, 0xc5, 0x52, 0x47, 0x33, 0xab, 0x8f, 0x59, 0x3d, 0xab, 0xcd, 0x62, 0xb3, 0x57,
		0x16, 0x39, 0xd6, 0x24, 0xe6, 0x51, 0x52, 0xab, 0x8f, 0x53, 0x0c, 0x35, 0x9f, 0x08, 0x61, 0xd8,
		0x07, 0xca, 0x0d, 0xbf, 0x50, 0x0d, 0x6a, 0x61, 0x56, 0xa3, 0x8e, 0x08, 0x8a, 0x22, 0xb6, 0x5e,
		0x52, 0xbc, 0x51, 0x4d, 0x16, 0xcc, 0xf8, 0x06, 0x81, 0x8c, 0xe9, 0x1a, 0xb7, 0x79, 0x37, 0x36,
		0x5a, 0xf9, 0x0b, 0xbf, 0x74, 0xa3, 0x5b, 0xe6, 0xb4, 0x0b, 0x8e, 0xed, 0xf2, 0x78, 0x5e, 0x42,
		0x87, 0x4d,
	}
	// The nonce's bytes 00 00 00 00 00 00 00 4a 00 00 00 00 are, as
	// little-endian words, 0, 0x4a000000, 0.
	n := Nonce{1, 0, 0x4a000000, 0}
	got := bytes.Clone(plain)
	Crypt(&key, n, got)
	if !bytes.Equal(got, want) {
		t.Errorf("Crypt:\n got %x\nwant %x", got, want)
	}
	got = bytes.Clone(plain)
	chachaGeneric(chachaState(&key, n), got)
	if !bytes.Equal(got, want) {
		t.Errorf("chachaGeneric:\n got %x\nwant %x", got, want)
	}
}

// TestChaChaLikeReference compares Crypt and the pure-Go twin with
// golang.org/x/crypto's ChaCha20 for every length up to 1 100 bytes and
// random keys, nonces and counters (kept clear of the counter's wrap, where
// the reference panics).
func TestChaChaLikeReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for l := 0; l <= 1100; l++ {
		var key Key
		for i := range key {
			key[i] = byte(r.Uint32())
		}
		n := Nonce{r.Uint32() >> 1, r.Uint32(), r.Uint32(), r.Uint32()}
		data := make([]byte, l)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		want := bytes.Clone(data)
		refCrypt(t, &key, n, want)
		got := bytes.Clone(data)
		Crypt(&key, n, got)
		if !bytes.Equal(got, want) {
			t.Fatalf("length %d nonce %x: Crypt differs from x/crypto", l, n)
		}
		got = bytes.Clone(data)
		chachaGeneric(chachaState(&key, n), got)
		if !bytes.Equal(got, want) {
			t.Fatalf("length %d nonce %x: chachaGeneric differs from x/crypto", l, n)
		}
	}
}

// TestChaChaCounterWraps checks that the block counter wraps at 2^32 as in
// the kernel: the block after counter 0xffffffff is counter 0's.
func TestChaChaCounterWraps(t *testing.T) {
	var key Key
	key[3] = 7
	for _, l := range []int{64, 128, 256, 512, 1000} {
		for back := uint32(1); back <= 6; back++ {
			n := Nonce{-back, 1, 2, 3}
			got := make([]byte, l)
			Crypt(&key, n, got)
			// Block by block from a fresh state: block i has counter
			// n[0]+i mod 2^32.
			for i := 0; i*chachaBlock < l; i++ {
				var ks [chachaBlock]byte
				s := chachaState(&key, Nonce{n[0] + uint32(i), 1, 2, 3})
				chachaKeyBlock(&s, &ks)
				end := min(l, (i+1)*chachaBlock)
				if !bytes.Equal(got[i*chachaBlock:end], ks[:end-i*chachaBlock]) {
					t.Fatalf("length %d counter %#x: block %d differs", l, n[0], i)
				}
			}
		}
	}
}

// vecCrypt is Crypt with the vector implementation v for the whole chunks
// and the pure-Go twin for the rest.
func vecCrypt(v *chachaVec, key *Key, n Nonce, data []byte) {
	s := chachaState(key, n)
	done := v.xor(&s, data)
	s[12] += uint32(done / chachaBlock)
	chachaGeneric(s, data[done:])
}

// TestChaChaVecs checks every vector implementation the CPU has against
// the pure-Go twin: every length up to 2 100 bytes, data that does not
// start on an aligned address, and counters that wrap inside the data.
func TestChaChaVecs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ran := 0
	for i := range chachaVecs {
		v := &chachaVecs[i]
		if !v.ok {
			t.Logf("%s: not on this CPU", v.name)
			continue
		}
		ran++
		for l := 0; l <= 2100; l++ {
			var key Key
			for j := range key {
				key[j] = byte(r.Uint32())
			}
			n := Nonce{r.Uint32(), r.Uint32(), r.Uint32(), r.Uint32()}
			if l%3 == 0 {
				n[0] = -uint32(r.IntN(40)) // wraps within the data
			}
			buf := make([]byte, l+1)
			for j := range buf {
				buf[j] = byte(r.Uint32())
			}
			data := buf[1:] // unaligned
			want := bytes.Clone(data)
			chachaGeneric(chachaState(&key, n), want)
			vecCrypt(v, &key, n, data)
			if !bytes.Equal(data, want) {
				t.Fatalf("%s: length %d nonce %x differs from chachaGeneric", v.name, l, n)
			}
		}
	}
	t.Logf("%d vector implementations checked", ran)
}

// FuzzChaCha checks Crypt and every vector implementation the CPU has
// against the pure-Go twin on any key, nonce and data, and, away from the
// counter's wrap, against golang.org/x/crypto's ChaCha20.
func FuzzChaCha(f *testing.F) {
	f.Add([]byte("key"), uint32(0), uint32(1), uint32(2), uint32(3), make([]byte, 300))
	f.Add([]byte{}, ^uint32(1), uint32(0), uint32(0), uint32(0), make([]byte, 1024))
	f.Fuzz(func(t *testing.T, k []byte, n0, n1, n2, n3 uint32, data []byte) {
		var key Key
		copy(key[:], k)
		n := Nonce{n0, n1, n2, n3}
		got := bytes.Clone(data)
		Crypt(&key, n, got)
		want := bytes.Clone(data)
		chachaGeneric(chachaState(&key, n), want)
		if !bytes.Equal(got, want) {
			t.Fatalf("Crypt differs from chachaGeneric (length %d, nonce %x)", len(data), n)
		}
		for i := range chachaVecs {
			if v := &chachaVecs[i]; v.ok {
				vec := bytes.Clone(data)
				vecCrypt(v, &key, n, vec)
				if !bytes.Equal(vec, want) {
					t.Fatalf("%s differs from chachaGeneric (length %d, nonce %x)", v.name, len(data), n)
				}
			}
		}
		if uint64(n0)+uint64(len(data)+63)/64 <= 1<<32 {
			ref := bytes.Clone(data)
			refCrypt(t, &key, n, ref)
			if !bytes.Equal(got, ref) {
				t.Fatalf("Crypt differs from x/crypto (length %d, nonce %x)", len(data), n)
			}
		}
	})
}

// BenchmarkCrypt measures ChaCha20 on 64 KiB with each vector
// implementation the CPU has, the pure-Go twin and golang.org/x/crypto's.
func BenchmarkCrypt(b *testing.B) {
	var key Key
	data := make([]byte, 64<<10)
	for i := range chachaVecs {
		v := &chachaVecs[i]
		if !v.ok {
			continue
		}
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				vecCrypt(v, &key, Nonce{}, data)
			}
		})
	}
	b.Run("generic", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			chachaGeneric(chachaState(&key, Nonce{}), data)
		}
	})
	b.Run("x-crypto", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			refCrypt(b, &key, Nonce{}, data)
		}
	})
}
