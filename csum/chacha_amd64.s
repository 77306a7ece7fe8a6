//go:build amd64 && !noasm

#include "textflag.h"

// ChaCha20 (20 rounds, 32-bit block counter that wraps) for chachaAVX2 and
// chachaAVX512 in chacha_amd64.go; chachaGeneric in chacha.go is the same
// computation in Go, one block at a time.
//
// Each 256-bit register holds one row of the 4x4 state for two blocks, a
// block to each 128-bit lane: rows a, b, c, d. A column round is then four
// quarter rounds at once; rotating the lanes' words of b, c and d by one,
// two and three places lines the diagonals up as columns, and rotating
// them back restores the rows. Four such pairs (blocks 0-1, 2-3, 4-5 and
// 6-7, 512 bytes) are interleaved so that each instruction's latency is
// hidden by the other pairs'. A row's lanes hold 16 consecutive keystream
// bytes of each block, so the output needs only lane swaps, no transpose.
//
// Y0-Y3 are the rows of blocks 0-1, Y4-Y7 of blocks 2-3, Y8-Y11 of 4-5,
// Y12-Y15 of 6-7. With AVX2 those are all the registers: the input rows
// and the counters wait in the frame, the word rotations by 16 and 8 are
// byte shuffles with a mask in memory, and the rotations by 12 and 7
// (two shifts and an OR) borrow Y15, saved to the frame meanwhile. With
// AVX-512 (AVX512F and AVX512VL, still on 256-bit registers) VPROLD
// rotates in one instruction and Y16-Y24 hold the rest.

// ROT(n, x, t): x = x rotated left by n bits in each 32-bit word, via t.
#define ROT(n, x, t) \
	VPSLLD $n, x, t        \
	VPSRLD $(32-n), x, x   \
	VPOR   t, x, x

// SHUF(ib, ic, id, b, c, d): rotate the words of rows b, c and d within
// each lane by the VPSHUFD selectors ib, ic and id.
#define SHUF(ib, ic, id, b, c, d) \
	VPSHUFD $ib, b, b; VPSHUFD $ic, c, c; VPSHUFD $id, d, d

// ADD4, XOR4 and XOR4V (VPXORD is EVEX, VPXOR VEX), ROL4 (VPROLD, EVEX),
// SHB4 (byte shuffle by mask m) and ROT4S (shifts, via Y15 saved at
// 0(SP)): one step of the quarter round on four pairs. The assembler
// encodes ADD4 with VEX on Y0-Y15, with EVEX on Y16 and up.
#define ADD4(b0, a0, b1, a1, b2, a2, b3, a3) \
	VPADDD b0, a0, a0; VPADDD b1, a1, a1; VPADDD b2, a2, a2; VPADDD b3, a3, a3
#define XOR4(a0, d0, a1, d1, a2, d2, a3, d3) \
	VPXORD a0, d0, d0; VPXORD a1, d1, d1; VPXORD a2, d2, d2; VPXORD a3, d3, d3
#define ROL4(n, d0, d1, d2, d3) \
	VPROLD $n, d0, d0; VPROLD $n, d1, d1; VPROLD $n, d2, d2; VPROLD $n, d3, d3

// SHUF8(ib, ic, id): SHUF on the b, c and d rows of all four pairs.
#define SHUF8(ib, ic, id) \
	SHUF(ib, ic, id, Y1, Y2, Y3) \
	SHUF(ib, ic, id, Y5, Y6, Y7) \
	SHUF(ib, ic, id, Y9, Y10, Y11) \
	SHUF(ib, ic, id, Y13, Y14, Y15)

#define XOR4V(a0, d0, a1, d1, a2, d2, a3, d3) \
	VPXOR a0, d0, d0; VPXOR a1, d1, d1; VPXOR a2, d2, d2; VPXOR a3, d3, d3
#define SHB4(m, d0, d1, d2, d3) \
	VPSHUFB m, d0, d0; VPSHUFB m, d1, d1; VPSHUFB m, d2, d2; VPSHUFB m, d3, d3
#define ROT4S(n, b0, b1, b2, b3) \
	VMOVDQU Y15, 0(SP) \
	ROT(n, b0, Y15); ROT(n, b1, Y15); ROT(n, b2, Y15); ROT(n, b3, Y15) \
	VMOVDQU 0(SP), Y15

