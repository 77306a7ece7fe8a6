package btreeio

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"bpcheck/csum"
)

// cryptField builds a crypt field's bytes: header, flags, kdf_flags, key.
func cryptField(kdf uint8, logN, logR, logP uint16, key [sealedKeyBytes]byte) []byte {
	b := make([]byte, cryptFieldBytes)
	binary.LittleEndian.PutUint32(b, cryptFieldBytes/8)
	binary.LittleEndian.PutUint32(b[4:], FieldCrypt)
	binary.LittleEndian.PutUint64(b[8:], uint64(kdf))
	binary.LittleEndian.PutUint64(b[16:], uint64(logN)|uint64(logR)<<16|uint64(logP)<<32)
	copy(b[24:], key[:])
	return b
}

// sealedWith seals key with a passphrase key as bcachefs does.
func sealedWith(t *testing.T, key csum.Key, passKey *csum.Key, uuid [16]byte) [sealedKeyBytes]byte {
	t.Helper()
	var s [sealedKeyBytes]byte
	binary.LittleEndian.PutUint64(s[:], keyMagicPlain)
	copy(s[8:], key[:])
	nonce := csum.Nonce{0, 0, binary.LittleEndian.Uint32(uuid[0:]), binary.LittleEndian.Uint32(uuid[4:])}
	csum.Crypt(passKey, nonce, s[:])
	return s
}

// TestCryptFieldRoundTrip seals a key with cheap scrypt parameters and
// unseals it with the right passphrase only.
func TestCryptFieldRoundTrip(t *testing.T) {
	uuid := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}
	key := csum.Key{0xaa, 0xbb, 31: 0xcc}
	probe := CryptField{KDF: KDFScrypt, LogN: 4, LogR: 0, LogP: 0}
	pk, err := probe.PassphraseKey([]byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCryptField(cryptField(KDFScrypt, 4, 0, 0, sealedWith(t, key, &pk, uuid)))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Sealed() || !strings.Contains(c.String(), "scrypt N=2^4 r=2^0 p=2^0") || strings.Contains(c.String(), "aa") {
		t.Errorf("String() = %q", c.String())
	}
	got, err := c.Unseal(&pk, uuid)
	if err != nil || got != key {
		t.Fatalf("Unseal with the right key: %x, %v", got, err)
	}
	wrong, _ := c.PassphraseKey([]byte("Pass"))
	if _, err := c.Unseal(&wrong, uuid); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := c.Unseal(&pk, [16]byte{9}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("another filesystem's nonce: %v", err)
	}
}

// TestCryptFieldBounds: a truncated field and scrypt parameters that
// would exhaust memory or time are refused with what they ask, before
// anything is allocated.
func TestCryptFieldBounds(t *testing.T) {
	if _, err := ParseCryptField(make([]byte, cryptFieldBytes-1)); !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "crypt field is 63 bytes, want 64") {
		t.Errorf("truncated: %v", err)
	}
	var k [sealedKeyBytes]byte
	for _, tc := range []struct {
		kdf              uint8
		logN, logR, logP uint16
		err              string
	}{
		{0, 14, 3, 4, ""}, // bcachefs format's
		{0, 30, 3, 4, "over bpcheck's cap of 1024 MiB"},
		{0, 23, 0, 4, ""},
		{0, 24, 0, 4, "over bpcheck's cap"},
		{0, 65535, 3, 4, "out of bounds"},
		{0, 14, 60, 4, "out of bounds"},
		{0, 14, 3, 9, "out of bounds"},
		{0, 1, 21, 8, "128·r·p = 2^36 bytes, over bpcheck's cap"}, // 64 GiB of blocks (a review)
		{0, 0, 3, 4, "out of bounds"},
		{1, 14, 3, 4, "KDF type 1"},
	} {
		c, err := ParseCryptField(cryptField(tc.kdf, tc.logN, tc.logR, tc.logP, k))
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, err = c.ScryptParams()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("N=2^%d r=2^%d p=2^%d: %v", tc.logN, tc.logR, tc.logP, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("kdf %d N=2^%d r=2^%d p=2^%d: %v, want %q", tc.kdf, tc.logN, tc.logR, tc.logP, err, tc.err)
		}
		if tc.err != "" {
			if _, err := c.PassphraseKey([]byte("x")); err == nil {
				t.Errorf("N=2^%d: PassphraseKey derived a key past the cap", tc.logN)
			}
		}
	}
}

// FuzzCryptField: any crypt field decodes or fails without panicking, its
// parameters are checked before use, and unsealing with cheap parameters
// never panics.
func FuzzCryptField(f *testing.F) {
	var k [sealedKeyBytes]byte
	binary.LittleEndian.PutUint64(k[:], keyMagicPlain)
	f.Add(cryptField(0, 14, 3, 4, k))
	f.Add(cryptField(0, 2, 0, 0, [sealedKeyBytes]byte{1, 2, 3}))
	f.Add(cryptField(3, 0xffff, 0xffff, 0xffff, k)[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCryptField(data)
		if err != nil {
			return
		}
		_ = c.String()
		n, r, _, err := c.ScryptParams()
		if err != nil {
			return
		}
		if uint64(128)*uint64(n)*uint64(r) > MaxScryptBytes || uint64(128)*uint64(r)<<c.LogP > MaxScryptBytes {
			t.Fatalf("parameters past the cap accepted: N=%d r=%d p=2^%d", n, r, c.LogP)
		}
		if c.LogN > 6 || c.LogR > 2 || c.LogP > 1 {
			return // valid but too slow to derive in a fuzz loop
		}
		pk, err := c.PassphraseKey([]byte("x"))
		if err != nil {
			return
		}
		_, _ = c.Unseal(&pk, [16]byte{})
	})
}
