//go:build amd64 && !noasm

#include "textflag.h"

// Poly1305's message blocks eight at a time for polyIFMA (poly1305_amd64.go);
// polyVecBlocksGo in poly1305.go is the same computation in Go.
//
// Each of eight 64-bit lanes holds one sum modulo 2^130-5 in three limbs of
// 44, 44 and 42 bits (Z0, Z1, Z2). Per 128 bytes, every lane's sum is
// multiplied by r^8 (limbs Z3-Z5, 20 times limbs 1 and 2 in Z6 and Z7),
// each limb product split by VPMADD52LUQ and VPMADD52HUQ into its low and
// high 52 bits, carried back to 44, 44 and 42 bits (what passes 2^130
// comes back times 5), and the lane's next block added. The two 64-byte
// loads' 64-bit words are interleaved 128 bits at a time, so lanes 0-7
// take blocks 0, 4, 1, 5, 2, 6, 3, 7 of each 128 bytes.
//
// Limbs stay below 2^46 between chunks and the carries below 2^56, so the
// 52-bit factors and the 64-bit sums never overflow.

// func polyIFMA(lanes *[3][8]uint64, p *[5]uint64, msg *byte, chunks int)
TEXT ·polyIFMA(SB), NOSPLIT, $0-32
	MOVQ lanes+0(FP), DI
	MOVQ p+8(FP), BX
	MOVQ msg+16(FP), SI
	MOVQ chunks+24(FP), CX
	TESTQ CX, CX
	JZ   ifmadone

	VMOVDQU64 0(DI), Z0
	VMOVDQU64 64(DI), Z1
	VMOVDQU64 128(DI), Z2
	VPBROADCASTQ 0(BX), Z3
	VPBROADCASTQ 8(BX), Z4
	VPBROADCASTQ 16(BX), Z5
	VPBROADCASTQ 24(BX), Z6
	VPBROADCASTQ 32(BX), Z7
	MOVQ $0xfffffffffff, AX
	VPBROADCASTQ AX, Z8       // 44-bit mask
	MOVQ $0x3ffffffffff, AX
	VPBROADCASTQ AX, Z9       // 42-bit mask
	MOVQ $0x10000000000, AX
	VPBROADCASTQ AX, Z10      // the 2^128 bit, in limb 2

