package gen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
)

// keyCollector collects the leaf keys of a btree (values copied).
type keyCollector struct{ keys []btreeio.NodeKey }

func (v *keyCollector) Node(n *btreeio.Node) error {
	if n.Level == 0 {
		for _, k := range n.Keys {
			k.Val = append([]byte(nil), k.Val...)
			v.keys = append(v.keys, k)
		}
	}
	return nil
}

func (v *keyCollector) NodeError(id bp.BtreeID, level uint8, _ *bp.Key, err error) error {
	return fmt.Errorf("btree %d level %d: %w", id, level, err)
}

func btreeKeys(t *testing.T, fs *btreeio.FS, id bp.BtreeID) []btreeio.NodeKey {
	t.Helper()
	var c keyCollector
	if err := fs.Walk(id, 0, &c); err != nil {
		t.Fatal(err)
	}
	return c.keys
}

func openImages(t *testing.T, paths []string) *btreeio.FS {
	t.Helper()
	fs, err := btreeio.Open(paths)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// decodeVarint is the test's own reading of bcachefs' varint: ok is false
// when b is too short.
func decodeVarint(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	n = 1
	for n <= 8 && b[0]&(1<<(n-1)) != 0 {
		n++
	}
	if n > len(b) {
		return 0, 0, false
	}
	if n == 9 {
		if len(b) < 9 {
			return 0, 0, false
		}
		return binary.LittleEndian.Uint64(b[1:]), 9, true
	}
	var buf [8]byte
	copy(buf[:], b[:n])
	return binary.LittleEndian.Uint64(buf[:]) >> n, n, true
}

// decodeInodeV3 unpacks an inode_v3 value for the tests.
func decodeInodeV3(b []byte) (inode, error) {
	var in inode
	if len(b) < inodeV3Bytes {
		return in, fmt.Errorf("inode value of %d bytes", len(b))
	}
	le := binary.LittleEndian
	in.journalSeq, in.hashSeed, in.flags = le.Uint64(b), le.Uint64(b[8:]), le.Uint64(b[16:])
	in.sectors, in.size, in.version = le.Uint64(b[24:]), le.Uint64(b[32:]), le.Uint64(b[40:])
	nr := int(in.flags >> 24 & 0x7f)
	start := int(in.flags >> 31 & 0x1f)
	in.mode = uint16(in.flags >> 36)
	in.flags &= 1<<24 - 1
	if start != inodeFieldsStart || nr > nInodeFields {
		return in, fmt.Errorf("fields start %d, nr %d", start, nr)
	}
	p := b[inodeV3Bytes:]
	for i := 0; i < nr; i++ {
		for part := 0; part < 1+(inodeFieldWide>>i&1); part++ {
			v, n, ok := decodeVarint(p)
			if !ok {
				return in, fmt.Errorf("field %d truncated", i)
			}
			if part == 0 {
				in.f[i] = v
			} else if v != 0 {
				return in, fmt.Errorf("field %d: high bits %d", i, v)
			}
			p = p[n:]
		}
	}
	return in, nil
}

func TestVarint(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 1<<14 - 1, 1 << 14, 1<<56 - 1, 1 << 56, math.MaxUint64} {
		b := appendVarint(nil, v)
		got, n, ok := decodeVarint(b)
		if !ok || got != v || n != len(b) {
			t.Errorf("varint %d: % x decodes to %d (%d bytes, %v)", v, b, got, n, ok)
		}
	}
}

// TestSipHash checks SipHash-2-4 against the reference vector of the
// SipHash paper (key 00..0f, message 00..0e).
func TestSipHash(t *testing.T) {
	msg := make([]byte, 15)
	for i := range msg {
		msg[i] = byte(i)
	}
	if got := sipHash24(0x0706050403020100, 0x0f0e0d0c0b0a0908, msg); got != 0xa129ca6149be45e5 {
		t.Errorf("siphash = %#x, want 0xa129ca6149be45e5", got)
	}
}

var dumpField = regexp.MustCompile(`(?m)^  (\w+)=(\S+)`)

