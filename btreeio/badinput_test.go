package btreeio_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/csum"
	"bpcheck/internal/casedata"
)

// copyImage copies the first limit bytes of the image src (all of it if
// limit < 0) to a new file in a temporary directory of t and returns its
// path. All-zero 64 KiB blocks are left as holes so copies of the large
// sparse images stay cheap.
func copyImage(t *testing.T, src string, limit int64) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := st.Size()
	if limit >= 0 && limit < size {
		size = limit
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := int(min(int64(len(buf)), size-off))
		if _, err := in.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			continue
		}
		if _, err := out.WriteAt(buf[:n], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return dst
}

// xorByte flips the bits of mask in the byte at off of the file at path.
func xorByte(t *testing.T, path string, off int64, mask byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// sbCopyOffsets returns the byte offsets of every superblock copy of the
// image at path, read from the layout embedded in its primary superblock.
func sbCopyOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	layout := make([]byte, 512)
	if _, err := f.ReadAt(layout, btreeio.SBSector*btreeio.SectorSize+240); err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for i := 0; i < int(layout[18]); i++ {
		offs = append(offs, int64(binary.LittleEndian.Uint64(layout[24+8*i:]))*btreeio.SectorSize)
	}
	return offs
}

// editSB rewrites the superblock copy at byte off of the image at path:
// edit changes its raw bytes (header and fields), and with fix the checksum
// is recomputed with the superblock's own checksum type.
func editSB(t *testing.T, path string, off int64, edit func(raw []byte), fix bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 752)
	if _, err := f.ReadAt(hdr, off); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 752+8*int(binary.LittleEndian.Uint32(hdr[124:])))
	if _, err := f.ReadAt(raw, off); err != nil {
		t.Fatal(err)
	}
	edit(raw)
	if fix {
		if err := btreeio.SealSuperblock(raw); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteAt(raw, off); err != nil {
		t.Fatal(err)
	}
}

// sbField returns the byte offset within raw (a whole superblock) of the
// first variable field of type typ, or -1.
func sbField(raw []byte, typ uint32) int {
	end := 752 + 8*int(binary.LittleEndian.Uint32(raw[124:]))
	for off := 752; off+8 <= end && off+8 <= len(raw); {
		u64s := int(binary.LittleEndian.Uint32(raw[off:]))
		if binary.LittleEndian.Uint32(raw[off+4:]) == typ {
			return off
		}
		if u64s == 0 {
			break
		}
		off += 8 * u64s
	}
	return -1
}

// readRawSB reads the primary superblock of the image at path, header and
// fields, without btreeio.
func readRawSB(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 752)
	if _, err := f.ReadAt(hdr, btreeio.SBSector*btreeio.SectorSize); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 752+8*int(binary.LittleEndian.Uint32(hdr[124:])))
	if _, err := f.ReadAt(raw, btreeio.SBSector*btreeio.SectorSize); err != nil {
		t.Fatal(err)
	}
	return raw
}

// nodeErr is one Visitor.NodeError call.
type nodeErr struct {
	btree  bp.BtreeID
	level  uint8
	parent bp.Pos
	err    error
}

// recorder is a Visitor that records every node, node problem and node
// error of a walk and counts leaf keys.
type recorder struct {
	nodes    []*btreeio.Node
	errs     []nodeErr
	problems []error
	leafKeys int
}

// Node records a deep copy of n: a node and its key values are only valid
// during the visit.
func (r *recorder) Node(n *btreeio.Node) error {
	cp := *n
	cp.Keys = append([]btreeio.NodeKey(nil), n.Keys...)
	for i := range cp.Keys {
		cp.Keys[i].Val = append([]byte(nil), cp.Keys[i].Val...)
	}
	r.nodes = append(r.nodes, &cp)
	r.problems = append(r.problems, n.Problems...)
	if n.Level == 0 {
		r.leafKeys += len(n.Keys)
	}
	return nil
}

// NodeError records the error and lets the walk go on.
func (r *recorder) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	r.errs = append(r.errs, nodeErr{btree: btree, level: level, parent: parent.Pos, err: err})
	return nil
}

// walkAll loads the roots of fs and walks every btree, returning one
// recorder per btree.
func walkAll(t *testing.T, fs *btreeio.FS) map[bp.BtreeID]*recorder {
	t.Helper()
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	out := map[bp.BtreeID]*recorder{}
	for _, r := range fs.Roots {
		rec := &recorder{}
		if err := fs.Walk(r.Btree, 0, rec); err != nil {
			t.Fatalf("walk %v: %v", r.Btree, err)
		}
		out[r.Btree] = rec
	}
	return out
}

// requireClean fails the test if any walk recorded a node error or problem.
func requireClean(t *testing.T, walks map[bp.BtreeID]*recorder) {
	t.Helper()
	for id, rec := range walks {
		for _, e := range rec.errs {
			t.Errorf("btree %v: node error: %v", id, e.err)
		}
		for _, p := range rec.problems {
			t.Errorf("btree %v: node problem: %v", id, p)
		}
	}
}

// mustOpen opens the given devices and closes them when the test ends.
func mustOpen(t *testing.T, paths ...string) *btreeio.FS {
	t.Helper()
	fs, err := btreeio.Open(paths)
	if err != nil {
		t.Fatalf("open %v: %v", paths, err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs
}

// asError returns the first *btreeio.Error in err's chain, failing the test
// if there is none.
func asError(t *testing.T, err error) *btreeio.Error {
	t.Helper()
	var e *btreeio.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) carries no *btreeio.Error", err, err)
	}
	return e
}