// QR8V: a quarter round on each column of four pairs of blocks, the sets
// (Y0-Y3), (Y4-Y7), (Y8-Y11), (Y12-Y15), with AVX2 only.
#define QR8V \
	ADD4(Y1, Y0, Y5, Y4, Y9, Y8, Y13, Y12) \
	XOR4V(Y0, Y3, Y4, Y7, Y8, Y11, Y12, Y15) \
	SHB4(·chachaRot16<>(SB), Y3, Y7, Y11, Y15) \
	ADD4(Y3, Y2, Y7, Y6, Y11, Y10, Y15, Y14) \
	XOR4V(Y2, Y1, Y6, Y5, Y10, Y9, Y14, Y13) \
	ROT4S(12, Y1, Y5, Y9, Y13) \
	ADD4(Y1, Y0, Y5, Y4, Y9, Y8, Y13, Y12) \
	XOR4V(Y0, Y3, Y4, Y7, Y8, Y11, Y12, Y15) \
	SHB4(·chachaRot8<>(SB), Y3, Y7, Y11, Y15) \
	ADD4(Y3, Y2, Y7, Y6, Y11, Y10, Y15, Y14) \
	XOR4V(Y2, Y1, Y6, Y5, Y10, Y9, Y14, Y13) \
	ROT4S(7, Y1, Y5, Y9, Y13)

// OUTV(r0, r1, r2, r3, off, t0, t1): XOR the two blocks whose rows are
// r0-r3 into the 128 bytes at off(DI), via t0 and t1 (which may be the
// same register): the low lanes are the first block, the high lanes the
// second.
#define OUTV(r0, r1, r2, r3, off, t0, t1) \
	VPERM2I128 $0x20, r1, r0, t0; VPXOR (off)(DI), t0, t0; VMOVDQU t0, (off)(DI) \
	VPERM2I128 $0x20, r3, r2, t1; VPXOR (off+32)(DI), t1, t1; VMOVDQU t1, (off+32)(DI) \
	VPERM2I128 $0x31, r1, r0, t0; VPXOR (off+64)(DI), t0, t0; VMOVDQU t0, (off+64)(DI) \
	VPERM2I128 $0x31, r3, r2, t1; VPXOR (off+96)(DI), t1, t1; VMOVDQU t1, (off+96)(DI)

// func chachaAVX2(s *[16]uint32, data *byte, chunks int)
TEXT ·chachaAVX2(SB), NOSPLIT, $160-24
	MOVQ s+0(FP), AX
	MOVQ data+8(FP), DI
	MOVQ chunks+16(FP), CX

	VBROADCASTI128 0(AX), Y0
	VMOVDQU Y0, 32(SP)
	VBROADCASTI128 16(AX), Y0
	VMOVDQU Y0, 64(SP)
	VBROADCASTI128 32(AX), Y0
	VMOVDQU Y0, 96(SP)
	VBROADCASTI128 48(AX), Y0
	VPADDD ·chachaInc01<>(SB), Y0, Y0
	VMOVDQU Y0, 128(SP)

chunk:
	VMOVDQU 32(SP), Y0
	VMOVDQU 64(SP), Y1
	VMOVDQU 96(SP), Y2
	VMOVDQU 128(SP), Y3
	VMOVDQA Y0, Y4
	VMOVDQA Y1, Y5
	VMOVDQA Y2, Y6
	VPADDD  ·chachaInc2<>(SB), Y3, Y7
	VMOVDQA Y0, Y8
	VMOVDQA Y1, Y9
	VMOVDQA Y2, Y10
	VPADDD  ·chachaInc2<>(SB), Y7, Y11
	VMOVDQA Y0, Y12
	VMOVDQA Y1, Y13
	VMOVDQA Y2, Y14
	VPADDD  ·chachaInc2<>(SB), Y11, Y15
	MOVQ    $10, DX