// dumpInodes parses an inodes list dump: inode number → field → value.
func dumpInodes(dump string) map[uint64]map[string]string {
	out := map[uint64]map[string]string{}
	for _, k := range casedata.SplitKeys(dump) {
		var ino uint64
		if _, err := fmt.Sscanf(k, "u64s %d type inode_v3 0:%d:", new(int), &ino); err != nil {
			continue
		}
		f := map[string]string{}
		for _, m := range dumpField.FindAllStringSubmatch(k, -1) {
			f[m[1]] = m[2]
		}
		out[ino] = f
	}
	return out
}

// TestInodeRealImage decodes every inode of the tiny case's image, checks
// the decoding against the tool's list dump and packs it back to the same
// bytes.
func TestInodeRealImage(t *testing.T) {
	dump, ok := casedata.ListDump(t, "tiny", "inodes")
	if !ok {
		t.Skip("no inodes dump")
	}
	want := dumpInodes(dump)
	fs := openImages(t, casedata.CaseImages(t, "tiny"))
	keys := btreeKeys(t, fs, bp.BtreeInodes)
	if len(keys) != len(want) || len(keys) == 0 {
		t.Fatalf("%d inodes in the image, %d in the dump", len(keys), len(want))
	}
	for _, k := range keys {
		if k.Key.Type != keyInodeV3 {
			t.Fatalf("%s: key type %d", k.Key.Pos, k.Key.Type)
		}
		in, err := decodeInodeV3(k.Val)
		if err != nil {
			t.Fatalf("inode %d: %v", k.Key.Pos.Offset, err)
		}
		w := want[k.Key.Pos.Offset]
		for name, got := range map[string]uint64{
			"bi_size": in.size, "bi_sectors": in.sectors, "bi_nlink": in.f[fNlink], "bi_dir": in.f[fDir],
			"bi_dir_offset": in.f[fDirOffset], "bi_subvol": in.f[fSubvol], "bi_depth": in.f[fDepth],
			"bi_atime": in.f[fAtime], "bi_otime": in.f[fOtime], "journal_seq": in.journalSeq,
		} {
			if w[name] != strconv.FormatUint(got, 10) {
				t.Errorf("inode %d: %s %d, dump says %s", k.Key.Pos.Offset, name, got, w[name])
			}
		}
		if w["hash_seed"] != strconv.FormatUint(in.hashSeed, 16) || w["mode"] != strconv.FormatUint(uint64(in.mode), 8) {
			t.Errorf("inode %d: hash_seed %x mode %o, dump %s %s", k.Key.Pos.Offset, in.hashSeed, in.mode, w["hash_seed"], w["mode"])
		}
		if got := appendInodeV3(nil, &in); !bytes.Equal(got, k.Val) {
			t.Errorf("inode %d packs to\n% x\nwant\n% x", k.Key.Pos.Offset, got, k.Val)
		}
	}
}

var direntLine = regexp.MustCompile(`type dirent (\d+):(\d+):\S+ .*: (\S+) -> (\d+) type (\w+)`)

// TestDirentRealImage hashes the name of every dirent of the tiny and
// small cases with its directory's hash seed: the result is the dirent's
// offset. The values read from the image encode back to the same bytes.
func TestDirentRealImage(t *testing.T) {
	for _, name := range []string{"tiny", "small"} {
		t.Run(name, func(t *testing.T) {
			dd, ok1 := casedata.ListDump(t, name, "dirents")
			id, ok2 := casedata.ListDump(t, name, "inodes")
			if !ok1 || !ok2 {
				t.Skip("no dumps")
			}
			inodes := dumpInodes(id)
			n := 0
			for _, k := range casedata.SplitKeys(dd) {
				m := direntLine.FindStringSubmatch(k)
				if m == nil {
					continue
				}
				dir, _ := strconv.ParseUint(m[1], 10, 64)
				off, _ := strconv.ParseUint(m[2], 10, 64)
				seed, err := strconv.ParseUint(inodes[dir]["hash_seed"], 16, 64)
				if err != nil {
					t.Fatalf("directory %d: no hash seed", dir)
				}
				if got := direntHash(seed, []byte(m[3])); got != off {
					t.Errorf("dirent %q in %d: hash %d, offset %d", m[3], dir, got, off)
				}
				n++
			}
			if n < 30 {
				t.Fatalf("only %d dirents checked", n)
			}
		})
	}
	fs := openImages(t, casedata.CaseImages(t, "tiny"))
	types := map[string]uint8{"dir": dtDir, "reg": dtReg}
	dd, _ := casedata.ListDump(t, "tiny", "dirents")
	names := map[bp.Pos][]string{}
	for _, k := range casedata.SplitKeys(dd) {
		if m := direntLine.FindStringSubmatch(k); m != nil {
			dir, _ := strconv.ParseUint(m[1], 10, 64)
			off, _ := strconv.ParseUint(m[2], 10, 64)
			names[bp.Pos{Inode: dir, Offset: off, Snapshot: math.MaxUint32}] = m[3:]
		}
	}
	checked := 0
	for _, k := range btreeKeys(t, fs, btreeDirents) {
		m, ok := names[k.Key.Pos]
		if !ok || types[m[2]] == 0 {
			continue
		}
		target, _ := strconv.ParseUint(m[1], 10, 64)
		if got := appendDirent(nil, target, types[m[2]], []byte(m[0])); !bytes.Equal(got, k.Val) {
			t.Errorf("dirent %s: encodes to % x, image has % x", m[0], got, k.Val)
		}
		checked++
	}
	if checked < 30 {
		t.Errorf("only %d dirent values checked", checked)
	}
}