// checkSBError checks that err is a superblock error of type want at the
// primary superblock (byte 4096) of dev.
func checkSBError(t *testing.T, err, want error, dev string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	e := asError(t, err)
	if e.Dev != dev || e.Offset != btreeio.SBSector*btreeio.SectorSize || e.What != "superblock" {
		t.Errorf("error names %q byte %d (%s), want %q byte 4096 (superblock)", e.Dev, e.Offset, e.What, dev)
	}
}

// firstPtrOffset returns the byte offset of the first device pointer of a
// btree pointer key.
func firstPtrOffset(t *testing.T, k *bp.Key, val []byte) int64 {
	t.Helper()
	entries, _, err := bp.ValueEntries(k.Type, val)
	if err != nil {
		t.Fatal(err)
	}
	it := bp.NewPtrIter(entries, k.Size, nil)
	d, ok, err := it.Next()
	if !ok || err != nil {
		t.Fatalf("btree pointer %v without device pointers: %v", k.Pos, err)
	}
	return int64(d.Ptr.Offset) * btreeio.SectorSize
}

// foundImage returns the decompressed path of found/<name>.img.zst.
func foundImage(t *testing.T, name string) string {
	t.Helper()
	return casedata.Image(t, filepath.Join(casedata.Require(t), "found", name+".img.zst"))
}

// cryptKeyMagicPlain is bch_key.magic of a key stored unencrypted.
const cryptKeyMagicPlain = 0x79656b2a2a686362

// TestEncrypted: syz2025_4 is the encrypted syzkaller image (format.md:
// N=4). Its key is stored in plain text, so bpcheck reads it; the same
// image with the key sealed (the key magic changed, checksums made good
// again) must be refused with ErrEncrypted naming the superblock.
func TestEncrypted(t *testing.T) {
	orig := foundImage(t, "syz2025_4")
	raw := readRawSB(t, orig)
	if et := binary.LittleEndian.Uint64(raw[152:]) >> 10 & 0xf; et == 0 {
		t.Fatalf("syz2025_4: ENCRYPTION_TYPE is 0: not the encrypted image")
	}
	crypt := sbField(raw, btreeio.FieldCrypt)
	if crypt < 0 {
		t.Fatal("syz2025_4: no crypt field")
	}
	if m := binary.LittleEndian.Uint64(raw[crypt+24:]); m != cryptKeyMagicPlain {
		t.Fatalf("syz2025_4: key magic %#x: key not stored in plain text", m)
	}

	fs := mustOpen(t, orig)
	if !fs.SB.Encrypted() || fs.SB.CryptKey == nil {
		t.Fatalf("opened, but Encrypted %v CryptKey %v", fs.SB.Encrypted(), fs.SB.CryptKey)
	}
	walks := walkAll(t, fs)
	requireClean(t, walks)
	keys := 0
	for _, rec := range walks {
		keys += rec.leafKeys
	}
	if keys == 0 {
		t.Error("decrypted filesystem has no keys")
	}
	t.Logf("plain-key image: %d btrees, %d leaf keys decrypted", len(walks), keys)

	sealed := copyImage(t, orig, -1)
	for _, off := range sbCopyOffsets(t, sealed) {
		editSB(t, sealed, off, func(raw []byte) {
			raw[sbField(raw, btreeio.FieldCrypt)+24] ^= 0xff
		}, true)
	}
	// A key sealed with a passphrase opens, but nothing past the
	// superblock reads until it is unlocked, and a key that does not
	// unseal it is a wrong passphrase.
	fs = mustOpen(t, sealed)
	if !fs.KeySealed() || fs.SB.Crypt == nil || !fs.SB.Crypt.Sealed() {
		t.Fatalf("sealed key: KeySealed %v", fs.KeySealed())
	}
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	_, err := fs.ReadNode(fs.Roots[0].Btree, fs.Roots[0].Level, &fs.Roots[0].Key, fs.Roots[0].Val)
	if !errors.Is(err, btreeio.ErrEncrypted) {
		t.Errorf("node read of a sealed filesystem: %v, want ErrEncrypted", err)
	}
	var k csum.Key
	if err := fs.Unlock(&k); !errors.Is(err, btreeio.ErrWrongPassphrase) {
		t.Errorf("Unlock with a wrong key: %v", err)
	}
}

// TestTruncatedImage: tiny cut to 1 MiB keeps its superblock, so it opens,
// but every btree root lies past the end: each is reported through
// NodeError as ErrTruncated with the device, the node's byte offset, btree
// and level. Cut inside the superblock, Open itself fails.
func TestTruncatedImage(t *testing.T) {
	src := casedata.CaseImages(t, "tiny")[0]
	cut := copyImage(t, src, 1<<20)
	fs := mustOpen(t, cut)
	if fs.Devices[0].Size != 1<<20 {
		t.Fatalf("device size %d", fs.Devices[0].Size)
	}
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	if len(fs.Roots) == 0 {
		t.Fatal("no roots")
	}
	for _, r := range fs.Roots {
		rec := &recorder{}
		if err := fs.Walk(r.Btree, 0, rec); err != nil {
			t.Fatal(err)
		}
		if len(rec.errs) != 1 || len(rec.nodes) != 0 {
			t.Fatalf("btree %v: %d node errors, %d nodes; want the root reported once", r.Btree, len(rec.errs), len(rec.nodes))
		}
		ne := rec.errs[0]
		if !errors.Is(ne.err, btreeio.ErrTruncated) {
			t.Errorf("btree %v: %v, want ErrTruncated", r.Btree, ne.err)
		}
		e := asError(t, ne.err)
		want := firstPtrOffset(t, &r.Key, r.Val)
		if e.Dev != cut || e.Offset != want || e.Btree != r.Btree.Name(fs.SB.Version) || e.Level != int(r.Level) {
			t.Errorf("btree %v: error names %q byte %d btree %q level %d; want %q byte %d btree %q level %d",
				r.Btree, e.Dev, e.Offset, e.Btree, e.Level, cut, want, r.Btree.Name(fs.SB.Version), r.Level)
		}
		if ne.btree != r.Btree || ne.level != r.Level || ne.parent != r.Key.Pos {
			t.Errorf("btree %v: NodeError(%v, %d, %v)", r.Btree, ne.btree, ne.level, ne.parent)
		}
	}

	for _, size := range []int64{4096 + 100, 3000, 0} {
		short := copyImage(t, src, size)
		_, err := btreeio.Open([]string{short})
		checkSBError(t, err, btreeio.ErrTruncated, short)
	}
}

