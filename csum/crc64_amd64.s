//go:build amd64 && !noasm

#include "textflag.h"

// CRC64BE (MSB-first, P = x^64 + 0x42F0E1EBA9EA3693) by carry-less
// multiply folding; the mathematics and the constants are explained and
// derived in crc64_consts_test.go, and crc64FoldModel there is a Go model
// of this code.
//
// Each 16-byte block is loaded and byte-reversed with PSHUFB, so bit 127 of
// the register is the MSB of the first byte and the register is the block
// as a polynomial. Folding a 128-bit value A = H·x^64 + L forward by D
// bits: A·x^D ≡ H·(x^(D+64) mod P) + L·(x^D mod P), i.e. two PCLMULQDQs
// against a constant register holding (lo, hi) = (x^D mod P, x^(D+64) mod P).

// Offsets into ·crc64Consts.
#define K1024   0    // D = 1024: 8 lanes, 128 bytes per iteration
#define K896    16   // lanes 0..6 onto lane 7
#define K768    32
#define K640    48
#define K512    64
#define K384    80
#define K256    96
#define K128    112  // D = 128: one 16-byte block; lo also used at the end
#define BARRETT 128  // (floor(x^128/P) - x^64, P - x^64)
#define BSWAP   144  // PSHUFB byte-reversal mask

// FOLD(x, k, tmp): x = x folded by the constant pair in k, using tmp.
#define FOLD(x, k, tmp) \
	MOVO      x, tmp     \
	PCLMULQDQ $0x00, k, x \
	PCLMULQDQ $0x11, k, tmp \
	PXOR      tmp, x

// FOLDLOAD(x, off): x = fold1024(x) XOR the reversed block at off(SI).
#define FOLDLOAD(x, off) \
	FOLD(x, X9, X10)     \
	MOVOU  off(SI), X11  \
	PSHUFB X8, X11       \
	PXOR   X11, x

// LOAD(x, off): x = the reversed block at off(SI).
#define LOAD(x, off) \
	MOVOU  off(SI), x \
	PSHUFB X8, x

// func crc64CLMUL(crc uint64, p []byte) uint64
// len(p) must be a positive multiple of 16.
TEXT ·crc64CLMUL(SB), NOSPLIT, $0-40
	MOVQ crc+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX

	MOVOU ·crc64Consts+BSWAP(SB), X8
	MOVQ  AX, X12
	PSLLDQ $8, X12 // X12 = crc·x^64: the crc lines up with the first 8 bytes

	CMPQ CX, $128
	JB   one

	// Eight independent lanes of 16 bytes.
	LOAD(X0, 0)
	PXOR X12, X0
	LOAD(X1, 16)
	LOAD(X2, 32)
	LOAD(X3, 48)
	LOAD(X4, 64)
	LOAD(X5, 80)
	LOAD(X6, 96)
	LOAD(X7, 112)
	ADDQ $128, SI
	SUBQ $128, CX
	CMPQ CX, $128
	JB   collapse

	MOVOU ·crc64Consts+K1024(SB), X9

loop128:
	FOLDLOAD(X0, 0)
	FOLDLOAD(X1, 16)
	FOLDLOAD(X2, 32)
	FOLDLOAD(X3, 48)
	FOLDLOAD(X4, 64)
	FOLDLOAD(X5, 80)
	FOLDLOAD(X6, 96)
	FOLDLOAD(X7, 112)
	ADDQ $128, SI
	SUBQ $128, CX
	CMPQ CX, $128
	JAE  loop128

collapse:
	// Lane i (0..6) is 128·(7-i) bits ahead of lane 7: fold each by that
	// distance and add them all into lane 7, independently of each other.
	MOVOU ·crc64Consts+K896(SB), X9
	FOLD(X0, X9, X10)
	MOVOU ·crc64Consts+K768(SB), X9
	FOLD(X1, X9, X10)
	MOVOU ·crc64Consts+K640(SB), X9
	FOLD(X2, X9, X10)
	MOVOU ·crc64Consts+K512(SB), X9
	FOLD(X3, X9, X10)
	MOVOU ·crc64Consts+K384(SB), X9
	FOLD(X4, X9, X10)
	MOVOU ·crc64Consts+K256(SB), X9
	FOLD(X5, X9, X10)
	MOVOU ·crc64Consts+K128(SB), X9
	FOLD(X6, X9, X10)
	PXOR X1, X0
	PXOR X3, X2
	PXOR X5, X4
	PXOR X7, X6
	PXOR X2, X0
	PXOR X6, X4
	PXOR X4, X0
	JMP  tail

one:
	LOAD(X0, 0)
	PXOR X12, X0
	ADDQ $16, SI
	SUBQ $16, CX
	MOVOU ·crc64Consts+K128(SB), X9

tail:
	// X9 = the D = 128 pair here on both paths.
	TESTQ CX, CX
	JZ    final

loop16:
	FOLD(X0, X9, X10)
	LOAD(X11, 0)
	PXOR  X11, X0
	ADDQ  $16, SI
	SUBQ  $16, CX
	JNZ   loop16

final:
	// X0 = A = H·x^64 + L with message ≡ A; the CRC is A·x^64 mod P.
	// T = H·(x^128 mod P) + L·x^64.
	MOVO      X0, X10
	PCLMULQDQ $0x01, X9, X10 // H × (x^128 mod P)
	PSLLDQ    $8, X0         // L·x^64
	PXOR      X10, X0        // X0 = T = Th·x^64 + Tl

	// Barrett: q = Th + hi64(Th·μ'); crc = Tl + lo64(q·P').
	MOVOU     ·crc64Consts+BARRETT(SB), X9
	MOVO      X0, X10
	PCLMULQDQ $0x01, X9, X10 // Th × μ'
	PSRLDQ    $8, X10        // hi64(Th·μ') in the low half
	MOVO      X0, X11
	PSRLDQ    $8, X11        // Th in the low half
	PXOR      X11, X10       // q
	PCLMULQDQ $0x10, X9, X10 // q × P'
	PXOR      X10, X0
	MOVQ      X0, AX
	MOVQ      AX, ret+32(FP)
	RET
