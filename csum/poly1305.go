package csum

import (
	"encoding/binary"
	"math/bits"

	//lint:ignore SA1019 bcachefs MACs with bare Poly1305 keyed from the ChaCha20 stream (not the AEAD), as the kernel does
	"golang.org/x/crypto/poly1305"
)

// Poly1305 (RFC 8439 section 2.5) in radix 2^44: a number below 2^130 is
// three limbs of 44, 44 and 42 bits. The same radix serves the pure-Go
// code here and the vector code (poly1305_amd64.s), whose 52-bit integer
// multiply-adds take limbs of up to 52 bits; the headroom above 44 bits
// lets sums of limbs wait for their carries.

const (
	mask44 = 1<<44 - 1
	mask42 = 1<<42 - 1
	// polyHiBit is the 2^128 bit a whole 16-byte block adds, in limb 2.
	polyHiBit = 1 << (128 - 88)
)

// polyElem is a number modulo 2^130-5 in three limbs of 44, 44 and 42
// bits (each may run a few bits over until carried).
type polyElem [3]uint64

// polyMul returns h*r modulo 2^130-5, its limbs carried to 44, 44 and 42
// bits but for limb 1, which may exceed 44 bits by a small carry. h's
// limbs must be below 2^52 and r's reduced (below 2^44, 2^44, 2^42).
//
// 2^130 = 5 (mod 2^130-5), so a product that lands at or above limb 3
// (2^132 = 4*2^130) comes back multiplied by 20 into the limb three
// places lower.
func polyMul(h, r *polyElem) polyElem {
	o0, o1, o2 := polyMul3(h[0], h[1], h[2], r[0], r[1], r[2])
	return polyElem{o0, o1, o2}
}

// polyMul3 is polyMul on limbs in registers.
func polyMul3(h0, h1, h2, r0, r1, r2 uint64) (o0, o1, o2 uint64) {
	s1, s2 := r1*20, r2*20
	// d0 = h0*r0 + h1*s2 + h2*s1 and so on, each a 128-bit sum (hi, lo).
	d0h, d0l := mulAdd3(h0, r0, h1, s2, h2, s1)
	d1h, d1l := mulAdd3(h0, r1, h1, r0, h2, s2)
	d2h, d2l := mulAdd3(h0, r2, h1, r1, h2, r0)
	c := d0l>>44 | d0h<<20
	o0 = d0l & mask44
	d1l, cy := bits.Add64(d1l, c, 0)
	d1h += cy
	c = d1l>>44 | d1h<<20
	o1 = d1l & mask44
	d2l, cy = bits.Add64(d2l, c, 0)
	d2h += cy
	c = d2l>>42 | d2h<<22
	o2 = d2l & mask42
	o0 += c * 5
	c = o0 >> 44
	o0 &= mask44
	o1 += c
	return o0, o1, o2
}

// mulAdd3 returns a*b + c*d + e*f as a 128-bit (hi, lo).
func mulAdd3(a, b, c, d, e, f uint64) (hi, lo uint64) {
	hi, lo = bits.Mul64(a, b)
	h2, l2 := bits.Mul64(c, d)
	var cy uint64
	lo, cy = bits.Add64(lo, l2, 0)
	hi += h2 + cy
	h2, l2 = bits.Mul64(e, f)
	lo, cy = bits.Add64(lo, l2, 0)
	hi += h2 + cy
	return hi, lo
}

// polyLoad returns the 16 bytes at b as limbs, with hibit added to limb 2.
func polyLoad(b []byte, hibit uint64) polyElem {
	t0 := binary.LittleEndian.Uint64(b[0:8])
	t1 := binary.LittleEndian.Uint64(b[8:16])
	return polyElem{t0 & mask44, (t0>>44 | t1<<20) & mask44, t1>>24 | hibit}
}