// TestFsValuesRealImage compares the snapshot, snapshot tree, subvolume
// and inode cursor values with those `bcachefs format` wrote on the tiny
// image (times zeroed: gen writes none).
func TestFsValuesRealImage(t *testing.T) {
	fs := openImages(t, casedata.CaseImages(t, "tiny"))
	one := func(id bp.BtreeID) btreeio.NodeKey {
		keys := btreeKeys(t, fs, id)
		if len(keys) != 1 {
			t.Fatalf("btree %d: %d keys", id, len(keys))
		}
		return keys[0]
	}
	zero := func(b []byte, from int) []byte {
		b = append([]byte(nil), b...)
		clear(b[from:])
		return b
	}
	for _, c := range []struct {
		id   bp.BtreeID
		typ  bp.KeyType
		pos  bp.Pos
		val  []byte
		mask func([]byte) []byte
	}{
		{btreeSnapshots, keySnapshot, bp.Pos{Offset: math.MaxUint32}, snapshotVal(format136), func(b []byte) []byte { return zero(b, 40) }},
		{btreeSubvolumes, keySubvolume, bp.Pos{Offset: rootSubvol}, subvolumeVal(format136), func(b []byte) []byte { return zero(b, 24) }},
		{btreeSnapshotTrees, keySnapshotTree, bp.Pos{Offset: 1}, snapshotTreeVal(), nil},
		{btreeLoggedOps, keyInodeAllocCursor, bp.Pos{Inode: 1}, inodeCursorVal(2147483685), nil},
	} {
		k := one(c.id)
		got := k.Val
		if c.mask != nil {
			got = c.mask(got)
		}
		if k.Key.Type != c.typ || k.Key.Pos != c.pos || !bytes.Equal(got, c.val) {
			t.Errorf("btree %d: image has type %d at %s, % x; gen writes type %d at %s, % x",
				c.id, k.Key.Type, k.Key.Pos, got, c.typ, c.pos, c.val)
		}
	}
}

var accountingLine = regexp.MustCompile(`type accounting (\S+) len`)

