// Package kdf derives the key of a passphrase as bcachefs does: scrypt
// (RFC 7914) with the parameters of the superblock's crypt field. Its p
// lanes are independent, so they run in parallel, each with its own
// 128·N·r bytes of memory; golang.org/x/crypto/scrypt, the twin it is
// tested against, runs them one after another.
package kdf

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
)

// ErrParams is returned for scrypt parameters the algorithm does not
// define: N not a power of two above 1, r or p below 1, or sizes that
// overflow.
var ErrParams = errors.New("kdf: invalid scrypt parameters")

// LaneBytes is the memory one scrypt lane needs for N and r: 128·N·r
// bytes (0 when that overflows an int).
func LaneBytes(n, r int) int {
	if n <= 0 || r <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(n), uint64(r))
	if hi != 0 || lo > math.MaxInt/128 {
		return 0
	}
	return int(lo * 128)
}

// Scrypt returns keyLen bytes derived from passphrase and salt with
// scrypt's cost N, block size r and parallelism p, running up to lanes of
// the p lanes at once (at least one; each holds LaneBytes(n, r) while it
// runs). The result equals golang.org/x/crypto/scrypt.Key's.
func Scrypt(passphrase, salt []byte, n, r, p, keyLen, lanes int) ([]byte, error) {
	laneBytes := LaneBytes(n, r)
	if n < 2 || n&(n-1) != 0 || r < 1 || p < 1 || keyLen < 1 || laneBytes == 0 ||
		uint64(p)*uint64(r) >= 1<<30 || uint64(p)*uint64(r)*128 > math.MaxInt {
		return nil, ErrParams
	}
	lanes = max(1, min(lanes, p))
	words := 32 * r // uint32 words per lane's block B_i
	// crypto/pbkdf2 takes the passphrase as a string: a copy that cannot
	// be cleared (golang.org/x/crypto/pbkdf2, which takes bytes, now makes
	// the same copy in calling it).
	b, err := pbkdf2.Key(sha256.New, string(passphrase), salt, 1, p*128*r)
	if err != nil {
		return nil, fmt.Errorf("kdf: %w", err) // e.g. FIPS 140-only mode refuses bcachefs' 7-byte salt
	}
	defer clear(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range lanes {
		wg.Go(func() {
			x := make([]uint32, words)
			y := make([]uint32, words)
			v := make([]uint32, words*n)
			defer clear(x)
			defer clear(y)
			defer clear(v)
			for {
				i := int(next.Add(1)) - 1
				if i >= p {
					return
				}
				lane := b[i*128*r : (i+1)*128*r]
				for j := range x {
					x[j] = binary.LittleEndian.Uint32(lane[4*j:])
				}
				roMix(x, y, v, n, r)
				for j, w := range x {
					binary.LittleEndian.PutUint32(lane[4*j:], w)
				}
			}
		})
	}
	wg.Wait()
	key, err := pbkdf2.Key(sha256.New, string(passphrase), b, 1, keyLen)
	if err != nil {
		return nil, fmt.Errorf("kdf: %w", err)
	}
	return key, nil
}

// roMix is scrypt's ROMix on the block x (32·r words) in place, with y a
// scratch block and v the N blocks of its memory.
func roMix(x, y, v []uint32, n, r int) {
	words := 32 * r
	for i := range n {
		copy(v[i*words:], x)
		blockMix(x, y, r)
		x, y = y, x
	}
	for range n {
		// Integerify: the last 64-byte block's first 64 bits, mod N.
		j := int((uint64(x[words-15])<<32 | uint64(x[words-16])) & uint64(n-1))
		vj := v[j*words : (j+1)*words]
		for k := range x {
			x[k] ^= vj[k]
		}
		blockMix(x, y, r)
		x, y = y, x
	}
	// 2N swaps: x is the caller's block again.
}

// blockMix is scrypt's BlockMix of in (2r 64-byte blocks) into out: each
// block XORed into the running Salsa20/8 state, the results' even blocks
// first, then the odd ones.
func blockMix(in, out []uint32, r int) {
	var s [16]uint32
	copy(s[:], in[(2*r-1)*16:])
	for i := range 2 * r {
		blk := in[i*16 : i*16+16]
		for k := range s {
			s[k] ^= blk[k]
		}
		salsa208(&s)
		dst := (i/2 + i%2*r) * 16
		copy(out[dst:dst+16], s[:])
	}
}

// salsa208 applies the Salsa20/8 core to s: eight rounds, then the input
// added back.
func salsa208(s *[16]uint32) {
	x0, x1, x2, x3, x4, x5, x6, x7 := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
	x8, x9, x10, x11, x12, x13, x14, x15 := s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15]
	for range 4 {
		// columns
		x4 ^= bits.RotateLeft32(x0+x12, 7)
		x8 ^= bits.RotateLeft32(x4+x0, 9)
		x12 ^= bits.RotateLeft32(x8+x4, 13)
		x0 ^= bits.RotateLeft32(x12+x8, 18)
		x9 ^= bits.RotateLeft32(x5+x1, 7)
		x13 ^= bits.RotateLeft32(x9+x5, 9)
		x1 ^= bits.RotateLeft32(x13+x9, 13)
		x5 ^= bits.RotateLeft32(x1+x13, 18)
		x14 ^= bits.RotateLeft32(x10+x6, 7)
		x2 ^= bits.RotateLeft32(x14+x10, 9)
		x6 ^= bits.RotateLeft32(x2+x14, 13)
		x10 ^= bits.RotateLeft32(x6+x2, 18)
		x3 ^= bits.RotateLeft32(x15+x11, 7)
		x7 ^= bits.RotateLeft32(x3+x15, 9)
		x11 ^= bits.RotateLeft32(x7+x3, 13)
		x15 ^= bits.RotateLeft32(x11+x7, 18)
		// rows
		x1 ^= bits.RotateLeft32(x0+x3, 7)
		x2 ^= bits.RotateLeft32(x1+x0, 9)
		x3 ^= bits.RotateLeft32(x2+x1, 13)
		x0 ^= bits.RotateLeft32(x3+x2, 18)
		x6 ^= bits.RotateLeft32(x5+x4, 7)
		x7 ^= bits.RotateLeft32(x6+x5, 9)
		x4 ^= bits.RotateLeft32(x7+x6, 13)
		x5 ^= bits.RotateLeft32(x4+x7, 18)
		x11 ^= bits.RotateLeft32(x10+x9, 7)
		x8 ^= bits.RotateLeft32(x11+x10, 9)
		x9 ^= bits.RotateLeft32(x8+x11, 13)
		x10 ^= bits.RotateLeft32(x9+x8, 18)
		x12 ^= bits.RotateLeft32(x15+x14, 7)
		x13 ^= bits.RotateLeft32(x12+x15, 9)
		x14 ^= bits.RotateLeft32(x13+x12, 13)
		x15 ^= bits.RotateLeft32(x14+x13, 18)
	}
	s[0] += x0
	s[1] += x1
	s[2] += x2
	s[3] += x3
	s[4] += x4
	s[5] += x5
	s[6] += x6
	s[7] += x7
	s[8] += x8
	s[9] += x9
	s[10] += x10
	s[11] += x11
	s[12] += x12
	s[13] += x13
	s[14] += x14
	s[15] += x15
}