// polyClamp returns r, the first half of a one-time key, clamped.
func polyClamp(key *[32]byte) polyElem {
	r0 := binary.LittleEndian.Uint64(key[0:8]) & 0x0ffffffc0fffffff
	r1 := binary.LittleEndian.Uint64(key[8:16]) & 0x0ffffffc0ffffffc
	return polyElem{r0 & mask44, (r0>>44 | r1<<20) & mask44, r1 >> 24}
}

// polyBlocks runs h through the message blocks of msg: whole 16-byte
// blocks, then a last short one padded with a 1 byte.
func polyBlocks(h *polyElem, r *polyElem, msg []byte) {
	h0, h1, h2 := h[0], h[1], h[2]
	r0, r1, r2 := r[0], r[1], r[2]
	for len(msg) >= 16 {
		m := polyLoad(msg, polyHiBit)
		h0, h1, h2 = polyMul3(h0+m[0], h1+m[1], h2+m[2], r0, r1, r2)
		msg = msg[16:]
	}
	if len(msg) > 0 {
		var last [16]byte
		copy(last[:], msg)
		last[len(msg)] = 1
		m := polyLoad(last[:], 0)
		h0, h1, h2 = polyMul3(h0+m[0], h1+m[1], h2+m[2], r0, r1, r2)
	}
	*h = polyElem{h0, h1, h2}
}

// polyCarry carries h's limbs to 44, 44 and 42 bits; h is then below
// 2^130 but may still be at or above 2^130-5.
func polyCarry(h *polyElem) {
	for range 2 {
		c := h[0] >> 44
		h[0] &= mask44
		h[1] += c
		c = h[1] >> 44
		h[1] &= mask44
		h[2] += c
		c = h[2] >> 42
		h[2] &= mask42
		h[0] += c * 5
	}
	c := h[0] >> 44
	h[0] &= mask44
	h[1] += c
	c = h[1] >> 44
	h[1] &= mask44
	h[2] += c
}

// polyFinish writes the tag: h reduced modulo 2^130-5, plus s (the key's
// second half) modulo 2^128.
func polyFinish(tag *[16]byte, h polyElem, key *[32]byte) {
	polyReduce(&h)
	lo := h[0] | h[1]<<44
	hi := h[1]>>20 | h[2]<<24
	lo, cy := bits.Add64(lo, binary.LittleEndian.Uint64(key[16:24]), 0)
	hi, _ = bits.Add64(hi, binary.LittleEndian.Uint64(key[24:32]), cy)
	binary.LittleEndian.PutUint64(tag[0:8], lo)
	binary.LittleEndian.PutUint64(tag[8:16], hi)
}

// polyGeneric is the Poly1305 tag of msg under the one-time key, in Go:
// the twin of the vector code.
func polyGeneric(tag *[16]byte, msg []byte, key *[32]byte) {
	r := polyClamp(key)
	var h polyElem
	polyBlocks(&h, &r, msg)
	polyFinish(tag, h, key)
}

// polySum writes the Poly1305 tag of msg under the one-time key: with the
// fastest vector code the CPU has when msg is long enough to repay its
// set-up, else with golang.org/x/crypto's (assembly on amd64).
func polySum(tag *[16]byte, msg []byte, key *[32]byte) {
	if v := polyBest; v != nil && len(msg) >= v.min {
		polyVector(v, tag, msg, key)
		return
	}
	poly1305.Sum(tag, msg, key)
}

// polyVec is one vector implementation of Poly1305's message blocks.
type polyVec struct {
	name string
	ok   bool // the CPU has what it needs
	// lanes is the number of blocks taken at a time (a chunk), one to a
	// lane: 4 or 8.
	lanes int
	// min is the shortest message it is used for: below it, its set-up
	// (the powers of r, the lanes' sum, ~200 ns) costs more than it
	// saves against x/crypto's (BenchmarkPoly1305).
	min int
	// kernel computes, for each block j of a chunk, H_j: the sum by
	// Horner's rule in m (r^lanes, reduced) of the blocks j, j+lanes,
	// j+2*lanes, … of the first chunks chunks of msg (times m, plus the
	// next block), each limb under 2^46 (polyRun).
	kernel polyKernel
}

