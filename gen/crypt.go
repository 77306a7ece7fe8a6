package gen

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/scrypt"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/csum"
)

// Encryption, as `bcachefs format --encrypted` sets it up and the kernel
// writes (format digest §3.4–3.5): a ChaCha20 key in the crypt field,
// sealed with a passphrase (scrypt) or stored in plain text; btree node
// bsets and journal entries encrypted with ChaCha20 and MAC'd with
// Poly1305 (chacha20_poly1305_128); extents with the
// chacha20_poly1305_80 data checksum type and a key version each (the
// nonce of their data).

const (
	// metaCsumEncrypted is the checksum type of bsets and jsets of an
	// encrypted filesystem (bch2_meta_checksum_type: 128-bit MACs
	// whatever wide_macs says).
	metaCsumEncrypted = csum.ChaCha20Poly1305_128
	// dataCsumEncrypted is the data checksum type of its extents
	// (bch2_data_checksum_type without wide_macs).
	dataCsumEncrypted = csum.ChaCha20Poly1305_80
	// keyMagic is BCH_KEY_MAGIC, "bch**key": the first 8 bytes of the
	// crypt field's key when it is stored unsealed (and of the sealed key
	// once unsealed).
	keyMagic = 0x79656b2a2a686362
	// scrypt parameters bch_sb_crypt_init sets (log2): N = 2^14,
	// r = 2^3, p = 2^4.
	scryptLogN, scryptLogR, scryptLogP = 14, 3, 4
	// sbEncryptionTypeShift is BCH_SB_ENCRYPTION_TYPE in flags[1]
	// (bits 10..13); format sets type 1.
	sbEncryptionTypeShift = 10
	// noncePoly flips the nonce of a Poly1305 key (BCH_NONCE_POLY).
	noncePoly = 1 << 31
	// cryptFieldBytes is struct bch_sb_field_crypt: header, flags,
	// kdf_flags, bch_encrypted_key (magic and the 32-byte key).
	cryptFieldBytes = 8 + 8 + 8 + 8 + 32
)

// kdfSalt is the salt bcachefs derives passphrase keys with: "bcache"
// and its NUL.
var kdfSalt = []byte("bcache\x00")

// cryptState is the key of an encrypted filesystem and its crypt field.
type cryptState struct {
	key csum.Key
	// field is the crypt field (header included); it is complete once
	// done is closed (scrypt runs while the btrees are written).
	field []byte
	done  chan struct{}
	err   error
}

// newCrypt derives the filesystem key from the seed (random in bcachefs
// format; derived here so that the same parameters give the same
// images) and starts sealing it with the passphrase, if any.
func newCrypt(p *Params, uuid [16]byte) *cryptState {
	c := &cryptState{done: make(chan struct{})}
	r := newRNG(p.Seed, 6)
	for i := 0; i < len(c.key); i += 8 {
		binary.LittleEndian.PutUint64(c.key[i:], r.next())
	}
	le := binary.LittleEndian
	c.field = make([]byte, cryptFieldBytes)
	le.PutUint32(c.field[0:], cryptFieldBytes/8)
	le.PutUint32(c.field[4:], btreeio.FieldCrypt)
	le.PutUint64(c.field[24:], keyMagic)
	copy(c.field[32:], c.key[:])
	if p.Passphrase == "" {
		// --no_passphrase: the key in plain text, KDF fields zero.
		close(c.done)
		return c
	}
	// BCH_CRYPT_KDF_TYPE scrypt (0) in flags; N, r, p in kdf_flags.
	le.PutUint64(c.field[16:], scryptLogN|scryptLogR<<16|scryptLogP<<32)
	pass := []byte(p.Passphrase)
	go func() {
		defer close(c.done)
		defer clear(pass)
		pk, err := scrypt.Key(pass, kdfSalt, 1<<scryptLogN, 1<<scryptLogR, 1<<scryptLogP, len(csum.Key{}))
		if err != nil {
			c.err = fmt.Errorf("scrypt: %w", err)
			return
		}
		defer clear(pk)
		var k csum.Key
		copy(k[:], pk)
		defer clear(k[:])
		// bch2_chacha_encrypt_key: ChaCha20 over the magic and the key,
		// nonce {0, 0, the first 8 bytes of the internal uuid}.
		n := csum.Nonce{0, 0, le.Uint32(uuid[0:]), le.Uint32(uuid[4:])}
		csum.Crypt(&k, n, c.field[24:])
	}()
	return c
}

