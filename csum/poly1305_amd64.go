//go:build amd64 && !noasm

package csum

import "github.com/klauspost/cpuid/v2"

// polyVecOK says the CPU has the vector Poly1305's instructions: 512-bit
// registers and the 52-bit integer multiply-adds (AVX512F, AVX512IFMA).
var polyVecOK = cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512IFMA)

// polyVecMin is the shortest message the vector code takes: below it, its
// set-up (the powers of r, the lanes' sum, ~200 ns) costs more than it
// saves against x/crypto's (BenchmarkPoly1305: even at 1 KiB).
const polyVecMin = 1536

// polyVecBlocks runs the lanes through chunks chunks of polyLanes blocks at
// the start of msg, with polyIFMA.
func polyVecBlocks(lanes *[3][polyLanes]uint64, p *[5]uint64, msg []byte, chunks int) {
	if chunks == 0 {
		return
	}
	_ = msg[chunks*16*polyLanes-1]
	polyIFMA(lanes, p, &msg[0], chunks)
}

// polyIFMA is polyVecBlocksGo with AVX512F and AVX512IFMA, a lane to each
// 64-bit word of a 512-bit register. Implemented in poly1305_amd64.s.
//
//go:noescape
func polyIFMA(lanes *[3][polyLanes]uint64, p *[5]uint64, msg *byte, chunks int)