// polyVector is the tag of msg with v taking its whole chunks: the sum
// over the lanes of H_j times r^(lanes-j) is the state after those
// blocks. That sum is taken as a tree, which needs only r, r^2 and r^4:
// with 8 lanes G_j = H_j r^4 + H_(j+4), F_j = G_j r^2 + G_(j+2), h = F_0
// r^2 + F_1 r; with 4, F_j = H_j r^2 + H_(j+2), h = F_0 r^2 + F_1 r. The
// blocks after the last whole chunk go through polyBlocks.
func polyVector(v *polyVec, tag *[16]byte, msg []byte, key *[32]byte) {
	r := polyClamp(key)
	chunks := len(msg) / (16 * v.lanes)
	r2 := polyMul(&r, &r)
	polyReduce(&r2)
	r4 := polyMul(&r2, &r2)
	polyReduce(&r4)
	m := r4
	if v.lanes == 8 {
		m = polyMul(&r4, &r4)
		polyReduce(&m)
	}
	var hs [8]polyElem
	if chunks > 0 {
		polyRun(v.kernel, &hs, &m, msg, chunks)
	}
	// mulAdd returns a*b + c, uncarried: limbs under 2^47 when a's and c's
	// are under 2^46, what polyMul3 may take.
	mulAdd := func(a, b, c *polyElem) polyElem {
		o0, o1, o2 := polyMul3(a[0], a[1], a[2], b[0], b[1], b[2])
		return polyElem{o0 + c[0], o1 + c[1], o2 + c[2]}
	}
	if v.lanes == 8 {
		for j := range 4 {
			hs[j] = mulAdd(&hs[j], &r4, &hs[j+4])
		}
	}
	f0 := mulAdd(&hs[0], &r2, &hs[2])
	f1 := mulAdd(&hs[1], &r2, &hs[3])
	var zero polyElem
	f1 = mulAdd(&f1, &r, &zero)
	h := mulAdd(&f0, &r2, &f1)
	polyCarry(&h)
	polyBlocks(&h, &r, msg[chunks*16*v.lanes:])
	polyFinish(tag, h, key)
}

// polyReduce reduces h fully modulo 2^130-5.
func polyReduce(h *polyElem) {
	polyCarry(h)
	// g = h + 5 - 2^130; h >= 2^130-5 exactly when g does not go below 0.
	g0 := h[0] + 5
	c := g0 >> 44
	g0 &= mask44
	g1 := h[1] + c
	c = g1 >> 44
	g1 &= mask44
	g2 := h[2] + c - 1<<42
	keep := g2>>63 - 1 // all ones when g >= 0
	h[0] = h[0]&^keep | g0&keep
	h[1] = h[1]&^keep | g1&keep
	h[2] = (h[2]&^keep | g2&keep) & mask42
}

// polyIFMALaneBlock is the block of a chunk each lane of the IFMA code
// takes: two 64-byte loads (blocks 0-3 and 4-7) interleave their 64-bit
// words 128 bits at a time.
var polyIFMALaneBlock = [8]int{0, 4, 1, 5, 2, 6, 3, 7}

// polyKernel names the code that runs a polyVec's chunks.
type polyKernel int

// The kernels: the assembly and its Go twin, for each vector layout.
const (
	polyKernelIFMA polyKernel = iota
	polyKernelIFMAGo
	polyKernelAVX2
	polyKernelAVX2Go
)

