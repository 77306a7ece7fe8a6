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
// vector code when the CPU has it and msg is long enough to repay its
// set-up, else with golang.org/x/crypto's (assembly on amd64).
func polySum(tag *[16]byte, msg []byte, key *[32]byte) {
	if polyVecOK && len(msg) >= polyVecMin {
		polyVector(tag, msg, key)
		return
	}
	poly1305.Sum(tag, msg, key)
}

// polyVector is the tag of msg with the vector code taking its whole
// chunks of polyLanes blocks: the lane of block j sums the blocks j,
// j+polyLanes, j+2*polyLanes, … by Horner's rule in r^polyLanes (times
// r^polyLanes, plus the next block), so that the sum over the lanes of
// each lane's sum H_j times r^(polyLanes-j) is the state after those
// blocks. That sum is taken as a tree, which needs only r, r^2 and r^4:
// G_j = H_j r^4 + H_(j+4), F_j = G_j r^2 + G_(j+2), h = F_0 r^2 + F_1 r.
// The blocks after the last whole chunk go through polyBlocks.
func polyVector(tag *[16]byte, msg []byte, key *[32]byte) {
	r := polyClamp(key)
	chunks := len(msg) / (16 * polyLanes)
	r2 := polyMul(&r, &r)
	polyReduce(&r2)
	r4 := polyMul(&r2, &r2)
	polyReduce(&r4)
	r8 := polyMul(&r4, &r4)
	polyReduce(&r8)
	var lanes [3][polyLanes]uint64
	params := polyVecParams(&r8)
	polyVecBlocks(&lanes, &params, msg, chunks)
	// lane returns H_j, from the lane that took block j. The sums below
	// have limbs under 2^47: what polyMul3 may take.
	lane := func(j int) (uint64, uint64, uint64) {
		l := polyBlockLane[j]
		return lanes[0][l], lanes[1][l], lanes[2][l]
	}
	// gt returns G_j.
	gt := func(j int) (uint64, uint64, uint64) {
		a0, a1, a2 := lane(j)
		b0, b1, b2 := lane(j + 4)
		a0, a1, a2 = polyMul3(a0, a1, a2, r4[0], r4[1], r4[2])
		return a0 + b0, a1 + b1, a2 + b2
	}
	// ft returns F_j.
	ft := func(j int) (uint64, uint64, uint64) {
		a0, a1, a2 := gt(j)
		b0, b1, b2 := gt(j + 2)
		a0, a1, a2 = polyMul3(a0, a1, a2, r2[0], r2[1], r2[2])
		return a0 + b0, a1 + b1, a2 + b2
	}
	a0, a1, a2 := ft(0)
	b0, b1, b2 := ft(1)
	a0, a1, a2 = polyMul3(a0, a1, a2, r2[0], r2[1], r2[2])
	b0, b1, b2 = polyMul3(b0, b1, b2, r[0], r[1], r[2])
	h := polyElem{a0 + b0, a1 + b1, a2 + b2}
	polyCarry(&h)
	polyBlocks(&h, &r, msg[chunks*16*polyLanes:])
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

// polyLanes is the number of blocks the vector code takes at a time, one
// to a 64-bit lane of a 512-bit register.
const polyLanes = 8

// polyLaneBlock is the block of a chunk each lane takes: two 64-byte
// loads (blocks 0-3 and 4-7) interleave their 64-bit words 128 bits at a
// time.
var polyLaneBlock = [polyLanes]int{0, 4, 1, 5, 2, 6, 3, 7}

// polyBlockLane is the lane that takes each block of a chunk.
var polyBlockLane = [polyLanes]int{0, 2, 4, 6, 1, 3, 5, 7}

// polyVecParams returns what the vector code multiplies by: the limbs of
// m (r^polyLanes, reduced) and 20 times its limbs 1 and 2.
func polyVecParams(m *polyElem) [5]uint64 {
	return [5]uint64{m[0], m[1], m[2], m[1] * 20, m[2] * 20}
}

// polyVecBlocksGo is the vector code's computation in Go, step for step
// (the 52-bit multiply-adds taking the low 52 bits of each factor and
// adding the low or the high 52 bits of the product): for each chunk of
// polyLanes blocks at msg, every lane's sum is multiplied by the
// multiplier p holds, carried, and the lane's block added. The vector
// code's lanes equal this bit for bit.
func polyVecBlocksGo(lanes *[3][polyLanes]uint64, p *[5]uint64, msg []byte, chunks int) {
	const m52 = 1<<52 - 1
	lo := func(a, b uint64) uint64 { _, l := bits.Mul64(a&m52, b&m52); return l & m52 }
	hi := func(a, b uint64) uint64 { h, l := bits.Mul64(a&m52, b&m52); return h<<12 | l>>52 }
	r0, r1, r2, s1, s2 := p[0], p[1], p[2], p[3], p[4]
	for c := range chunks {
		for l := range polyLanes {
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
			m := polyLoad(msg[c*16*polyLanes+polyLaneBlock[l]*16:], polyHiBit)
			lanes[0][l], lanes[1][l], lanes[2][l] = h0+m[0], h1+m[1], h2+m[2]
		}
	}
}
