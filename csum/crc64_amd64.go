//go:build amd64 && !noasm

package csum

import "github.com/klauspost/cpuid/v2"

//go:generate go test -run=^TestCRC64Consts$ . -args -gen-crc64-consts

// useFast reports whether the CPU has what crc64CLMUL needs: PCLMULQDQ,
// PSHUFB (SSSE3) and SSE4.1. It is decided once, before init selects
// crc64Update.
var useFast = cpuid.CPU.Supports(cpuid.SSE2, cpuid.SSSE3, cpuid.SSE4, cpuid.CLMUL)

// crc64FastMin is the shortest input handed to crc64CLMUL. Even a single
// 16-byte block (one load and the final reduction) beats slicing-by-8,
// about 6 ns against 11 ns on an AMD EPYC.
const crc64FastMin = 16

// crc64CLMUL updates crc with p by carry-less multiply folding.
// len(p) must be a positive multiple of 16. Implemented in crc64_amd64.s.
//
//go:noescape
func crc64CLMUL(crc uint64, p []byte) uint64

// crc64UpdateFast is CRC64BE using crc64CLMUL for the longest prefix of p
// that is a multiple of 16 bytes and crc64Generic for the 0..15 byte tail
// (and for all of p if it is short or the CPU lacks the instructions).
// crc64CLMUL uses unaligned loads; starting at an unaligned address costs
// nothing measurable, so there is no alignment prologue.
func crc64UpdateFast(crc uint64, p []byte) uint64 {
	if useFast && len(p) >= crc64FastMin {
		n := len(p) &^ 15
		crc = crc64CLMUL(crc, p[:n])
		p = p[n:]
	}
	return crc64Generic(crc, p)
}