// polyRun runs kernel k on the first chunks chunks of msg with multiplier
// m, leaving H_j in hs[j] (the calls are direct, so that nothing escapes).
func polyRun(k polyKernel, hs *[8]polyElem, m *polyElem, msg []byte, chunks int) {
	switch k {
	case polyKernelIFMA, polyKernelIFMAGo:
		var lanes [3][8]uint64
		p := [5]uint64{m[0], m[1], m[2], m[1] * 20, m[2] * 20}
		if k == polyKernelIFMA {
			polyIFMAAsm(&lanes, &p, msg, chunks)
		} else {
			polyIFMAGo(&lanes, &p, msg, chunks)
		}
		for l, j := range polyIFMALaneBlock {
			hs[j] = polyElem{lanes[0][l], lanes[1][l], lanes[2][l]}
		}
	case polyKernelAVX2, polyKernelAVX2Go:
		var p [9][4]uint64
		r := polyAVX2Limbs(m)
		for l := range 4 {
			for i := range 5 {
				p[i][l] = r[i]
			}
			for i := 1; i < 5; i++ {
				p[4+i][l] = r[i] * 5
			}
		}
		var lanes [5][4]uint64
		if k == polyKernelAVX2 {
			polyAVX2Asm(&lanes, &p, msg, chunks)
		} else {
			polyAVX2Go(&lanes, &p, msg, chunks)
		}
		for l, j := range polyAVX2LaneBlock {
			hs[j] = polyFrom26(lanes[0][l], lanes[1][l], lanes[2][l], lanes[3][l], lanes[4][l])
		}
	}
}

// polyIFMAGo is the IFMA code's computation in Go, step for step (the
// 52-bit multiply-adds taking the low 52 bits of each factor and adding
// the low or the high 52 bits of the product): for each chunk of 8 blocks
// at msg, every lane's sum is multiplied by the multiplier p holds,
// carried, and the lane's block added. The assembly's lanes equal these
// bit for bit.
func polyIFMAGo(lanes *[3][8]uint64, p *[5]uint64, msg []byte, chunks int) {
	const m52 = 1<<52 - 1
	lo := func(a, b uint64) uint64 { _, l := bits.Mul64(a&m52, b&m52); return l & m52 }
	hi := func(a, b uint64) uint64 { h, l := bits.Mul64(a&m52, b&m52); return h<<12 | l>>52 }
	r0, r1, r2, s1, s2 := p[0], p[1], p[2], p[3], p[4]
	for c := range chunks {
		for l := range 8 {
			h0, h1, h2 := lanes[0][l], lanes[1][l], lanes[2][l]
			d0l := lo(h0, r0) + lo(h1, s2) + lo(h2, s1)
			d0h := hi(h0, r0) + hi(h1, s2) + hi(h2, s1)
			d1l := lo(h0, r1) + lo(h1, r0) + lo(h2, s2)
			d1h := hi(h0, r1) + hi(h1, r0) + hi(h2, s2)
			d2l := lo(h0, r2) + lo(h1, r1) + lo(h2, r0)
			d2h := hi(h0, r2) + hi(h1, r1) + hi(h2, r0)
			h0 = d0l & mask44
			d1l += d0l>>44 + d0h<<8
			h1 = d1l & mask44
			d2l += d1l>>44 + d1h<<8
			h2 = d2l & mask42
			h0 += (d2l>>42 + d2h<<10) * 5
			h1 += h0 >> 44
			h0 &= mask44
			m := polyLoad(msg[c*128+polyIFMALaneBlock[l]*16:], polyHiBit)
			lanes[0][l], lanes[1][l], lanes[2][l] = h0+m[0], h1+m[1], h2+m[2]
		}
	}
}

// polyAVX2LaneBlock is the block of a chunk each lane of the AVX2 code
// takes: two 32-byte loads (blocks 0-1 and 2-3) interleave their 64-bit
// words 128 bits at a time.
var polyAVX2LaneBlock = [4]int{0, 2, 1, 3}

const mask26 = 1<<26 - 1

// polyAVX2Limbs returns m (reduced) in five limbs of 26 bits.
func polyAVX2Limbs(m *polyElem) [5]uint64 {
	lo := m[0] | m[1]<<44
	hi := m[1]>>20 | m[2]<<24
	// Bits 128 and 129 are bits 40 and 41 of limb 2.
	return [5]uint64{lo & mask26, lo >> 26 & mask26, (lo>>52 | hi<<12) & mask26, hi >> 14 & mask26, hi>>40 | m[2]>>40<<24}
}