// TestWrongMagic: with the primary superblock's magic broken the backup
// copy is used (and said so); with every copy broken Open fails with
// ErrBadMagic at the primary.
func TestWrongMagic(t *testing.T) {
	testSBCorruption(t, 24, btreeio.ErrBadMagic)
}

// TestBadSuperblockChecksum: a byte flipped inside the superblock's field
// area breaks its checksum; the backup copy is used, and with every copy
// broken Open fails with ErrBadChecksum.
func TestBadSuperblockChecksum(t *testing.T) {
	testSBCorruption(t, 752+8+5, btreeio.ErrBadChecksum)
}

// testSBCorruption flips byte rel of the primary superblock of a copy of
// tiny, checks that the first backup is used and the filesystem still reads
// completely, then flips the same byte in every copy and expects want.
func testSBCorruption(t *testing.T, rel int64, want error) {
	src := casedata.CaseImages(t, "tiny")[0]
	ref := mustOpen(t, src)
	refWalks := walkAll(t, ref)

	img := copyImage(t, src, -1)
	offs := sbCopyOffsets(t, img)
	if len(offs) < 2 || offs[0] != btreeio.SBSector*btreeio.SectorSize {
		t.Fatalf("layout lists %v", offs)
	}
	xorByte(t, img, offs[0]+rel, 0x5a)
	d, err := btreeio.OpenDevice(img)
	if err != nil {
		t.Fatalf("primary broken, backups good: %v", err)
	}
	wantSrc := "backup at sector " + strconv.FormatInt(offs[1]/btreeio.SectorSize, 10)
	if !strings.HasPrefix(d.SBSource, wantSrc) {
		t.Errorf("SBSource %q, want %q...", d.SBSource, wantSrc)
	}
	if what := strings.TrimPrefix(want.Error(), btreeio.ErrCorrupt.Error()+": "); !strings.Contains(d.SBSource, what) {
		t.Errorf("SBSource %q does not say why the primary failed (%q)", d.SBSource, what)
	}
	if d.SB.Offset != uint64(offs[1]/btreeio.SectorSize) || d.SB.UUID != ref.SB.UUID || d.SB.Seq != ref.SB.Seq {
		t.Errorf("backup superblock: offset %d uuid %s seq %d", d.SB.Offset, btreeio.UUIDString(d.SB.UUID), d.SB.Seq)
	}
	d.Close()
	fs := mustOpen(t, img)
	walks := walkAll(t, fs)
	requireClean(t, walks)
	for id, rec := range refWalks {
		if walks[id] == nil || walks[id].leafKeys != rec.leafKeys {
			t.Errorf("btree %v via the backup superblock: %v keys, want %d", id, walks[id], rec.leafKeys)
		}
	}

	for _, off := range offs[1:] {
		xorByte(t, img, off+rel, 0x5a)
	}
	_, err = btreeio.Open([]string{img})
	checkSBError(t, err, want, img)
}

// TestBadNodeChecksum flips one byte in the keys of a leaf of the small
// case's extents btree. The walk reports exactly that node through
// NodeError as ErrBadChecksum with device, byte offset, btree and level,
// goes on with its siblings, and every other btree reads completely.
func TestBadNodeChecksum(t *testing.T) {
	src := casedata.CaseImages(t, "small")[0]
	ref := mustOpen(t, src)
	refWalks := walkAll(t, ref)
	requireClean(t, refWalks)
	var leaves []*btreeio.Node
	for _, n := range refWalks[bp.BtreeExtents].nodes {
		if n.Level == 0 {
			leaves = append(leaves, n)
		}
	}
	if len(leaves) < 3 {
		t.Fatalf("extents has %d leaves, need 3", len(leaves))
	}
	victim := leaves[1] // has a sibling on each side
	hdr := make([]byte, btreeio.NodeHeaderBytes)
	if _, err := ref.Devices[0].ReadAt(hdr, victim.Offset); err != nil {
		t.Fatal(err)
	}
	if u64s := binary.LittleEndian.Uint16(hdr[158:]); u64s < 4 {
		t.Fatalf("victim's first bset has %d u64s", u64s)
	}
	img := copyImage(t, src, -1)
	xorByte(t, img, victim.Offset+btreeio.NodeHeaderBytes+8*2+3, 0x10)

	fs := mustOpen(t, img)
	walks := walkAll(t, fs)
	ext := walks[bp.BtreeExtents]
	if len(ext.errs) != 1 {
		t.Fatalf("extents: %d node errors, want 1", len(ext.errs))
	}
	ne := ext.errs[0]
	if !errors.Is(ne.err, btreeio.ErrBadChecksum) {
		t.Errorf("node error %v, want ErrBadChecksum", ne.err)
	}
	e := asError(t, ne.err)
	if e.Dev != img || e.Offset != victim.Offset || e.What != "btree node" || e.Btree != "extents" || e.Level != 0 {
		t.Errorf("error names %q byte %d %s btree %q level %d; want %q byte %d btree node extents level 0",
			e.Dev, e.Offset, e.What, e.Btree, e.Level, img, victim.Offset)
	}
	if ne.btree != bp.BtreeExtents || ne.level != 0 || ne.parent != victim.Max {
		t.Errorf("NodeError(%v, %d, parent %v), want extents, 0, %v", ne.btree, ne.level, ne.parent, victim.Max)
	}
	refExt := refWalks[bp.BtreeExtents]
	if len(ext.nodes) != len(refExt.nodes)-1 || ext.leafKeys != refExt.leafKeys-len(victim.Keys) {
		t.Errorf("extents walk went on to %d nodes, %d keys; want %d, %d",
			len(ext.nodes), ext.leafKeys, len(refExt.nodes)-1, refExt.leafKeys-len(victim.Keys))
	}
	for _, n := range ext.nodes {
		if n.Offset == victim.Offset {
			t.Error("the corrupt node was handed to Node")
		}
	}
	for id, rec := range refWalks {
		if id == bp.BtreeExtents {
			continue
		}
		got := walks[id]
		if len(got.errs) != 0 || len(got.problems) != 0 || got.leafKeys != rec.leafKeys || len(got.nodes) != len(rec.nodes) {
			t.Errorf("btree %v: %d errors, %d problems, %d nodes, %d keys; want clean %d nodes, %d keys",
				id, len(got.errs), len(got.problems), len(got.nodes), got.leafKeys, len(rec.nodes), rec.leafKeys)
		}
	}
}