doubleround:
	QR8V
	SHUF8(0x39, 0x4e, 0x93)
	QR8V
	SHUF8(0x93, 0x4e, 0x39)
	DECQ DX
	JNZ  doubleround

	VPADDD 32(SP), Y0, Y0
	VPADDD 64(SP), Y1, Y1
	VPADDD 96(SP), Y2, Y2
	VPADDD 128(SP), Y3, Y3
	VMOVDQU Y15, 0(SP)
	OUTV(Y0, Y1, Y2, Y3, 0, Y15, Y15)
	VMOVDQU 0(SP), Y15
	VMOVDQU 128(SP), Y3
	VPADDD 32(SP), Y4, Y4
	VPADDD 64(SP), Y5, Y5
	VPADDD 96(SP), Y6, Y6
	VPADDD ·chachaInc2<>(SB), Y3, Y3
	VPADDD Y3, Y7, Y7
	OUTV(Y4, Y5, Y6, Y7, 128, Y0, Y1)
	VPADDD 32(SP), Y8, Y8
	VPADDD 64(SP), Y9, Y9
	VPADDD 96(SP), Y10, Y10
	VPADDD ·chachaInc2<>(SB), Y3, Y3
	VPADDD Y3, Y11, Y11
	OUTV(Y8, Y9, Y10, Y11, 256, Y0, Y1)
	VPADDD 32(SP), Y12, Y12
	VPADDD 64(SP), Y13, Y13
	VPADDD 96(SP), Y14, Y14
	VPADDD ·chachaInc2<>(SB), Y3, Y3
	VPADDD Y3, Y15, Y15
	OUTV(Y12, Y13, Y14, Y15, 384, Y0, Y1)

	VPADDD ·chachaInc2<>(SB), Y3, Y3
	VMOVDQU Y3, 128(SP)
	ADDQ   $512, DI
	DECQ   CX
	JNZ    chunk

	VZEROUPPER
	RET

// In chachaAVX512, Y16-Y19 hold the input rows of blocks 0-1 (Y19 their
// counters), Y20-Y22 the counter rows of blocks 2-3, 4-5 and 6-7, Y23 and
// Y24 scratch for the output.

// QR8: QR8V with AVX-512, rotating with VPROLD.
#define QR8 \
	ADD4(Y1, Y0, Y5, Y4, Y9, Y8, Y13, Y12) \
	XOR4(Y0, Y3, Y4, Y7, Y8, Y11, Y12, Y15) \
	ROL4(16, Y3, Y7, Y11, Y15) \
	ADD4(Y3, Y2, Y7, Y6, Y11, Y10, Y15, Y14) \
	XOR4(Y2, Y1, Y6, Y5, Y10, Y9, Y14, Y13) \
	ROL4(12, Y1, Y5, Y9, Y13) \
	ADD4(Y1, Y0, Y5, Y4, Y9, Y8, Y13, Y12) \
	XOR4(Y0, Y3, Y4, Y7, Y8, Y11, Y12, Y15) \
	ROL4(8, Y3, Y7, Y11, Y15) \
	ADD4(Y3, Y2, Y7, Y6, Y11, Y10, Y15, Y14) \
	XOR4(Y2, Y1, Y6, Y5, Y10, Y9, Y14, Y13) \
	ROL4(7, Y1, Y5, Y9, Y13)

// OUT512(r0, r1, r2, r3, off): OUTV with the scratch registers Y23 and
// Y24, which VPERM2I128 cannot name: VSHUFI32X4 picks the lanes instead.
#define OUT512(r0, r1, r2, r3, off) \
	VSHUFI32X4 $0, r1, r0, Y23; VPXORD (off)(DI), Y23, Y23; VMOVDQU32 Y23, (off)(DI) \
	VSHUFI32X4 $0, r3, r2, Y24; VPXORD (off+32)(DI), Y24, Y24; VMOVDQU32 Y24, (off+32)(DI) \
	VSHUFI32X4 $3, r1, r0, Y23; VPXORD (off+64)(DI), Y23, Y23; VMOVDQU32 Y23, (off+64)(DI) \
	VSHUFI32X4 $3, r3, r2, Y24; VPXORD (off+96)(DI), Y24, Y24; VMOVDQU32 Y24, (off+96)(DI)