// wait returns the crypt field once the key is sealed.
func (c *cryptState) wait() ([]byte, error) {
	<-c.done
	return c.field, c.err
}

// btreeNonce is btree_nonce of a bset at byte offset off of its node.
func btreeNonce(seq, journalSeq uint64, off uint32) csum.Nonce {
	return csum.Nonce{off, uint32(seq), uint32(seq >> 32), uint32(journalSeq) ^ csum.NonceBtree}
}

// journalNonce is journal_nonce of the jset of seq.
func journalNonce(seq uint64) csum.Nonce {
	return csum.Nonce{0, uint32(seq), uint32(seq >> 32), csum.NonceJournal}
}

// extentNonce is extent_nonce of an uncompressed extent of key version
// ver whose crc entry has nonce 0.
func extentNonce(ver uint64) csum.Nonce {
	return csum.Nonce{0, uint32(ver), uint32(ver >> 32), csum.NonceExtent}
}

// sealNode encrypts the first bset of the node in buf (p bytes: header
// and keys) as bset_encrypt does and stores its MAC.
func sealNode(key *csum.Key, buf []byte, p int, seq, journalSeq uint64) error {
	n := btreeNonce(seq, journalSeq, 0)
	// flags, min_key, max_key, _ptr and format (112 bytes), then the keys
	// with the counter moved past them (rounded up to ChaCha blocks).
	csum.Crypt(key, n, buf[24:136])
	csum.Crypt(key, n.Add(128), buf[nodeHeaderBytes:p])
	sum, err := csum.ComputeKeyed(metaCsumEncrypted, key, n, buf[16:p])
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(buf[0:], sum.Lo)
	binary.LittleEndian.PutUint64(buf[8:], sum.Hi)
	return nil
}

// sealJset encrypts the jset in b (n bytes) from _read_clock on and
// stores its MAC.
func sealJset(key *csum.Key, b []byte, n int, seq uint64) error {
	nonce := journalNonce(seq)
	csum.Crypt(key, nonce, b[44:n])
	sum, err := csum.ComputeKeyed(metaCsumEncrypted, key, nonce, b[16:n])
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b[0:], sum.Lo)
	binary.LittleEndian.PutUint64(b[8:], sum.Hi)
	return nil
}

// zerosMAC is the chacha20_poly1305_80 checksum the kernel computes when
// it reads an uncompressed extent of key version ver and the given
// sectors from the disk where the generator left a hole: the Poly1305
// MAC of that many zero bytes (the ciphertext on disk) under the one-time
// key of the extent's nonce. Computed in closed form (zerosPoly1305), not
// over the bytes.
func zerosMAC(key *csum.Key, ver uint64, sectors uint32) (lo, hi uint64, err error) {
	n := extentNonce(ver)
	n[3] ^= noncePoly
	var pk [32]byte
	csum.Crypt(key, n, pk[:])
	lo, hi = zerosPoly1305(&pk, uint64(sectors)*sectorSize/16)
	return lo, hi & 0xffff, nil
}

// appendCRC64 appends a crc64 extent entry for an uncompressed extent of
// size sectors with an 80-bit checksum: bch2_extent_crc_append picks the
// entry by the checksum type's size (10 bytes: crc64), not by the value.
func appendCRC64(b []byte, ct csum.Type, size uint32, lo, hi uint64) []byte {
	s := uint64(size - 1)
	w := uint64(1)<<bp.EntryCRC64 | s<<3 | s<<12 | uint64(ct)<<40 | (hi&0xffff)<<48
	b = binary.LittleEndian.AppendUint64(b, w)
	return binary.LittleEndian.AppendUint64(b, lo)
}

// The Poly1305 MAC of n 16-byte blocks of zeros: every block is the
// number 2^128 (its bytes and the appended 1 bit), so the accumulator is
// h = 2^128 · (r + r^2 + … + r^n) mod 2^130 − 5, and the tag (h + s) mod
// 2^128. The geometric sum takes O(log n) multiplications in 26-bit limbs
// (as poly1305-donna).

