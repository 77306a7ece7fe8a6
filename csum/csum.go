// Package csum implements the bcachefs checksum types (enum bch_csum_type)
// as used for btree node bsets, journal entries (jsets) and extent crc
// entries.
//
// The unkeyed types (crc32c, crc64 and xxhash, plus their "nonzero"
// variants) can be computed directly with [Compute] or streamed with a
// [Hasher]. The ChaCha20/Poly1305 types need the filesystem encryption key
// and are reported as [ErrKeyed].
package csum

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Type is a bcachefs checksum type as stored in bset/jset flags and extent
// crc entries.
type Type uint8

// The checksum types, numbered as in enum bch_csum_type.
const (
	// None means no checksum; the stored checksum is zero.
	None Type = 0
	// CRC32CNonzero is crc32c with an all-ones seed and final inversion
	// (the standard CRC-32C / Castagnoli checksum).
	CRC32CNonzero Type = 1
	// CRC64Nonzero is crc64 (ECMA-182, MSB-first) with an all-ones seed
	// and final inversion.
	CRC64Nonzero Type = 2
	// ChaCha20Poly1305_80 is a Poly1305 MAC truncated to 80 bits; keyed.
	ChaCha20Poly1305_80 Type = 3
	// ChaCha20Poly1305_128 is a full 128-bit Poly1305 MAC; keyed.
	ChaCha20Poly1305_128 Type = 4
	// CRC32C is raw crc32c with a zero seed and no inversion.
	CRC32C Type = 5
	// CRC64 is raw crc64 (ECMA-182, MSB-first) with a zero seed and no
	// inversion.
	CRC64 Type = 6
	// XXHash is 64-bit xxHash (XXH64) with seed 0.
	XXHash Type = 7
)

// maxType is the highest known checksum type.
const maxType = XXHash

var typeNames = [...]string{
	None:                 "none",
	CRC32CNonzero:        "crc32c_nonzero",
	CRC64Nonzero:         "crc64_nonzero",
	ChaCha20Poly1305_80:  "chacha20_poly1305_80",
	ChaCha20Poly1305_128: "chacha20_poly1305_128",
	CRC32C:               "crc32c",
	CRC64:                "crc64",
	XXHash:               "xxhash",
}

var typeSizes = [...]int{
	None:                 0,
	CRC32CNonzero:        4,
	CRC64Nonzero:         8,
	ChaCha20Poly1305_80:  10,
	ChaCha20Poly1305_128: 16,
	CRC32C:               4,
	CRC64:                8,
	XXHash:               8,
}