loop:
	// The next eight blocks' limbs: Z15, Z16, Z17.
	VMOVDQU64 0(SI), Z11
	VMOVDQU64 64(SI), Z12
	VPUNPCKLQDQ Z12, Z11, Z13 // low words
	VPUNPCKHQDQ Z12, Z11, Z14 // high words
	VPANDQ Z8, Z13, Z15
	VPSRLQ $44, Z13, Z16
	VPSLLQ $20, Z14, Z17
	VPORQ Z17, Z16, Z16
	VPANDQ Z8, Z16, Z16
	VPSRLQ $24, Z14, Z17
	VPORQ Z10, Z17, Z17

	// d0 = h0*r0 + h1*s2 + h2*s1, d1 = h0*r1 + h1*r0 + h2*s2,
	// d2 = h0*r2 + h1*r1 + h2*r0: low halves in Z18, Z20, Z22, high
	// halves in Z19, Z21, Z23.
	VPXORQ Z18, Z18, Z18
	VPXORQ Z19, Z19, Z19
	VPXORQ Z20, Z20, Z20
	VPXORQ Z21, Z21, Z21
	VPXORQ Z22, Z22, Z22
	VPXORQ Z23, Z23, Z23
	VPMADD52LUQ Z3, Z0, Z18
	VPMADD52HUQ Z3, Z0, Z19
	VPMADD52LUQ Z4, Z0, Z20
	VPMADD52HUQ Z4, Z0, Z21
	VPMADD52LUQ Z5, Z0, Z22
	VPMADD52HUQ Z5, Z0, Z23
	VPMADD52LUQ Z7, Z1, Z18
	VPMADD52HUQ Z7, Z1, Z19
	VPMADD52LUQ Z3, Z1, Z20
	VPMADD52HUQ Z3, Z1, Z21
	VPMADD52LUQ Z4, Z1, Z22
	VPMADD52HUQ Z4, Z1, Z23
	VPMADD52LUQ Z6, Z2, Z18
	VPMADD52HUQ Z6, Z2, Z19
	VPMADD52LUQ Z7, Z2, Z20
	VPMADD52HUQ Z7, Z2, Z21
	VPMADD52LUQ Z3, Z2, Z22
	VPMADD52HUQ Z3, Z2, Z23

	// Carry: a high half is 2^52 = 2^8 limb-1 units above its low half
	// (2^10 for limb 2, whose carry out is 2^130 = 5).
	VPANDQ Z8, Z18, Z0
	VPSRLQ $44, Z18, Z11
	VPSLLQ $8, Z19, Z12
	VPADDQ Z11, Z20, Z20
	VPADDQ Z12, Z20, Z20
	VPANDQ Z8, Z20, Z1
	VPSRLQ $44, Z20, Z11
	VPSLLQ $8, Z21, Z12
	VPADDQ Z11, Z22, Z22
	VPADDQ Z12, Z22, Z22
	VPANDQ Z9, Z22, Z2
	VPSRLQ $42, Z22, Z11
	VPSLLQ $10, Z23, Z12
	VPADDQ Z12, Z11, Z11
	VPSLLQ $2, Z11, Z12
	VPADDQ Z11, Z0, Z0
	VPADDQ Z12, Z0, Z0
	VPSRLQ $44, Z0, Z11
	VPANDQ Z8, Z0, Z0
	VPADDQ Z11, Z1, Z1

	// Add the blocks.
	VPADDQ Z15, Z0, Z0
	VPADDQ Z16, Z1, Z1
	VPADDQ Z17, Z2, Z2

	ADDQ $128, SI
	DECQ CX
	JNZ  loop

	VMOVDQU64 Z0, 0(DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VZEROUPPER

ifmadone:
	RET

// Poly1305's message blocks four at a time for polyAVX2; polyAVX2Go is the
// same computation in Go.
//
// Each of four 64-bit lanes holds one sum in five limbs of 26 bits (Y0-Y4).
// Per 64 bytes, every lane's sum is multiplied by r^4, whose limbs r0-r4
// and 5*r1..5*r4 (2^130 = 5) wait in p, 32 bytes each, so VPMULUDQ takes
// them from memory; the products are carried in two chains at once
// (0->1->2->3 and 3->4->0->1) and the lane's next block added. Lanes 0-3
// take blocks 0, 2, 1, 3 of each 64 bytes. Limbs stay below 2^28 between
// chunks, products below 2^56, their sums below 2^58.

DATA polyMask26<>+0(SB)/8, $0x3ffffff
GLOBL polyMask26<>(SB), RODATA|NOPTR, $8
DATA polyBit24<>+0(SB)/8, $0x1000000
DATA polyBit24<>+8(SB)/8, $0x1000000
DATA polyBit24<>+16(SB)/8, $0x1000000
DATA polyBit24<>+24(SB)/8, $0x1000000
GLOBL polyBit24<>(SB), RODATA|NOPTR, $32

// MULSUM(d, o0, o1, o2, o3, o4): d = h0*p[o0] + h1*p[o1] + … + h4*p[o4].
#define MULSUM(d, o0, o1, o2, o3, o4) \
	VPMULUDQ o0(BX), Y0, d     \
	VPMULUDQ o1(BX), Y1, Y10   \
	VPMULUDQ o2(BX), Y2, Y14   \
	VPMULUDQ o3(BX), Y3, Y15   \
	VPADDQ   Y10, d, d         \
	VPMULUDQ o4(BX), Y4, Y10   \
	VPADDQ   Y14, d, d         \
	VPADDQ   Y15, d, d         \
	VPADDQ   Y10, d, d

// func polyAVX2(lanes *[5][4]uint64, p *[9][4]uint64, msg *byte, chunks int)
TEXT ·polyAVX2(SB), NOSPLIT, $0-32
	MOVQ lanes+0(FP), DI
	MOVQ p+8(FP), BX
	MOVQ msg+16(FP), SI
	MOVQ chunks+24(FP), CX
	TESTQ CX, CX
	JZ   avx2done

	VMOVDQU 0(DI), Y0
	VMOVDQU 32(DI), Y1
	VMOVDQU 64(DI), Y2
	VMOVDQU 96(DI), Y3
	VMOVDQU 128(DI), Y4
	VPBROADCASTQ polyMask26<>(SB), Y11

avx2loop:
	// p: r0 at 0, r1 32, r2 64, r3 96, r4 128, 5*r1 160, 5*r2 192,
	// 5*r3 224, 5*r4 256.
	MULSUM(Y5, 0, 256, 224, 192, 160)
	MULSUM(Y6, 32, 0, 256, 224, 192)
	MULSUM(Y7, 64, 32, 0, 256, 224)
	MULSUM(Y8, 96, 64, 32, 0, 256)
	MULSUM(Y9, 128, 96, 64, 32, 0)

	// Carry.
	VPSRLQ $26, Y5, Y10
	VPSRLQ $26, Y8, Y14
	VPAND  Y11, Y5, Y5
	VPAND  Y11, Y8, Y8
	VPADDQ Y10, Y6, Y6
	VPADDQ Y14, Y9, Y9
	VPSRLQ $26, Y6, Y10
	VPSRLQ $26, Y9, Y14
	VPAND  Y11, Y6, Y6
	VPAND  Y11, Y9, Y9
	VPADDQ Y10, Y7, Y7
	VPSLLQ $2, Y14, Y15
	VPADDQ Y14, Y5, Y5
	VPADDQ Y15, Y5, Y5
	VPSRLQ $26, Y7, Y10
	VPSRLQ $26, Y5, Y14
	VPAND  Y11, Y7, Y7
	VPAND  Y11, Y5, Y5
	VPADDQ Y10, Y8, Y8
	VPADDQ Y14, Y6, Y6
	VPSRLQ $26, Y8, Y10
	VPAND  Y11, Y8, Y8
	VPADDQ Y10, Y9, Y9

	// The next four blocks' limbs, added.
	VMOVDQU     0(SI), Y12
	VMOVDQU     32(SI), Y13
	VPUNPCKHQDQ Y13, Y12, Y14 // high words
	VPUNPCKLQDQ Y13, Y12, Y12 // low words
	VPAND       Y11, Y12, Y0
	VPADDQ      Y5, Y0, Y0
	VPSRLQ      $26, Y12, Y1
	VPAND       Y11, Y1, Y1
	VPADDQ      Y6, Y1, Y1
	VPSRLQ      $52, Y12, Y2
	VPSLLQ      $12, Y14, Y10
	VPOR        Y10, Y2, Y2
	VPAND       Y11, Y2, Y2
	VPADDQ      Y7, Y2, Y2
	VPSRLQ      $14, Y14, Y3
	VPAND       Y11, Y3, Y3
	VPADDQ      Y8, Y3, Y3
	VPSRLQ      $40, Y14, Y4
	VPOR        polyBit24<>(SB), Y4, Y4
	VPADDQ      Y9, Y4, Y4

	ADDQ $64, SI
	DECQ CX
	JNZ  avx2loop

	VMOVDQU Y0, 0(DI)
	VMOVDQU Y1, 32(DI)
	VMOVDQU Y2, 64(DI)
	VMOVDQU Y3, 96(DI)
	VMOVDQU Y4, 128(DI)
	VZEROUPPER

avx2done:
	RET
