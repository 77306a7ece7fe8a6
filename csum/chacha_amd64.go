//go:build amd64 && !noasm

package csum

import "github.com/klauspost/cpuid/v2"

// chachaVec is one vector implementation of ChaCha20 (chacha_amd64.s):
// fn XORs chunks*chunk bytes at data in place with the keystream of s from
// its counter, leaving s unchanged.
type chachaVec struct {
	name  string
	ok    bool // the CPU has what it needs
	chunk int  // bytes taken at a time
	fn    func(s *[16]uint32, data *byte, chunks int)
}

// chachaVecs are the vector implementations, fastest first.
var chachaVecs = []chachaVec{
	// The AVX-512 code also uses AVX2 (VEX) instructions.
	{"avx512", cpuid.CPU.Supports(cpuid.AVX2, cpuid.AVX512F, cpuid.AVX512VL), 512, chachaAVX512},
	{"avx2", cpuid.CPU.Supports(cpuid.AVX2), 512, chachaAVX2},
}

// chachaBest is the fastest vector implementation the CPU has, or nil.
var chachaBest = func() *chachaVec {
	for i := range chachaVecs {
		if chachaVecs[i].ok {
			return &chachaVecs[i]
		}
	}
	return nil
}()

// chachaFast XORs the longest prefix of data that the fastest vector
// implementation takes in whole chunks with the keystream of s from its
// counter, and returns its length (0 without one). It leaves s unchanged.
func chachaFast(s *[16]uint32, data []byte) int {
	v := chachaBest
	if v == nil {
		return 0
	}
	return v.xor(s, data)
}

// xor is chachaFast with v.
func (v *chachaVec) xor(s *[16]uint32, data []byte) int {
	chunks := len(data) / v.chunk
	if chunks == 0 {
		return 0
	}
	v.fn(s, &data[0], chunks)
	return chunks * v.chunk
}

// chachaAVX2 takes chunks of eight blocks, two to a register, in four
// interleaved pairs (AVX2). Implemented in chacha_amd64.s.
//
//go:noescape
func chachaAVX2(s *[16]uint32, data *byte, chunks int)

// chachaAVX512 takes chunks of eight blocks, two to a register, in four
// interleaved pairs, rotating with VPROLD (AVX512F, AVX512VL, and AVX2).
// Implemented in chacha_amd64.s.
//
//go:noescape
func chachaAVX512(s *[16]uint32, data *byte, chunks int)