// fe is a number modulo 2^130 − 5 in five 26-bit limbs (a limb may carry
// a few bits more between operations).
type fe [5]uint64

const mask26 = 1<<26 - 1

func feFrom128(lo, hi uint64) fe {
	return fe{lo & mask26, lo >> 26 & mask26, (lo>>52 | hi<<12) & mask26, hi >> 14 & mask26, hi >> 40}
}

func feAdd(a, b fe) fe {
	return fe{a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4]}
}

// feMul returns a·b mod 2^130 − 5 (limbs below 2^26, but limb 1 may
// reach 2^26 + a little).
func feMul(a, b fe) fe {
	s1, s2, s3, s4 := b[1]*5, b[2]*5, b[3]*5, b[4]*5
	d0 := a[0]*b[0] + a[1]*s4 + a[2]*s3 + a[3]*s2 + a[4]*s1
	d1 := a[0]*b[1] + a[1]*b[0] + a[2]*s4 + a[3]*s3 + a[4]*s2
	d2 := a[0]*b[2] + a[1]*b[1] + a[2]*b[0] + a[3]*s4 + a[4]*s3
	d3 := a[0]*b[3] + a[1]*b[2] + a[2]*b[1] + a[3]*b[0] + a[4]*s4
	d4 := a[0]*b[4] + a[1]*b[3] + a[2]*b[2] + a[3]*b[1] + a[4]*b[0]
	var h fe
	d1 += d0 >> 26
	h[0] = d0 & mask26
	d2 += d1 >> 26
	h[1] = d1 & mask26
	d3 += d2 >> 26
	h[2] = d2 & mask26
	d4 += d3 >> 26
	h[3] = d3 & mask26
	c := d4 >> 26
	h[4] = d4 & mask26
	h[0] += c * 5
	h[1] += h[0] >> 26
	h[0] &= mask26
	return h
}

// carry propagates the limbs' carries (the value modulo 2^130 − 5 stays).
func (h *fe) carry() {
	for i := 0; i < 4; i++ {
		h[i+1] += h[i] >> 26
		h[i] &= mask26
	}
	c := h[4] >> 26
	h[4] &= mask26
	h[0] += c * 5
}

// to128 returns h fully reduced modulo 2^130 − 5, as its low 128 bits.
func (h fe) to128() (lo, hi uint64) {
	h.carry()
	for h[0] > mask26 {
		h.carry()
	}
	// Every limb is below 2^26, so h < 2^130; h ≥ p exactly when h + 5 reaches 2^130.
	g := h
	g[0] += 5
	for i := 0; i < 4; i++ {
		g[i+1] += g[i] >> 26
		g[i] &= mask26
	}
	if g[4]>>26 != 0 {
		g[4] &= mask26
		h = g
	}
	lo = h[0] | h[1]<<26 | h[2]<<52
	hi = h[2]>>12 | h[3]<<14 | h[4]<<40
	return lo, hi
}

// zerosPoly1305 returns the Poly1305 tag (little-endian halves) of
// blocks × 16 zero bytes under the one-time key pk.
func zerosPoly1305(pk *[32]byte, blocks uint64) (lo, hi uint64) {
	le := binary.LittleEndian
	r := feFrom128(le.Uint64(pk[0:])&0x0ffffffc0fffffff, le.Uint64(pk[8:])&0x0ffffffc0ffffffc)
	// G = r + … + r^m and P = r^m, for m the bits of blocks read from the
	// top.
	var g fe
	p := fe{1}
	for i := 63; i >= 0; i-- {
		if blocks>>uint(i) == 0 {
			continue
		}
		g = feAdd(g, feMul(g, p))
		g.carry()
		p = feMul(p, p)
		if blocks>>uint(i)&1 != 0 {
			p = feMul(p, r)
			g = feAdd(g, p)
			g.carry()
		}
	}
	h := feMul(g, fe{4: 1 << 24}) // · 2^128
	lo, hi = h.to128()
	s0, s1 := le.Uint64(pk[16:]), le.Uint64(pk[24:])
	var c uint64
	lo, c = add64(lo, s0)
	hi = hi + s1 + c
	return lo, hi
}

func add64(a, b uint64) (uint64, uint64) {
	s := a + b
	if s < a {
		return s, 1
	}
	return s, 0
}