// func chachaAVX512(s *[16]uint32, data *byte, chunks int)
TEXT ·chachaAVX512(SB), NOSPLIT, $0-24
	MOVQ s+0(FP), AX
	MOVQ data+8(FP), DI
	MOVQ chunks+16(FP), CX

	VBROADCASTI32X4 0(AX), Y16
	VBROADCASTI32X4 16(AX), Y17
	VBROADCASTI32X4 32(AX), Y18
	VBROADCASTI32X4 48(AX), Y19
	VPADDD ·chachaInc01<>(SB), Y19, Y19

chunk512:
	VPADDD ·chachaInc2<>(SB), Y19, Y20
	VPADDD ·chachaInc2<>(SB), Y20, Y21
	VPADDD ·chachaInc2<>(SB), Y21, Y22
	VMOVDQA32 Y16, Y0
	VMOVDQA32 Y17, Y1
	VMOVDQA32 Y18, Y2
	VMOVDQA32 Y19, Y3
	VMOVDQA32 Y16, Y4
	VMOVDQA32 Y17, Y5
	VMOVDQA32 Y18, Y6
	VMOVDQA32 Y20, Y7
	VMOVDQA32 Y16, Y8
	VMOVDQA32 Y17, Y9
	VMOVDQA32 Y18, Y10
	VMOVDQA32 Y21, Y11
	VMOVDQA32 Y16, Y12
	VMOVDQA32 Y17, Y13
	VMOVDQA32 Y18, Y14
	VMOVDQA32 Y22, Y15
	MOVQ $10, DX

doubleround512:
	QR8
	SHUF8(0x39, 0x4e, 0x93)
	QR8
	SHUF8(0x93, 0x4e, 0x39)
	DECQ DX
	JNZ  doubleround512

	ADD4(Y16, Y0, Y16, Y4, Y16, Y8, Y16, Y12)
	ADD4(Y17, Y1, Y17, Y5, Y17, Y9, Y17, Y13)
	ADD4(Y18, Y2, Y18, Y6, Y18, Y10, Y18, Y14)
	ADD4(Y19, Y3, Y20, Y7, Y21, Y11, Y22, Y15)

	OUT512(Y0, Y1, Y2, Y3, 0)
	OUT512(Y4, Y5, Y6, Y7, 128)
	OUT512(Y8, Y9, Y10, Y11, 256)
	OUT512(Y12, Y13, Y14, Y15, 384)

	VPADDD ·chachaInc2<>(SB), Y22, Y19
	ADDQ   $512, DI
	DECQ   CX
	JNZ    chunk512

	VZEROUPPER
	RET

// Byte shuffles that rotate each 32-bit word left by 16 (bytes 2,3,0,1)
// and by 8 (3,0,1,2).
DATA ·chachaRot16<>+0x00(SB)/8, $0x0504070601000302
DATA ·chachaRot16<>+0x08(SB)/8, $0x0d0c0f0e09080b0a
DATA ·chachaRot16<>+0x10(SB)/8, $0x0504070601000302
DATA ·chachaRot16<>+0x18(SB)/8, $0x0d0c0f0e09080b0a
GLOBL ·chachaRot16<>(SB), RODATA|NOPTR, $32

DATA ·chachaRot8<>+0x00(SB)/8, $0x0605040702010003
DATA ·chachaRot8<>+0x08(SB)/8, $0x0e0d0c0f0a09080b
DATA ·chachaRot8<>+0x10(SB)/8, $0x0605040702010003
DATA ·chachaRot8<>+0x18(SB)/8, $0x0e0d0c0f0a09080b
GLOBL ·chachaRot8<>(SB), RODATA|NOPTR, $32

// Counter increments: the high lane's block is one after the low lane's;
// each pair two after the one before.
DATA ·chachaInc01<>+0x00(SB)/8, $0
DATA ·chachaInc01<>+0x08(SB)/8, $0
DATA ·chachaInc01<>+0x10(SB)/8, $1
DATA ·chachaInc01<>+0x18(SB)/8, $0
GLOBL ·chachaInc01<>(SB), RODATA|NOPTR, $32

DATA ·chachaInc2<>+0x00(SB)/8, $2
DATA ·chachaInc2<>+0x08(SB)/8, $0
DATA ·chachaInc2<>+0x10(SB)/8, $2
DATA ·chachaInc2<>+0x18(SB)/8, $0
GLOBL ·chachaInc2<>(SB), RODATA|NOPTR, $32
