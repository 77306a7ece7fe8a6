package csum

import "encoding/binary"

// crc64Poly is the ECMA-182 polynomial in MSB-first (normal) form, as used
// by the Linux kernel's crc64_be.
const crc64Poly = 0x42F0E1EBA9EA3693

// crc64Tables holds the slicing-by-8 tables: crc64Tables[k][b] is the CRC
// contribution of byte b followed by k zero bytes.
var crc64Tables [8][256]uint64

// crc64Update is the CRC64BE implementation in use, chosen once in init:
// crc64UpdateFast (carry-less multiply folding, crc64_amd64.s) when the
// build and the CPU support it (useFast), else crc64Generic.
var crc64Update func(uint64, []byte) uint64

func init() {
	for i := range 256 {
		c := uint64(i) << 56
		for range 8 {
			if c&(1<<63) != 0 {
				c = c<<1 ^ crc64Poly
			} else {
				c <<= 1
			}
		}
		crc64Tables[0][i] = c
	}
	for k := 1; k < 8; k++ {
		for i := range 256 {
			c := crc64Tables[k-1][i]
			crc64Tables[k][i] = c<<8 ^ crc64Tables[0][c>>56]
		}
	}
	crc64Update = crc64Generic
	if useFast {
		crc64Update = crc64UpdateFast
	}
}

// CRC64BE updates crc with p using the Linux crc64_be algorithm: MSB-first
// CRC-64 with polynomial 0x42F0E1EBA9EA3693 and no pre- or post-inversion.
// CRC64BE(0, p) is bcachefs' crc64; ^CRC64BE(^0, p) is its crc64_nonzero.
func CRC64BE(crc uint64, p []byte) uint64 {
	return crc64Update(crc, p)
}

// crc64Generic is the portable slicing-by-8 implementation of CRC64BE.
func crc64Generic(crc uint64, p []byte) uint64 {
	t := &crc64Tables
	for len(p) >= 8 {
		x := crc ^ binary.BigEndian.Uint64(p)
		crc = t[7][x>>56] ^
			t[6][byte(x>>48)] ^
			t[5][byte(x>>40)] ^
			t[4][byte(x>>32)] ^
			t[3][byte(x>>24)] ^
			t[2][byte(x>>16)] ^
			t[1][byte(x>>8)] ^
			t[0][byte(x)]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc>>56)^b] ^ crc<<8
	}
	return crc
}
