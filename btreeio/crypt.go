package btreeio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"

	"bpcheck/csum"
	"bpcheck/kdf"
)

// ErrWrongPassphrase is returned when a passphrase (or a key derived from
// one) does not unseal the filesystem's key.
var ErrWrongPassphrase = errors.New("wrong passphrase")

// KDFScrypt is the crypt field's KDF type for scrypt, the only one bcachefs
// defines.
const KDFScrypt = 0

// MaxScryptBytes caps the memory the scrypt parameters of a crypt field
// may ask for, a lane's (128 × N × r bytes) and the lanes' blocks (128 ×
// r × p): a corrupt or hostile superblock must not exhaust the machine.
// bcachefs format uses N = 2^14, r = 2^3, p = 2^4 (16 MiB and 16 KiB).
const MaxScryptBytes = 1 << 30

// MaxScryptLogP caps log2 of scrypt's parallelism p (format uses 2^4): the
// work grows with p.
const MaxScryptLogP = 8

// ScryptParallelBytes caps the memory of the scrypt lanes derived at once:
// as many lanes run in parallel as there are CPUs (GOMAXPROCS), p, and
// lanes of 128·N·r bytes within this (at least one). bcachefs format's
// parameters take 16 MiB a lane, so up to 8 at once.
const ScryptParallelBytes = 128 << 20

// sealedKeyBytes is the size of bch_encrypted_key: a magic and the key.
const sealedKeyBytes = 8 + 32

// cryptFieldBytes is the size of the crypt field: header, flags,
// kdf_flags, the key.
const cryptFieldBytes = 8 + 8 + 8 + sealedKeyBytes

// CryptField is the superblock's crypt field (type 2).
type CryptField struct {
	// KDF is the key derivation function (KDFScrypt).
	KDF uint8
	// LogN, LogR and LogP are log2 of scrypt's N, r and p.
	LogN, LogR, LogP uint16
	// Key is the filesystem key as stored: its magic (little-endian
	// "bch**key" when it is stored in plain text) and the 32 key bytes,
	// ChaCha20-encrypted with the passphrase's key when sealed.
	Key [sealedKeyBytes]byte
}

// ParseCryptField decodes the crypt field from its bytes, header
// included.
func ParseCryptField(data []byte) (CryptField, error) {
	if len(data) < cryptFieldBytes {
		return CryptField{}, fmt.Errorf("%w: crypt field is %d bytes, want %d", ErrTruncated, len(data), cryptFieldBytes)
	}
	le := binary.LittleEndian
	flags, kdf := le.Uint64(data[8:]), le.Uint64(data[16:])
	c := CryptField{KDF: uint8(flags & 0xf), LogN: uint16(kdf), LogR: uint16(kdf >> 16), LogP: uint16(kdf >> 32)}
	copy(c.Key[:], data[24:24+sealedKeyBytes])
	return c, nil
}

// Sealed reports whether the key is sealed with a passphrase (its magic
// is not that of a plain key).
func (c *CryptField) Sealed() bool { return binary.LittleEndian.Uint64(c.Key[:]) != keyMagicPlain }

// String describes the KDF and its parameters, never the key.
func (c *CryptField) String() string {
	if !c.Sealed() {
		return "key stored in plain text (no passphrase)"
	}
	if c.KDF != KDFScrypt {
		return fmt.Sprintf("key sealed with a passphrase, unknown KDF type %d", c.KDF)
	}
	return fmt.Sprintf("key sealed with a passphrase, KDF scrypt N=2^%d r=2^%d p=2^%d", c.LogN, c.LogR, c.LogP)
}

// ScryptParams returns scrypt's N, r and p, refusing a KDF bpcheck does
// not know and parameters beyond MaxScryptBytes or MaxScryptLogP.
func (c *CryptField) ScryptParams() (n, r, p int, err error) {
	if c.KDF != KDFScrypt {
		return 0, 0, 0, fmt.Errorf("%w: crypt field names KDF type %d; bcachefs knows scrypt (0) only", ErrCorrupt, c.KDF)
	}
	if c.LogN < 1 || c.LogN > 40 || c.LogR > 30 || c.LogP > MaxScryptLogP {
		return 0, 0, 0, fmt.Errorf("%w: scrypt parameters N=2^%d r=2^%d p=2^%d are out of bounds (N from 2^1, r up to 2^30, p up to 2^%d)",
			ErrCorrupt, c.LogN, c.LogR, c.LogP, MaxScryptLogP)
	}
	if need := uint64(128) << c.LogN << c.LogR; c.LogN+c.LogR+7 > 62 || need > MaxScryptBytes {
		return 0, 0, 0, fmt.Errorf("%w: scrypt parameters N=2^%d r=2^%d need 128·N·r = 2^%d bytes, over bpcheck's cap of %d MiB",
			ErrCorrupt, c.LogN, c.LogR, c.LogN+c.LogR+7, MaxScryptBytes>>20)
	}
	// The lanes' blocks, all held at once: 128·r·p bytes.
	if need := uint64(128) << c.LogR << c.LogP; need > MaxScryptBytes {
		return 0, 0, 0, fmt.Errorf("%w: scrypt parameters r=2^%d p=2^%d need 128·r·p = 2^%d bytes, over bpcheck's cap of %d MiB",
			ErrCorrupt, c.LogR, c.LogP, c.LogR+c.LogP+7, MaxScryptBytes>>20)
	}
	return 1 << c.LogN, 1 << c.LogR, 1 << c.LogP, nil
}

// kdfSalt is the salt bcachefs derives passphrase keys with: "bcache" and
// its terminating NUL.
var kdfSalt = []byte("bcache\x00")

// PassphraseKey derives the passphrase's key, the key `bcachefs unlock`
// puts in the kernel keyring, with the crypt field's KDF.
func (c *CryptField) PassphraseKey(passphrase []byte) (csum.Key, error) {
	n, r, p, err := c.ScryptParams()
	if err != nil {
		return csum.Key{}, err
	}
	lanes := min(runtime.GOMAXPROCS(0), p, max(1, ScryptParallelBytes/kdf.LaneBytes(n, r)))
	b, err := kdf.Scrypt(passphrase, kdfSalt, n, r, p, len(csum.Key{}), lanes)
	if err != nil {
		return csum.Key{}, fmt.Errorf("scrypt: %w", err)
	}
	var k csum.Key
	copy(k[:], b)
	clear(b)
	return k, nil
}

// Unseal decrypts the sealed key with the passphrase's key: ChaCha20 over
// the magic and the key, nonce {0, 0, the first 8 bytes of the internal
// uuid}. A result without the plain key magic is ErrWrongPassphrase.
func (c *CryptField) Unseal(passphraseKey *csum.Key, uuid [16]byte) (csum.Key, error) {
	if !c.Sealed() {
		var k csum.Key
		copy(k[:], c.Key[8:])
		return k, nil
	}
	buf := c.Key
	defer clear(buf[:])
	le := binary.LittleEndian
	nonce := csum.Nonce{0, 0, le.Uint32(uuid[0:]), le.Uint32(uuid[4:])}
	csum.Crypt(passphraseKey, nonce, buf[:])
	if le.Uint64(buf[:]) != keyMagicPlain {
		return csum.Key{}, ErrWrongPassphrase
	}
	var k csum.Key
	copy(k[:], buf[8:])
	return k, nil
}