// polyFrom26 returns the number of five limbs of 26 bits (each under 2^28)
// in three limbs of 44 bits, each under 2^46.
func polyFrom26(l0, l1, l2, l3, l4 uint64) polyElem {
	return polyElem{
		l0 + l1<<26&mask44,
		l1>>18 + l2<<8 + l3<<34&mask44,
		l3>>10 + l4<<16,
	}
}

// polyAVX2Go is the AVX2 code's computation in Go, step for step (the
// 32x32-bit multiplies taking the low 32 bits of each factor): for each
// chunk of 4 blocks at msg, every lane's sum is multiplied by the
// multiplier p holds, carried, and the lane's block added. The
// assembly's lanes equal these bit for bit.
func polyAVX2Go(lanes *[5][4]uint64, p *[9][4]uint64, msg []byte, chunks int) {
	mul := func(a, b uint64) uint64 { return uint64(uint32(a)) * uint64(uint32(b)) }
	for c := range chunks {
		for l := range 4 {
			h0, h1, h2, h3, h4 := lanes[0][l], lanes[1][l], lanes[2][l], lanes[3][l], lanes[4][l]
			r0, r1, r2, r3, r4 := p[0][l], p[1][l], p[2][l], p[3][l], p[4][l]
			s1, s2, s3, s4 := p[5][l], p[6][l], p[7][l], p[8][l]
			d0 := mul(h0, r0) + mul(h1, s4) + mul(h2, s3) + mul(h3, s2) + mul(h4, s1)
			d1 := mul(h0, r1) + mul(h1, r0) + mul(h2, s4) + mul(h3, s3) + mul(h4, s2)
			d2 := mul(h0, r2) + mul(h1, r1) + mul(h2, r0) + mul(h3, s4) + mul(h4, s3)
			d3 := mul(h0, r3) + mul(h1, r2) + mul(h2, r1) + mul(h3, r0) + mul(h4, s4)
			d4 := mul(h0, r4) + mul(h1, r3) + mul(h2, r2) + mul(h3, r1) + mul(h4, r0)
			// Two carry chains at once: 0->1->2->3 and 3->4->0->1.
			c0, c3 := d0>>26, d3>>26
			d0, d3 = d0&mask26, d3&mask26
			d1, d4 = d1+c0, d4+c3
			c1, c4 := d1>>26, d4>>26
			d1, d4 = d1&mask26, d4&mask26
			d2, d0 = d2+c1, d0+c4*5
			c2, c0 := d2>>26, d0>>26
			d2, d0 = d2&mask26, d0&mask26
			d3, d1 = d3+c2, d1+c0
			c3 = d3 >> 26
			d3 &= mask26
			d4 += c3
			b := msg[c*64+polyAVX2LaneBlock[l]*16:]
			t0 := binary.LittleEndian.Uint64(b[0:8])
			t1 := binary.LittleEndian.Uint64(b[8:16])
			lanes[0][l] = d0 + t0&mask26
			lanes[1][l] = d1 + t0>>26&mask26
			lanes[2][l] = d2 + (t0>>52|t1<<12)&mask26
			lanes[3][l] = d3 + t1>>14&mask26
			lanes[4][l] = d4 + (t1>>40 | 1<<24)
		}
	}
}

// polyVecsGo are the vector implementations' Go twins as polyVecs, on
// every build (the tests run polyVector through them).
var polyVecsGo = []polyVec{
	{"ifma-go", true, 8, 0, polyKernelIFMAGo},
	{"avx2-go", true, 4, 0, polyKernelAVX2Go},
}

// polyBest is the fastest vector implementation the CPU has, or nil.
var polyBest = func() *polyVec {
	for i := range polyVecs {
		if polyVecs[i].ok {
			return &polyVecs[i]
		}
	}
	return nil
}()
