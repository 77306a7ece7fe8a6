package gen

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	//lint:ignore SA1019 bcachefs MACs with bare Poly1305 keyed from the ChaCha20 stream (not the AEAD), as the kernel does
	"golang.org/x/crypto/poly1305"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/csum"
	"bpcheck/pipeline"
)

// TestZerosPoly1305 compares the closed form with Poly1305 over the zero
// bytes, for random keys (and the extreme ones) and block counts.
func TestZerosPoly1305(t *testing.T) {
	r := newRNG(99, 0)
	zeros := make([]byte, 16*20000)
	keys := [][32]byte{{}, {}}
	for i := range keys[1] {
		keys[1][i] = 0xff
	}
	for i := 0; i < 40; i++ {
		var k [32]byte
		for j := 0; j < 32; j += 8 {
			binary.LittleEndian.PutUint64(k[j:], r.next())
		}
		keys = append(keys, k)
	}
	counts := []uint64{0, 1, 2, 3, 4, 5, 7, 8, 31, 32, 33, 255, 256, 4096, 16384, 19999}
	for ki, k := range keys {
		for _, n := range counts {
			var tag [16]byte
			poly1305.Sum(&tag, zeros[:16*n], &k)
			lo, hi := zerosPoly1305(&k, n)
			if lo != binary.LittleEndian.Uint64(tag[0:]) || hi != binary.LittleEndian.Uint64(tag[8:]) {
				t.Fatalf("key %d, %d blocks: %016x%016x, poly1305 %x", ki, n, hi, lo, tag)
			}
		}
	}
}

// TestZerosMAC: the data checksum of an extent of zeros is what
// csum.ComputeKeyed (the checker's Poly1305) computes over the zeros with
// the extent's nonce.
func TestZerosMAC(t *testing.T) {
	var key csum.Key
	for i := range key {
		key[i] = byte(i * 7)
	}
	zeros := make([]byte, 512*512)
	for _, ver := range []uint64{1, 2, 594, 1 << 33} {
		for _, sectors := range []uint32{8, 16, 128, 136, 512} {
			lo, hi, err := zerosMAC(&key, ver, sectors)
			if err != nil {
				t.Fatal(err)
			}
			want, err := csum.ComputeKeyed(dataCsumEncrypted, &key, extentNonce(ver), zeros[:sectors*512])
			if err != nil {
				t.Fatal(err)
			}
			if lo != want.Lo || hi != want.Hi {
				t.Errorf("version %d, %d sectors: %04x:%016x, want %04x:%016x", ver, sectors, hi, lo, want.Hi, want.Lo)
			}
		}
	}
}

// TestEncryptedNeedsKey: the nodes of an encrypted filesystem cannot be
// read without the key, a wrong passphrase does not unseal it, the
// superblock says what format --encrypted writes (encryption type 1,
// crypt field after members_v2, scrypt 2^14/2^3/2^4), and unlocked with
// the passphrase the fault-free filesystem checks clean.
func TestEncryptedNeedsKey(t *testing.T) {
	dir := t.TempDir()
	m, err := Generate(dir, Params{DeviceSize: 64 << 20, Extents: 500, Seed: 3, Encrypted: true, Passphrase: testPassphrase})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := btreeio.Open([]string{filepath.Join(dir, m.Files[0])})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	c := fs.SB.Crypt
	if c == nil || !fs.KeySealed() || c.KDF != btreeio.KDFScrypt || c.LogN != 14 || c.LogR != 3 || c.LogP != 4 {
		t.Fatalf("crypt field %+v, sealed %v", c, fs.KeySealed())
	}
	raw := make([]byte, 4096)
	if _, err := fs.Devices[0].ReadAt(raw, 8*512); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if et := le.Uint64(raw[152:]) >> 10 & 0xf; et != 1 {
		t.Errorf("encryption type %d, want 1", et)
	}
	// The fields: members_v2 then crypt (as bch_sb_crypt_init adds it).
	first := le.Uint32(raw[752:])
	if le.Uint32(raw[756:]) != btreeio.FieldMembersV2 || le.Uint32(raw[752+8*first+4:]) != btreeio.FieldCrypt {
		t.Errorf("the crypt field does not follow members_v2")
	}
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Walk(bp.BtreeExtents, 0, &errVisitor{}); !errors.Is(err, btreeio.ErrEncrypted) {
		t.Errorf("walk without the key: %v, want ErrEncrypted", err)
	}
	wrong, err := c.PassphraseKey([]byte("wrong horse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Unlock(&wrong); !errors.Is(err, btreeio.ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	// With the passphrase (unlock.Unlock, as bpcheck check
	// --passphrase-file): a clean check, every btree readable.
	fs = open(t, dir, m)
	res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 || len(res.Errors) != 0 || res.Stats.Extents != m.Extents {
		t.Errorf("check: %d findings, %d errors, %d extents (want 0, 0, %d)", len(res.Findings), len(res.Errors), res.Stats.Extents, m.Extents)
	}
	checkStructure(t, fs, m)
}

// errVisitor fails at the first node that cannot be read.
type errVisitor struct{}

func (errVisitor) Node(*btreeio.Node) error { return nil }
func (errVisitor) NodeError(_ bp.BtreeID, _ uint8, _ *bp.Key, err error) error {
	return err
}

// TestEncryptedDeterministic: the same parameters and passphrase give the
// same bytes; another passphrase changes only the sealed key in the
// superblocks (the filesystem key comes from the seed), and not the
// manifest, which never holds the passphrase.
func TestEncryptedDeterministic(t *testing.T) {
	p := Params{Devices: 2, Replicas: 2, DeviceSize: 64 << 20, Extents: 1500, ExtentMax: 32, BtreeNodeSize: 8192, Seed: 5,
		Inject: allFaults, Encrypted: true, Passphrase: testPassphrase}
	var hashes []map[string][32]byte
	var dirs []string
	for _, pass := range []string{testPassphrase, testPassphrase, "another one"} {
		q := p
		q.Passphrase = pass
		dir := t.TempDir()
		if _, err := Generate(dir, q); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hashDir(t, dir))
		dirs = append(dirs, dir)
	}
	for name, h := range hashes[0] {
		if hashes[1][name] != h {
			t.Errorf("%s differs between two runs with the same passphrase", name)
		}
		if (hashes[2][name] == h) != (name == "manifest.json") {
			t.Errorf("%s: same with another passphrase %v", name, hashes[2][name] == h)
		}
	}
	b, err := os.ReadFile(filepath.Join(dirs[0], "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(testPassphrase)) || !bytes.Contains(b, []byte(`"encrypted": true`)) || !bytes.Contains(b, []byte(`"key_sealed": true`)) {
		t.Errorf("manifest: %s", b)
	}
	// Only the superblocks' crypt fields (and their checksums) differ.
	x, err := os.ReadFile(filepath.Join(dirs[0], "dev0.img"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(filepath.Join(dirs[2], "dev0.img"))
	if err != nil {
		t.Fatal(err)
	}
	d := Params.WithDefaults(p)
	dev := newDevice(0, &d)
	var sbs []int64
	for _, o := range dev.sbOffsets {
		sbs = append(sbs, int64(o)*512)
	}
	for i := range x {
		if x[i] == y[i] {
			continue
		}
		in := false
		for _, o := range sbs {
			in = in || int64(i) >= o && int64(i) < o+4096
		}
		if !in {
			t.Fatalf("dev0.img byte %d differs outside the superblocks", i)
		}
	}
}
