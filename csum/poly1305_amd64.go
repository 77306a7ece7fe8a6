//go:build amd64 && !noasm

package csum

import "github.com/klauspost/cpuid/v2"

// polyVecs are the vector implementations of Poly1305's blocks
// (poly1305_amd64.s), fastest first.
var polyVecs = []polyVec{
	{"ifma", cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512IFMA), 8, 1536, polyKernelIFMA},
	{"avx2", cpuid.CPU.Supports(cpuid.AVX2), 4, 2048, polyKernelAVX2},
}

// polyIFMAAsm is polyIFMA on a slice.
func polyIFMAAsm(lanes *[3][8]uint64, p *[5]uint64, msg []byte, chunks int) {
	_ = msg[chunks*128-1]
	polyIFMA(lanes, p, &msg[0], chunks)
}

// polyAVX2Asm is polyAVX2 on a slice.
func polyAVX2Asm(lanes *[5][4]uint64, p *[9][4]uint64, msg []byte, chunks int) {
	_ = msg[chunks*64-1]
	polyAVX2(lanes, p, &msg[0], chunks)
}

// polyIFMA is polyIFMAGo with AVX512F and AVX512IFMA, a lane to each
// 64-bit word of a 512-bit register. Implemented in poly1305_amd64.s.
//
//go:noescape
func polyIFMA(lanes *[3][8]uint64, p *[5]uint64, msg *byte, chunks int)

// polyAVX2 is polyAVX2Go with AVX2, a lane to each 64-bit word of a
// 256-bit register. Implemented in poly1305_amd64.s.
//
//go:noescape
func polyAVX2(lanes *[5][4]uint64, p *[9][4]uint64, msg *byte, chunks int)