// TestDeviceSet checks the errors for device sets that are not one
// complete filesystem.
func TestDeviceSet(t *testing.T) {
	tiny := casedata.CaseImages(t, "tiny")[0]
	small := casedata.CaseImages(t, "small")[0]
	two := casedata.CaseImages(t, "two-dev")

	// containsAll fails unless err is ErrDeviceSet and mentions every word.
	containsAll := func(name string, err error, words ...string) {
		t.Helper()
		if !errors.Is(err, btreeio.ErrDeviceSet) {
			t.Errorf("%s: %v, want ErrDeviceSet", name, err)
			return
		}
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", name, err, w)
			}
		}
	}

	_, err := btreeio.Open([]string{tiny, small})
	containsAll("different filesystems", err, tiny, small)

	d0, err := btreeio.OpenDevice(two[0])
	if err != nil {
		t.Fatal(err)
	}
	sb := d0.SB
	d0.Close()
	if sb.NrDevices != 2 {
		t.Fatalf("two-dev dev0 has nr_devices %d", sb.NrDevices)
	}
	_, err = btreeio.Open(two[:1])
	containsAll("member 1 missing", err, "member 1", btreeio.UUIDString(sb.Members[1].UUID), btreeio.UUIDString(sb.UUID))
	if strings.Contains(err.Error(), "member 0") {
		t.Errorf("member 1 missing: %q also names member 0", err)
	}
	_, err = btreeio.Open(two[1:])
	containsAll("member 0 missing", err, "member 0", btreeio.UUIDString(sb.Members[0].UUID))

	_, err = btreeio.Open([]string{tiny, tiny})
	containsAll("same device twice", err, "member 0", "twice", tiny)
	_, err = btreeio.Open([]string{two[0], two[1], two[0]})
	containsAll("member given twice", err, "member 0", "twice")

	_, err = btreeio.Open(nil)
	containsAll("no devices", err)
	_, err = btreeio.Assemble(nil)
	containsAll("Assemble without devices", err)

	// Order does not matter: members are matched by dev_idx.
	fs := mustOpen(t, two[1], two[0])
	if fs.Devices[0].Path != two[0] || fs.Devices[1].Path != two[1] {
		t.Errorf("reversed order: devices %s, %s", fs.Devices[0].Path, fs.Devices[1].Path)
	}
	// The colon form of bcachefs is split like separate arguments.
	if got := btreeio.SplitDevices([]string{two[0] + ":" + two[1]}); len(got) != 2 || got[0] != two[0] || got[1] != two[1] {
		t.Errorf("SplitDevices = %q", got)
	}
	// A path that holds ':' (udev's by-path names) is not split, nor
	// is any argument when there are several.
	byPath := filepath.Join(t.TempDir(), "pci-0000:00:1f.2-ata-1")
	if err := os.Symlink(two[0], byPath); err != nil {
		t.Fatal(err)
	}
	if got := btreeio.SplitDevices([]string{byPath}); len(got) != 1 || got[0] != byPath {
		t.Errorf("SplitDevices(%q) = %q", byPath, got)
	}
	if got := btreeio.SplitDevices([]string{byPath, two[1]}); len(got) != 2 || got[0] != byPath || got[1] != two[1] {
		t.Errorf("SplitDevices(%q, %q) = %q", byPath, two[1], got)
	}
	mustOpen(t, byPath, two[1]).Close()
}

