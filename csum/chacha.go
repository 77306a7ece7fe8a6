package csum

import (
	"encoding/binary"
	"math/bits"
)

// The ChaCha20 of bcachefs (the kernel's chacha20 with a 16-byte IV): the
// state's words 12..15 are the four nonce words, word 12 the block counter.
// The counter is 32 bits and wraps, as in the kernel; golang.org/x/crypto's
// cipher panics instead once it would pass 2^32 blocks.

// chachaConst is "expand 32-byte k", the state's first four words.
var chachaConst = [4]uint32{0x61707865, 0x3320646e, 0x79622d32, 0x6b206574}

// chachaBlock is the keystream block size in bytes.
const chachaBlock = 64

// chachaState returns the initial state for key and nonce.
func chachaState(key *Key, n Nonce) (s [16]uint32) {
	copy(s[:4], chachaConst[:])
	for i := range 8 {
		s[4+i] = binary.LittleEndian.Uint32(key[4*i:])
	}
	copy(s[12:], n[:])
	return s
}

// xorKeyStream XORs data in place with the keystream of the state s,
// starting at its counter (s[12]), and returns s with the counter moved past
// the blocks used (a partial last block counts). The fastest vector code
// the CPU has (chachaFast) takes the longest run of whole chunks it can,
// chachaGeneric the rest.
func xorKeyStream(s [16]uint32, data []byte) [16]uint32 {
	if n := chachaFast(&s, data); n > 0 {
		s[12] += uint32(n / chachaBlock)
		data = data[n:]
	}
	return chachaGeneric(s, data)
}

// chachaGeneric is xorKeyStream in pure Go: the twin the assembly is tested
// against, and the code used where there is none.
func chachaGeneric(s [16]uint32, data []byte) [16]uint32 {
	for len(data) > 0 {
		var ks [chachaBlock]byte
		chachaKeyBlock(&s, &ks)
		s[12]++
		n := min(len(data), chachaBlock)
		if n == chachaBlock {
			for i := 0; i < chachaBlock; i += 8 {
				v := binary.LittleEndian.Uint64(data[i:]) ^ binary.LittleEndian.Uint64(ks[i:])
				binary.LittleEndian.PutUint64(data[i:], v)
			}
		} else {
			for i := range n {
				data[i] ^= ks[i]
			}
		}
		data = data[n:]
	}
	return s
}

// chachaQR is the ChaCha quarter round.
func chachaQR(a, b, c, d uint32) (uint32, uint32, uint32, uint32) {
	a += b
	d = bits.RotateLeft32(d^a, 16)
	c += d
	b = bits.RotateLeft32(b^c, 12)
	a += b
	d = bits.RotateLeft32(d^a, 8)
	c += d
	b = bits.RotateLeft32(b^c, 7)
	return a, b, c, d
}

// chachaKeyBlock writes the keystream block of state s (20 rounds, then the
// state added back) to out.
func chachaKeyBlock(s *[16]uint32, out *[chachaBlock]byte) {
	x := *s
	for range 10 {
		// columns
		x[0], x[4], x[8], x[12] = chachaQR(x[0], x[4], x[8], x[12])
		x[1], x[5], x[9], x[13] = chachaQR(x[1], x[5], x[9], x[13])
		x[2], x[6], x[10], x[14] = chachaQR(x[2], x[6], x[10], x[14])
		x[3], x[7], x[11], x[15] = chachaQR(x[3], x[7], x[11], x[15])
		// diagonals
		x[0], x[5], x[10], x[15] = chachaQR(x[0], x[5], x[10], x[15])
		x[1], x[6], x[11], x[12] = chachaQR(x[1], x[6], x[11], x[12])
		x[2], x[7], x[8], x[13] = chachaQR(x[2], x[7], x[8], x[13])
		x[3], x[4], x[9], x[14] = chachaQR(x[3], x[4], x[9], x[14])
	}
	for i := range 16 {
		binary.LittleEndian.PutUint32(out[4*i:], x[i]+s[i])
	}
}