// String returns the bcachefs name of the checksum type (e.g. "crc32c"),
// or "Type(N)" for an unknown type.
func (t Type) String() string {
	if t.Valid() {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Size returns the number of checksum bytes stored on disk for the type,
// or 0 for an unknown type.
func (t Type) Size() int {
	if t.Valid() {
		return typeSizes[t]
	}
	return 0
}

// Valid reports whether t is a known checksum type.
func (t Type) Valid() bool { return t <= maxType }

// Keyed reports whether the type needs the filesystem encryption key
// (the ChaCha20/Poly1305 types).
func (t Type) Keyed() bool {
	return t == ChaCha20Poly1305_80 || t == ChaCha20Poly1305_128
}

// ErrKeyed is returned when a checksum of a keyed type
// (ChaCha20Poly1305_80 or ChaCha20Poly1305_128) is requested; these cannot
// be computed without the encryption key.
var ErrKeyed = errors.New("csum: keyed checksum type needs the encryption key")

// ErrUnknownType is wrapped by the errors returned for checksum types
// outside the known range.
var ErrUnknownType = errors.New("csum: unknown checksum type")

func unknownType(t Type) error {
	return fmt.Errorf("%w %d", ErrUnknownType, uint8(t))
}

// Sum is the 16-byte on-disk struct bch_csum {le64 lo; le64 hi}. For the
// unkeyed types the checksum value lives in Lo (a crc32 zero-extended) and
// Hi is zero.
type Sum struct{ Lo, Hi uint64 }

// SumFromBytes decodes a little-endian struct bch_csum from the first 16
// bytes of b. If b is shorter than 16 bytes, the missing bytes are read as
// zero.
func SumFromBytes(b []byte) Sum {
	var buf [16]byte
	copy(buf[:], b)
	return Sum{
		Lo: binary.LittleEndian.Uint64(buf[0:8]),
		Hi: binary.LittleEndian.Uint64(buf[8:16]),
	}
}

// IsZero reports whether both halves of the checksum are zero.
func (s Sum) IsZero() bool { return s.Lo == 0 && s.Hi == 0 }

// String formats the checksum as hi:lo in hexadecimal.
func (s Sum) String() string { return fmt.Sprintf("%016x:%016x", s.Hi, s.Lo) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32CUpdate is the raw reflected Castagnoli CRC update, with no pre- or
// post-inversion, matching the kernel's crc32c(seed, buf, len).
// CRC32CUpdate(0, p) is bcachefs' crc32c and
// CRC32CUpdate(0xFFFFFFFF, p) ^ 0xFFFFFFFF (the standard CRC-32C of p) is its
// crc32c_nonzero.
//
// (It cannot be named CRC32C, which is the checksum [Type] constant.)
func CRC32CUpdate(crc uint32, p []byte) uint32 {
	return ^crc32.Update(^crc, castagnoli, p)
}

// Compute checksums data with type t, as bcachefs would for a bset, jset or
// extent. The nonce is irrelevant for the unkeyed types and so is not taken.
// For None it returns the zero Sum. Keyed types return [ErrKeyed]; unknown
// types return an error wrapping [ErrUnknownType].
func Compute(t Type, data []byte) (Sum, error) {
	switch t {
	case None:
		return Sum{}, nil
	case CRC32CNonzero:
		return Sum{Lo: uint64(crc32.Checksum(data, castagnoli))}, nil
	case CRC32C:
		return Sum{Lo: uint64(CRC32CUpdate(0, data))}, nil
	case CRC64Nonzero:
		return Sum{Lo: ^CRC64BE(^uint64(0), data)}, nil
	case CRC64:
		return Sum{Lo: CRC64BE(0, data)}, nil
	case XXHash:
		return Sum{Lo: xxhash.Sum64(data)}, nil
	case ChaCha20Poly1305_80, ChaCha20Poly1305_128:
		return Sum{}, ErrKeyed
	default:
		return Sum{}, unknownType(t)
	}
}

// Hasher computes a checksum of an unkeyed type incrementally over several
// slices. Writing the data in any number of pieces gives the same result as
// [Compute] on the concatenation.
type Hasher struct {
	t   Type
	c32 uint32 // inverted raw crc32c state, as kept by hash/crc32
	c64 uint64 // raw crc64 state
	xx  *xxhash.Digest
}

// New returns a Hasher for checksum type t. Keyed types return [ErrKeyed];
// unknown types return an error wrapping [ErrUnknownType].
func New(t Type) (*Hasher, error) {
	if t.Keyed() {
		return nil, ErrKeyed
	}
	if !t.Valid() {
		return nil, unknownType(t)
	}
	h := &Hasher{t: t}
	if t == XXHash {
		h.xx = xxhash.New()
	}
	h.Reset()
	return h, nil
}

// Type returns the checksum type of the Hasher.
func (h *Hasher) Type() Type { return h.t }

// Reset returns the Hasher to its initial state.
func (h *Hasher) Reset() {
	switch h.t {
	case CRC32CNonzero:
		h.c32 = 0 // raw seed 0xFFFFFFFF
	case CRC32C:
		h.c32 = ^uint32(0) // raw seed 0
	case CRC64Nonzero:
		h.c64 = ^uint64(0)
	case CRC64:
		h.c64 = 0
	case XXHash:
		h.xx.Reset()
	}
}

// Write adds p to the checksummed data.
func (h *Hasher) Write(p []byte) {
	switch h.t {
	case CRC32CNonzero, CRC32C:
		h.c32 = crc32.Update(h.c32, castagnoli, p)
	case CRC64Nonzero, CRC64:
		h.c64 = crc64Update(h.c64, p)
	case XXHash:
		_, _ = h.xx.Write(p)
	}
}

// Sum returns the checksum of the data written so far. It does not change
// the Hasher's state.
func (h *Hasher) Sum() Sum {
	switch h.t {
	case CRC32CNonzero:
		return Sum{Lo: uint64(h.c32)}
	case CRC32C:
		return Sum{Lo: uint64(^h.c32)}
	case CRC64Nonzero:
		return Sum{Lo: ^h.c64}
	case CRC64:
		return Sum{Lo: h.c64}
	case XXHash:
		return Sum{Lo: h.xx.Sum64()}
	}
	return Sum{}
}