// openFlags returns the open flags (from /proc/self/fdinfo) of every file
// descriptor of this process that refers to path; ok is false when /proc
// is not available.
func openFlags(t *testing.T, path string) (flags []int64, ok bool) {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, false
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil || target != path {
			continue
		}
		info, err := os.Open(filepath.Join("/proc/self/fdinfo", fd.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(info)
		for sc.Scan() {
			if v, found := strings.CutPrefix(sc.Text(), "flags:"); found {
				fl, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				if err != nil {
					t.Fatalf("fdinfo flags %q: %v", v, err)
				}
				flags = append(flags, fl)
			}
		}
		info.Close()
	}
	return flags, true
}

// TestReadOnly opens a mode 0444 copy of tiny, walks every btree, and
// checks that the device was opened O_RDONLY and that its bytes, size,
// mode and mtime are unchanged afterwards.
func TestReadOnly(t *testing.T) {
	img := copyImage(t, casedata.CaseImages(t, "tiny")[0], -1)
	if err := os.Chmod(img, 0o444); err != nil {
		t.Fatal(err)
	}
	img, err := filepath.EvalSymlinks(img)
	if err != nil {
		t.Fatal(err)
	}
	before := casedata.StateOf(t, img)
	fs := mustOpen(t, img)
	if flags, ok := openFlags(t, img); ok {
		if len(flags) != 1 {
			t.Errorf("%d open file descriptors for the image, want 1", len(flags))
		}
		for _, fl := range flags {
			if fl&int64(os.O_RDONLY|os.O_WRONLY|os.O_RDWR) != int64(os.O_RDONLY) {
				t.Errorf("image opened with flags %#o, not O_RDONLY", fl)
			}
		}
	}
	walks := walkAll(t, fs)
	requireClean(t, walks)
	keys := 0
	for _, rec := range walks {
		keys += rec.leafKeys
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	after := casedata.StateOf(t, img)
	if after != before {
		t.Errorf("image changed by a read-only walk: before %+v, after %+v", before, after)
	}
	t.Logf("walked %d btrees, %d leaf keys; image unchanged (sha256 %x)", len(walks), keys, after.Sum[:8])
}

// setFirstBsetCsum recomputes the checksum of the first bset of the node in
// buf after the bytes were changed; it does nothing when the bset's
// checksum type is keyed or unknown or its u64s runs past buf.
func setFirstBsetCsum(buf []byte) {
	if len(buf) < btreeio.NodeHeaderBytes {
		return
	}
	ct := csum.Type(binary.LittleEndian.Uint32(buf[152:]) & 0xf)
	end := btreeio.NodeHeaderBytes + 8*int(binary.LittleEndian.Uint16(buf[158:]))
	if end > len(buf) {
		return
	}
	s, err := csum.Compute(ct, buf[16:end])
	if err != nil {
		return
	}
	binary.LittleEndian.PutUint64(buf[0:], s.Lo)
	binary.LittleEndian.PutUint64(buf[8:], s.Hi)
}

// TestNodeHeaderChecks feeds ParseNode real nodes with one thing wrong and
// a good checksum, and expects a precise error each time.
func TestNodeHeaderChecks(t *testing.T) {
	nodes := loadNodeBufs(t, "tiny", true)
	nb := nodes[0]
	parse := func(buf []byte, exp btreeio.NodeExpect) (*btreeio.Node, error) {
		return btreeio.ParseNode(nb.sb, "dev", 12345, buf, exp)
	}
	if _, err := parse(bytes.Clone(nb.buf), nb.exp); err != nil {
		t.Fatalf("unchanged node: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(buf []byte, exp *btreeio.NodeExpect)
		want error
	}{
		{"magic", func(b []byte, _ *btreeio.NodeExpect) { b[20] ^= 1 }, btreeio.ErrBadMagic},
		{"checksum", func(b []byte, _ *btreeio.NodeExpect) { b[0] ^= 1 }, btreeio.ErrBadChecksum},
		{"seq", func(_ []byte, e *btreeio.NodeExpect) { e.Seq++ }, btreeio.ErrCorrupt},
		{"level", func(_ []byte, e *btreeio.NodeExpect) { e.Level++ }, btreeio.ErrCorrupt},
		{"btree", func(_ []byte, e *btreeio.NodeExpect) { e.Btree++ }, btreeio.ErrCorrupt},
		{"max key", func(_ []byte, e *btreeio.NodeExpect) { e.Max.Snapshot ^= 1 }, btreeio.ErrCorrupt},
		{"min key", func(_ []byte, e *btreeio.NodeExpect) { e.Min = e.Min.Successor() }, btreeio.ErrCorrupt},
		{"sectors written past node", func(b []byte, e *btreeio.NodeExpect) { e.SectorsWritten = uint16(len(b)/512 + 1) }, btreeio.ErrCorrupt},
		// Btree id 256+id: ID_HI (flags bits 9..25) gets bit 4.
		{"btree id above 255", func(b []byte, _ *btreeio.NodeExpect) { b[24+1] ^= 1 << (13 - 8); setFirstBsetCsum(b) }, btreeio.ErrCorrupt},
		{"bset runs past written data", func(b []byte, _ *btreeio.NodeExpect) {
			binary.LittleEndian.PutUint16(b[158:], uint16(len(b)/8))
		}, btreeio.ErrCorrupt},
		{"checksum type 9", func(b []byte, _ *btreeio.NodeExpect) { b[152] = b[152]&^0xf | 9; setFirstBsetCsum(b) }, btreeio.ErrCorrupt},
		{"big-endian bset", func(b []byte, _ *btreeio.NodeExpect) { b[152] |= 1 << 4; setFirstBsetCsum(b) }, btreeio.ErrUnsupported},
		{"bad key format", func(b []byte, _ *btreeio.NodeExpect) { b[81] = 5; setFirstBsetCsum(b) }, bp.ErrKey},
		{"encrypted without key", func(b []byte, _ *btreeio.NodeExpect) { b[152] = b[152]&^0xf | 4 }, btreeio.ErrEncrypted},
		{"buffer shorter than a sector", func(b []byte, e *btreeio.NodeExpect) { e.SectorsWritten = 0 }, btreeio.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf, exp := bytes.Clone(nb.buf), nb.exp
			tc.edit(buf, &exp)
			if tc.name == "buffer shorter than a sector" {
				buf = buf[:400]
			}
			n, err := parse(buf, exp)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got node %v, error %v; want %v", n != nil, err, tc.want)
			}
			e := asError(t, err)
			if e.Dev != "dev" || e.Offset != 12345 || e.Btree != exp.Btree.Name(nb.sb.Version) || e.Level != int(exp.Level) {
				t.Errorf("error names %q byte %d btree %q level %d; want dev byte 12345 btree %q level %d",
					e.Dev, e.Offset, e.Btree, e.Level, exp.Btree.Name(nb.sb.Version), exp.Level)
			}
		})
	}
}

// smallBackpointersLeaf is the last backpointers leaf of the small case.
func smallBackpointersLeaf(t *testing.T) *nodeBuf {
	t.Helper()
	var nb *nodeBuf
	nodes := loadNodeBufs(t, "small", true)
	for i := range nodes {
		if nodes[i].exp.Btree == bp.BtreeBackpointers && nodes[i].exp.Level == 0 {
			nb = &nodes[i]
		}
	}
	if nb == nil {
		t.Fatal("small has no backpointers leaf")
	}
	return nb
}

// TestNodeKeysOutOfOrder swaps the first two keys of the first bset of a
// backpointers leaf of the small case (checksum made good again) and reads
// only that bset: the key that sorts before its predecessor is dropped and
// reported, and the node's keys stay in strictly increasing order.
func TestNodeKeysOutOfOrder(t *testing.T) {
	nb := smallBackpointersLeaf(t)
	buf := bytes.Clone(nb.buf)
	k0 := btreeio.NodeHeaderBytes
	l0 := 8 * int(buf[k0])
	k1 := k0 + l0
	l1 := 8 * int(buf[k1])
	end := btreeio.NodeHeaderBytes + 8*int(binary.LittleEndian.Uint16(buf[158:]))
	if l0 != l1 || k1+l1 > end {
		t.Fatalf("first two keys are %d and %d bytes", l0, l1)
	}
	a, b := bytes.Clone(buf[k0:k1]), bytes.Clone(buf[k1:k1+l1])
	copy(buf[k0:], b)
	copy(buf[k1:], a)
	setFirstBsetCsum(buf)
	// Only the first bset: later ones would be merged by sorting.
	exp := nb.exp
	exp.SectorsWritten = uint16((end + int(nb.sb.BlockSize)*512 - 1) / (int(nb.sb.BlockSize) * 512) * int(nb.sb.BlockSize))

	ref, err := btreeio.ParseNode(nb.sb, "dev", 0, bytes.Clone(nb.buf), exp)
	if err != nil || ref.Bsets != 1 {
		t.Fatalf("unchanged first bset: %v", err)
	}
	n, err := btreeio.ParseNode(nb.sb, "dev", 0, buf, exp)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(n.Keys); i++ {
		if !n.Keys[i-1].Key.Pos.Less(n.Keys[i].Key.Pos) {
			t.Fatalf("keys %d and %d out of order: %v, %v", i-1, i, n.Keys[i-1].Key.Pos, n.Keys[i].Key.Pos)
		}
	}
	if len(n.Problems) != 1 || !errors.Is(n.Problems[0], bp.ErrKey) {
		t.Errorf("problems %v, want one ErrKey", n.Problems)
	}
	if len(ref.Keys) < 3 {
		t.Fatalf("first bset holds %d keys", len(ref.Keys))
	}
	if len(n.Keys) != len(ref.Keys)-1 || n.Keys[0].Key.Pos != ref.Keys[1].Key.Pos {
		t.Errorf("%d keys starting at %v; want %d starting at %v", len(n.Keys), n.Keys[0].Key.Pos, len(ref.Keys)-1, ref.Keys[1].Key.Pos)
	}
}

// TestNodeRepeatedKeys rewrites the first two keys of a one-bset leaf
// as two copies of the first key's position. As the kernel's read does
// (bch2_validate_bset_keys: btree_node_bkey_out_of_order, which orders a
// deleted key before a live one at one position), a later copy is
// dropped and reported unless the earlier one is a deleted key; then
// the later one replaces it. (ParseNode resolves repeats within a bset
// while decoding.)
func TestNodeRepeatedKeys(t *testing.T) {
	nb := smallBackpointersLeaf(t)
	k0 := btreeio.NodeHeaderBytes
	l0 := 8 * int(nb.buf[k0])
	k1 := k0 + l0
	end := btreeio.NodeHeaderBytes + 8*int(binary.LittleEndian.Uint16(nb.buf[158:]))
	if 8*int(nb.buf[k1]) != l0 || k1+l0 > end {
		t.Fatalf("first two keys are %d and %d bytes", l0, 8*int(nb.buf[k1]))
	}
	exp := nb.exp
	exp.SectorsWritten = uint16((end + int(nb.sb.BlockSize)*512 - 1) / (int(nb.sb.BlockSize) * 512) * int(nb.sb.BlockSize))
	ref, err := btreeio.ParseNode(nb.sb, "dev", 0, bytes.Clone(nb.buf), exp)
	if err != nil || ref.Bsets != 1 || len(ref.Keys) < 3 {
		t.Fatalf("unchanged node: %v", err)
	}
	for _, tc := range []struct {
		name                string
		firstDel, secondDel bool
		keep                int // which copy stays: 0, 1, or -1 for none
		problem             bool
	}{
		{"live then live", false, false, 0, true},
		{"live then deleted", false, true, 0, true},
		{"deleted then live", true, false, 1, false},
		{"deleted then deleted", true, true, -1, true},
	} {
		buf := bytes.Clone(nb.buf)
		copy(buf[k1:k1+l0], buf[k0:k1])
		buf[k1+l0-1] ^= 0x5a // the copy's value differs in its last byte
		if tc.firstDel {
			buf[k0+2] = byte(bp.KeyDeleted)
		}
		if tc.secondDel {
			buf[k1+2] = byte(bp.KeyDeleted)
		}
		setFirstBsetCsum(buf)
		n, err := btreeio.ParseNode(nb.sb, "dev", 0, buf, exp)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(n.Problems) != 0; got != tc.problem {
			t.Errorf("%s: problems %v", tc.name, n.Problems)
		}
		for _, p := range n.Problems {
			if !errors.Is(p, bp.ErrKey) || !strings.Contains(p.Error(), fmt.Sprintf("key at byte %d ", k1)) || !strings.Contains(p.Error(), "repeats") {
				t.Errorf("%s: problem %q", tc.name, p)
			}
		}
		rest := ref.Keys[2:]
		if tc.keep >= 0 {
			at := []int{k0, k1}[tc.keep]
			if len(n.Keys) != len(ref.Keys)-1 || n.Keys[0].Key.Pos != ref.Keys[0].Key.Pos {
				t.Fatalf("%s: %d keys from %v, want %d from %v", tc.name, len(n.Keys), n.Keys[0].Key.Pos, len(ref.Keys)-1, ref.Keys[0].Key.Pos)
			}
			if !bytes.Equal(n.Keys[0].Val, buf[at+l0-len(n.Keys[0].Val):at+l0]) {
				t.Errorf("%s: copy %d did not win: value %x", tc.name, tc.keep, n.Keys[0].Val)
			}
			n.Keys = n.Keys[1:]
		}
		if len(n.Keys) != len(rest) {
			t.Fatalf("%s: %d keys after the repeat, want %d", tc.name, len(n.Keys), len(rest))
		}
		for i := range rest {
			if n.Keys[i].Key != rest[i].Key || !bytes.Equal(n.Keys[i].Val, rest[i].Val) {
				t.Fatalf("%s: key %d is %v, want %v", tc.name, i, n.Keys[i].Key, rest[i].Key)
			}
		}
	}
}

// TestErrorText checks that *btreeio.Error prints device, offset,
// structure, btree and level.
func TestErrorText(t *testing.T) {
	e := &btreeio.Error{Dev: "/dev/x", Offset: 4096, What: "btree node", Btree: "extents", Level: 1, Err: btreeio.ErrBadChecksum}
	want := "/dev/x: byte 4096: btree node (btree extents level 1): corrupt metadata: bad checksum"
	if got := e.Error(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e = &btreeio.Error{Dev: "d", Offset: -1, What: "superblock", Level: -1, Err: fmt.Errorf("x: %w", btreeio.ErrTruncated)}
	if got := e.Error(); got != "d: superblock: x: corrupt metadata: truncated" {
		t.Errorf("got %q", got)
	}
	if !errors.Is(e, btreeio.ErrCorrupt) {
		t.Error("Unwrap does not reach ErrCorrupt")
	}
}

// TestCleanSectionErrorOffset breaks the first jset_entry of the clean
// section (its u64s runs past the section; checksum made good again). The
// LoadRoots error must give the byte offset of the clean section in the
// superblock copy actually used: the primary, or the backup when the
// primary's magic is broken too.
func TestCleanSectionErrorOffset(t *testing.T) {
	src := casedata.CaseImages(t, "tiny")[0]
	cleanOff := int64(sbField(readRawSB(t, src), btreeio.FieldClean) + 24)
	if cleanOff < 24 {
		t.Fatal("tiny has no clean section")
	}
	breakClean := func(raw []byte) { binary.LittleEndian.PutUint16(raw[cleanOff:], 0xffff) }
	for _, useBackup := range []bool{false, true} {
		img := copyImage(t, src, -1)
		offs := sbCopyOffsets(t, img)
		for _, off := range offs {
			editSB(t, img, off, breakClean, true)
		}
		want := offs[0] + cleanOff
		if useBackup {
			xorByte(t, img, offs[0]+24, 0xff)
			want = offs[1] + cleanOff
		}
		fs := mustOpen(t, img)
		err := fs.LoadRoots()
		if !errors.Is(err, btreeio.ErrCorrupt) {
			t.Fatalf("backup %v: %v, want ErrCorrupt", useBackup, err)
		}
		e := asError(t, err)
		if e.Dev != img || e.Offset != want || e.What != "superblock clean section" {
			t.Errorf("backup %v: error names %q byte %d (%s); want %q byte %d", useBackup, e.Dev, e.Offset, e.What, img, want)
		}
	}
}

// TestNodeKeysOutsideRange moves a leaf's max_key (and then its min_key)
// inside its keys, with the parent pointer saying the same: the keys
// past the new end (before the new start) are dropped as the kernel drops
// them (bkey_after_end_of_btree_node, bkey_before_start_of_btree_node),
// each a problem of the node naming its byte offset, by the eager and the
// lazy parse alike. A pointer that updated the node's range gives it
// both its ends instead (the node's own min_key or max_key on disk may
// differ), and no key is dropped for lying outside the node's own.
func TestNodeKeysOutsideRange(t *testing.T) {
	nb := smallBackpointersLeaf(t)
	end := btreeio.NodeHeaderBytes + 8*int(binary.LittleEndian.Uint16(nb.buf[158:]))
	exp := nb.exp
	exp.SectorsWritten = uint16((end + int(nb.sb.BlockSize)*512 - 1) / (int(nb.sb.BlockSize) * 512) * int(nb.sb.BlockSize))
	ref, err := btreeio.ParseNode(nb.sb, "dev", 0, bytes.Clone(nb.buf), exp)
	if err != nil || ref.Bsets != 1 || len(ref.Keys) < 4 || len(ref.Problems) != 0 {
		t.Fatalf("unchanged node: %v, %d problems", err, len(ref.Problems))
	}
	parse := func(buf []byte, exp btreeio.NodeExpect) [2]*btreeio.Node {
		eager, err := btreeio.ParseNode(nb.sb, "dev", 0, bytes.Clone(buf), exp)
		if err != nil {
			t.Fatal(err)
		}
		lazy, err := btreeio.ParseNodePacked(nb.sb, "dev", 0, bytes.Clone(buf), exp)
		if err != nil {
			t.Fatal(err)
		}
		lazy.DecodeKeys()
		return [2]*btreeio.Node{eager, lazy}
	}
	at := ref.Keys[1].Key.Pos
	for _, tc := range []struct {
		name       string
		hdr        int // byte of the header's min_key or max_key
		keep       []btreeio.NodeKey
		setPointer func(e *btreeio.NodeExpect)
	}{
		{"max", 52, ref.Keys[:2], func(e *btreeio.NodeExpect) { e.Max = at }},
		{"min", 32, ref.Keys[1:], func(e *btreeio.NodeExpect) { e.Min = at }},
		{"min, range updated", 32, ref.Keys, func(e *btreeio.NodeExpect) { e.RangeUpdated = true }},
		{"max, range updated", 52, ref.Keys, func(e *btreeio.NodeExpect) { e.RangeUpdated = true }},
	} {
		buf := bytes.Clone(nb.buf)
		at.Put(buf[tc.hdr:])
		setFirstBsetCsum(buf)
		e := exp
		tc.setPointer(&e)
		for i, n := range parse(buf, e) {
			how := []string{"eager", "lazy"}[i]
			if len(n.Keys) != len(tc.keep) {
				t.Fatalf("%s, %s: %d keys, want %d", tc.name, how, len(n.Keys), len(tc.keep))
			}
			for j := range tc.keep {
				if n.Keys[j].Key != tc.keep[j].Key {
					t.Fatalf("%s, %s: key %d is %v, want %v", tc.name, how, j, n.Keys[j].Key, tc.keep[j].Key)
				}
			}
			if dropped := len(ref.Keys) - len(tc.keep); len(n.Problems) != dropped {
				t.Fatalf("%s, %s: %d problems for %d keys dropped: %v", tc.name, how, len(n.Problems), dropped, n.Problems)
			}
			for _, p := range n.Problems {
				if !errors.Is(p, bp.ErrKey) || !strings.Contains(p.Error(), "outside the node's range") || !strings.Contains(p.Error(), "key at byte ") {
					t.Errorf("%s, %s: problem %q", tc.name, how, p)
				}
			}
		}
	}
}

// TestLazyProblemOrder gives a two-bset leaf a key with u64s 0 at the end
// of its first bset and a bad checksum in its second: the lazy parse,
// which holds the first bset's keys back, must report the two problems
// in the order the eager parse does (first bset first).
func TestLazyProblemOrder(t *testing.T) {
	nodes := append(loadNodeBufs(t, "tiny", true), loadNodeBufs(t, "a-tiny", true)...)
	le := binary.LittleEndian
	tried := 0
	for _, nb := range nodes {
		if nb.exp.Level != 0 {
			continue
		}
		blockBytes := int(nb.sb.BlockSize) * btreeio.SectorSize
		buf := bytes.Clone(nb.buf)
		u := int(le.Uint16(buf[158:]))
		end := btreeio.NodeHeaderBytes + 8*u
		second := (end + blockBytes - 1) / blockBytes * blockBytes
		if second+btreeio.EntryHeaderBytes > len(buf) || le.Uint64(buf[second+16:]) != le.Uint64(buf[136:]) || end+8 > second {
			continue // one bset, or no room for another key in the first
		}
		le.PutUint16(buf[158:], uint16(u+1))
		clear(buf[end : end+8])
		setBsetCsums(buf, blockBytes)
		buf[second] ^= 1 // the second bset's checksum
		eager, err := btreeio.ParseNode(nb.sb, "d", 0, bytes.Clone(buf), nb.exp)
		if err != nil {
			continue
		}
		lazy, err := btreeio.ParseNodePacked(nb.sb, "d", 0, bytes.Clone(buf), nb.exp)
		if err != nil {
			t.Fatal(err)
		}
		lazy.DecodeKeys()
		tried++
		if len(eager.Problems) < 2 {
			t.Fatalf("eager parse: %d problems, want the bad key's and the bad checksum's: %v", len(eager.Problems), eager.Problems)
		}
		if len(lazy.Problems) != len(eager.Problems) {
			t.Fatalf("lazy %d problems, eager %d", len(lazy.Problems), len(eager.Problems))
		}
		for i := range eager.Problems {
			if eager.Problems[i].Error() != lazy.Problems[i].Error() {
				t.Fatalf("problem %d: lazy %q, eager %q", i, lazy.Problems[i], eager.Problems[i])
			}
		}
	}
	if tried == 0 {
		t.Fatal("no two-bset leaf with room for a key in its first bset")
	}
	t.Logf("%d leaves", tried)
}