// TestAccountingPosReal checks the accounting key positions against the
// tiny case's dump.
func TestAccountingPosReal(t *testing.T) {
	dump, ok := casedata.ListDump(t, "tiny", "accounting")
	if !ok {
		t.Skip("no accounting dump")
	}
	want := map[string]bp.Pos{
		"nr_inodes":                          accPosNrInodes(),
		"replicas btree: 1/1 [0]":            accPosReplicas(bp.DataBtree, []uint8{0}),
		"replicas user: 1/1 [0]":             accPosReplicas(bp.DataUser, []uint8{0}),
		"dev_data_type dev=0 data_type=sb":   accPosDevDataType(0, bp.DataSB),
		"dev_data_type dev=0 data_type=free": accPosDevDataType(0, bp.DataFree),
		"dev_data_type dev=0 data_type=user": accPosDevDataType(0, bp.DataUser),
		"snapshot id=4294967295":             accPosSnapshot(math.MaxUint32),
		"btree btree=inodes":                 accPosBtree(bp.BtreeInodes),
		"btree btree=accounting":             accPosBtree(btreeAccounting),
		"btree btree=backpointers":           accPosBtree(bp.BtreeBackpointers),
	}
	seen := 0
	for _, line := range strings.Split(dump, "\n") {
		m := accountingLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for name, w := range want {
			if !strings.Contains(line, ": "+name+" ") {
				continue
			}
			seen++
			pos := "POS_MIN"
			if w != (bp.Pos{}) {
				pos = fmt.Sprintf("%d:%d:%d", w.Inode, w.Offset, w.Snapshot)
			}
			if pos != m[1] {
				t.Errorf("%s: gen puts it at %s, the dump at %s", name, pos, m[1])
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of %d accounting keys in the dump", seen, len(want))
	}
}

// TestGeneratedNamespace reads a generated filesystem's inodes, dirents
// and extents back: every file has an inode with the size and sectors of
// its extents and a dirent whose offset is the hash of its name in its
// directory, found again from bi_dir/bi_dir_offset.
func TestGeneratedNamespace(t *testing.T) {
	dir := t.TempDir()
	p := Params{Devices: 2, Replicas: 2, DeviceSize: 256 << 20, Extents: 3000, Seed: 9}
	m, err := Generate(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, filepath.Join(dir, f))
	}
	fs := openImages(t, paths)
	inodes := map[uint64]inode{}
	for _, k := range btreeKeys(t, fs, bp.BtreeInodes) {
		in, err := decodeInodeV3(k.Val)
		if err != nil {
			t.Fatalf("inode %d: %v", k.Key.Pos.Offset, err)
		}
		inodes[k.Key.Pos.Offset] = in
	}
	sectors := map[uint64]uint64{}
	for _, k := range btreeKeys(t, fs, bp.BtreeExtents) {
		sectors[k.Key.Pos.Inode] += uint64(k.Key.Size)
	}
	if int64(len(sectors)) != m.Inodes {
		t.Fatalf("%d files with extents, manifest %d", len(sectors), m.Inodes)
	}
	for ino, s := range sectors {
		in, ok := inodes[ino]
		if !ok || in.sectors != s || in.size != s*sectorSize || in.mode != modeReg|0o644 {
			t.Errorf("file %d (%d sectors): inode %+v", ino, s, in)
		}
	}
	dirents := map[bp.Pos][]byte{}
	for _, k := range btreeKeys(t, fs, btreeDirents) {
		dirents[k.Key.Pos] = k.Val
	}
	if len(dirents) != len(inodes)-1 {
		t.Errorf("%d dirents for %d inodes", len(dirents), len(inodes))
	}
	for ino, in := range inodes {
		if ino == rootIno {
			continue
		}
		v, ok := dirents[bp.Pos{Inode: in.f[fDir], Offset: in.f[fDirOffset], Snapshot: math.MaxUint32}]
		if !ok || len(v) < 9 || binary.LittleEndian.Uint64(v) != ino {
			t.Errorf("inode %d: no dirent at its bi_dir %d bi_dir_offset %d", ino, in.f[fDir], in.f[fDirOffset])
			continue
		}
		name := bytes.TrimRight(v[9:], "\x00")
		if got := direntHash(inodes[in.f[fDir]].hashSeed, name); got != in.f[fDirOffset] {
			t.Errorf("dirent %q: offset %d, hash %d", name, in.f[fDirOffset], got)
		}
	}
}

func TestNames(t *testing.T) {
	if got := string(fileName(nil, 42)); got != "f000000042" {
		t.Errorf("fileName(42) = %q", got)
	}
	if got := string(dirName([]byte("x"), 1234567)); got != "d1234567" {
		t.Errorf("dirName(1234567) = %q", got)
	}
}

func TestOffsetSet(t *testing.T) {
	s := newOffsetSet(4)
	for _, c := range []struct{ in, want uint64 }{{5, 5}, {5, 6}, {5, 7}, {6, 8}, {2, 2}} {
		if got := s.probe(c.in); got != c.want {
			t.Errorf("probe(%d) = %d, want %d", c.in, got, c.want)
		}
	}
	s.clear()
	if got := s.probe(5); got != 5 {
		t.Errorf("after clear: probe(5) = %d", got)
	}
}
