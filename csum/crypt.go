package csum

// Key is a ChaCha20 key: the filesystem's struct bch_key.
type Key [32]byte

// Nonce is a bcachefs nonce: four little-endian 32-bit words. Word 0 is
// the ChaCha20 block counter, words 1..3 the 96-bit ChaCha20 nonce.
type Nonce [4]uint32

// Nonce type bits in word 3.
const (
	NonceExtent  = 1 << 28
	NonceBtree   = 2 << 28
	NonceJournal = 3 << 28
	noncePoly    = 1 << 31
)

// Add advances the nonce by a byte count, as nonce_add does: the block
// counter moves by bytes/64.
func (n Nonce) Add(bytes uint32) Nonce {
	n[0] += bytes / 64
	return n
}

// Crypt encrypts or decrypts data in place with ChaCha20 under key and
// nonce (the operation is its own inverse). Word 0 of the nonce is the
// block counter; it wraps at 2^32 blocks, as in the kernel.
func Crypt(key *Key, n Nonce, data []byte) {
	xorKeyStream(chachaState(key, n), data)
}

// ComputeKeyed computes a checksum of any type, including the keyed
// Poly1305 types, which take their one-time key from the ChaCha20
// keystream of the nonce with bit 31 of word 3 flipped. Unkeyed types
// ignore key and nonce.
func ComputeKeyed(t Type, key *Key, n Nonce, data []byte) (Sum, error) {
	if !t.Keyed() {
		return Compute(t, data)
	}
	if key == nil {
		return Sum{}, ErrKeyed
	}
	n[3] ^= noncePoly
	var pk [32]byte
	Crypt(key, n, pk[:])
	var tag [16]byte
	polySum(&tag, data, &pk)
	var full [16]byte
	copy(full[:t.Size()], tag[:t.Size()])
	return SumFromBytes(full[:]), nil
}
