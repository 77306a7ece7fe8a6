package btreeio_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/csum"
	"bpcheck/internal/casedata"
)

// nodeBuf is one btree node as read from a test image: the filesystem's
// superblock, where the node was read, its bytes and what its parent
// pointer expects of it.
type nodeBuf struct {
	sb   *btreeio.Superblock
	dev  string
	off  int64
	buf  []byte
	exp  btreeio.NodeExpect
	keys int // merged keys btreeio found
}

// loadNodeBufs reads every node of every btree of test case name, from the
// roots down, with the NodeExpect of its parent pointer. With trim each
// buffer holds only the sectors written (the pointer's sectors_written),
// otherwise the whole on-disk node.
func loadNodeBufs(tb testing.TB, name string, trim bool) []nodeBuf {
	tb.Helper()
	fs, err := btreeio.Open(casedata.CaseImages(tb, name))
	if err != nil {
		tb.Fatalf("open %s: %v", name, err)
	}
	defer fs.Close()
	if err := fs.LoadRoots(); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	var out []nodeBuf
	var visit func(id bp.BtreeID, level uint8, k *bp.Key, val []byte)
	visit = func(id bp.BtreeID, level uint8, k *bp.Key, val []byte) {
		exp, err := btreeio.ExpectFromKey(id, level, k, val)
		if err != nil {
			tb.Fatal(err)
		}
		n, err := fs.ReadNode(id, level, k, val)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		size := int(fs.SB.BtreeNodeSectors()) * btreeio.SectorSize
		if trim {
			size = int(n.SectorsWritten) * btreeio.SectorSize
		}
		buf := make([]byte, size)
		for _, d := range fs.Devices {
			if d != nil && d.Path == n.Dev {
				if _, err := d.ReadAt(buf, n.Offset); err != nil {
					tb.Fatal(err)
				}
			}
		}
		out = append(out, nodeBuf{sb: fs.SB, dev: n.Dev, off: n.Offset, buf: buf, exp: exp, keys: len(n.Keys)})
		if level == 0 {
			return
		}
		for i := range n.Keys {
			if ck := &n.Keys[i]; ck.Key.Type == bp.KeyBtreePtrV2 || ck.Key.Type == bp.KeyBtreePtr {
				visit(id, level-1, &ck.Key, ck.Val)
			}
		}
	}
	for _, r := range fs.Roots {
		visit(r.Btree, r.Level, &r.Key, r.Val)
	}
	return out
}

// sbSeeds returns the raw primary superblocks of a few test images.
func sbSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	for _, name := range []string{"tiny", "a-tiny"} {
		d, err := btreeio.OpenDevice(casedata.CaseImages(tb, name)[0])
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, bytes.Clone(d.SB.Raw))
		d.Close()
	}
	return out
}

// setSBCsum recomputes the superblock checksum of raw when it can (a
// fuzzed superblock may be too short or name a keyed type).
func setSBCsum(raw []byte) { _ = btreeio.SealSuperblock(raw) }

// typedError reports whether err is one of the error classes the package
// documents for bad on-disk data.
func typedError(err error) bool {
	return errors.Is(err, btreeio.ErrCorrupt) || errors.Is(err, btreeio.ErrUnsupported) ||
		errors.Is(err, btreeio.ErrEncrypted) || errors.Is(err, bp.ErrKey)
}

// FuzzSuperblock parses mutated copies of real superblocks. With fix the
// checksum is recomputed after the mutation so the field parsing is
// reached. ParseSuperblock must not panic, must fail only with the
// documented errors, and a superblock it accepts must be consistent.
func FuzzSuperblock(f *testing.F) {
	if haveTestdata() {
		for _, raw := range sbSeeds(f) {
			f.Add(raw, false)
			f.Add(raw, true)
		}
	}
	f.Add(make([]byte, 752), true)
	f.Fuzz(func(t *testing.T, raw []byte, fix bool) {
		raw = bytes.Clone(raw)
		if fix {
			setSBCsum(raw)
		}
		sb, err := btreeio.ParseSuperblock(raw)
		if err != nil {
			if !typedError(err) {
				t.Fatalf("untyped error %v", err)
			}
			if !errors.Is(err, btreeio.ErrEncrypted) {
				return
			}
			if sb == nil {
				t.Fatal("ErrEncrypted without the superblock")
			}
		}
		if len(sb.Raw) != 752+8*int(sb.U64s) || len(sb.Raw) > len(raw) {
			t.Fatalf("Raw is %d bytes for u64s %d (input %d)", len(sb.Raw), sb.U64s, len(raw))
		}
		if sb.NrDevices == 0 || sb.DevIdx >= sb.NrDevices || len(sb.Members) != int(sb.NrDevices) {
			t.Fatalf("dev_idx %d nr_devices %d members %d", sb.DevIdx, sb.NrDevices, len(sb.Members))
		}
		if sb.BlockSize == 0 || sb.BlockSize&(sb.BlockSize-1) != 0 {
			t.Fatalf("block size %d", sb.BlockSize)
		}
		if err == nil {
			if n := sb.BtreeNodeSectors(); n == 0 || n&(n-1) != 0 || n < uint32(sb.BlockSize) {
				t.Fatalf("btree node size %d", n)
			}
		}
		next := 752
		for _, fl := range sb.Fields {
			if fl.Offset != next || len(fl.Data) < 8 || fl.Offset+len(fl.Data) > len(sb.Raw) ||
				&fl.Data[0] != &sb.Raw[fl.Offset] || binary.LittleEndian.Uint32(fl.Data[4:]) != fl.Type {
				t.Fatalf("field at %d (%d bytes, type %d) does not fit the field area", fl.Offset, len(fl.Data), fl.Type)
			}
			next += len(fl.Data)
		}
		if next != len(sb.Raw) {
			t.Fatalf("fields end at %d, superblock at %d", next, len(sb.Raw))
		}
		for i := 0; i < 256; i++ {
			if m := sb.Member(uint8(i)); m != nil && (m.Index != i || m.BucketSize == 0) {
				t.Fatalf("member %d: %+v", i, m)
			}
		}
		_ = sb.ExtentBPShift()
		_ = sb.VersionUpgradeComplete()
		if sb.Clean != nil {
			if _, err := btreeio.ParseJEntries(sb.Clean.Entries); err != nil && !typedError(err) {
				t.Fatalf("clean section: untyped error %v", err)
			}
		}
	})
}

// setBsetCsums recomputes the checksums of every bset of the node in buf,
// the first one and each later one found as ParseNode finds them (same seq,
// at the next block boundary), for a filesystem with the given block size in
// bytes.
func setBsetCsums(buf []byte, blockBytes int) {
	setFirstBsetCsum(buf)
	if len(buf) < btreeio.NodeHeaderBytes {
		return
	}
	le := binary.LittleEndian
	seq := le.Uint64(buf[136:])
	end := btreeio.NodeHeaderBytes + 8*int(le.Uint16(buf[158:]))
	for {
		off := (end + blockBytes - 1) / blockBytes * blockBytes
		if off+btreeio.EntryHeaderBytes > len(buf) || le.Uint64(buf[off+16:]) != seq {
			return
		}
		end = off + btreeio.EntryHeaderBytes + 8*int(le.Uint16(buf[off+38:]))
		if end > len(buf) {
			return
		}
		s, err := csum.Compute(csum.Type(le.Uint32(buf[off+32:])&0xf), buf[off+16:end])
		if err != nil {
			return
		}
		le.PutUint64(buf[off:], s.Lo)
		le.PutUint64(buf[off+8:], s.Hi)
	}
}

// FuzzNode parses mutated real node buffers (every node of the tiny and
// a-tiny cases, cut to their written sectors) with their real NodeExpect.
// which picks the node; with fix the checksums of the first bset and of
// every later bset are recomputed after the mutation (in these nodes the
// keys live in the later bsets), so mutations reach the key parsing instead
// of failing a checksum. ParseNode must not panic, must return *btreeio.Error naming
// the node for anything fatal, and a node it accepts must hold live keys in
// strictly increasing order whose values lie inside the buffer.
func FuzzNode(f *testing.F) {
	var nodes []nodeBuf
	if haveTestdata() {
		nodes = append(loadNodeBufs(f, "tiny", true), loadNodeBufs(f, "a-tiny", true)...)
	}
	if len(nodes) == 0 {
		f.Skip("no test images: FuzzNode needs real nodes")
	}
	for i, n := range nodes {
		f.Add(uint8(i), n.buf, false)
		f.Add(uint8(i), n.buf, true)
	}
	f.Fuzz(func(t *testing.T, which uint8, buf []byte, fix bool) {
		nb := nodes[int(which)%len(nodes)]
		buf = bytes.Clone(buf)
		if fix {
			setBsetCsums(buf, int(nb.sb.BlockSize)*btreeio.SectorSize)
		}
		const dev, off = "fuzzdev", 1 << 20
		lazyBuf := bytes.Clone(buf)
		n, err := btreeio.ParseNode(nb.sb, dev, off, buf, nb.exp)
		checkLazyParse(t, nb, lazyBuf, n, err)
		if err != nil {
			if n != nil {
				t.Fatal("node and error")
			}
			e := asError(t, err)
			if e.Dev != dev || e.Offset != off || e.Btree != nb.exp.Btree.Name(nb.sb.Version) || e.Level != int(nb.exp.Level) {
				t.Fatalf("error names %q byte %d btree %q level %d", e.Dev, e.Offset, e.Btree, e.Level)
			}
			if !typedError(err) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if n.BtreeID != nb.exp.Btree || n.Level != nb.exp.Level || n.Max != nb.exp.Max || n.Bsets < 1 {
			t.Fatalf("accepted node btree %v level %d max %v with %d bsets", n.BtreeID, n.Level, n.Max, n.Bsets)
		}
		if int(n.SectorsWritten)*btreeio.SectorSize > len(buf) {
			t.Fatalf("%d sectors written in a %d-byte buffer", n.SectorsWritten, len(buf))
		}
		for _, p := range n.Problems {
			e := asError(t, p)
			if e.Dev != dev || e.Offset != off || !typedError(p) {
				t.Fatalf("problem %v", p)
			}
		}
		for i, k := range n.Keys {
			if k.Key.Type == bp.KeyDeleted {
				t.Fatalf("key %d at %v is deleted", i, k.Key.Pos)
			}
			if i > 0 && !n.Keys[i-1].Key.Pos.Less(k.Key.Pos) {
				t.Fatalf("keys %d and %d out of order: %v, %v", i-1, i, n.Keys[i-1].Key.Pos, k.Key.Pos)
			}
			lo := cap(buf) - cap(k.Val)
			if lo < btreeio.NodeHeaderBytes || lo+len(k.Val) > len(buf) || (len(k.Val) > 0 && &k.Val[0] != &buf[lo]) {
				t.Fatalf("key %d: value of %d bytes is not inside the node buffer", i, len(k.Val))
			}
		}
	})
}

// checkLazyParse parses buf as ParseNodePacked does and, after
// DecodeKeys, expects what ParseNode gave (node n or error err): the same
// error, or the same keys, values, problems and header fields.
func checkLazyParse(t *testing.T, nb nodeBuf, buf []byte, n *btreeio.Node, err error) {
	t.Helper()
	const dev, off = "fuzzdev", 1 << 20
	ln, lerr := btreeio.ParseNodePacked(nb.sb, dev, off, buf, nb.exp)
	if (err == nil) != (lerr == nil) || err != nil && err.Error() != lerr.Error() {
		t.Fatalf("lazy parse error %v, eager %v", lerr, err)
	}
	if err != nil {
		return
	}
	_, packed, wasPacked := ln.Packed()
	if wasPacked && (ln.Level != 0 || ln.Bsets != 1 || len(ln.Keys) != 0) {
		t.Fatalf("packed keys (%d bytes) in a level %d node of %d bsets with %d keys", len(packed), ln.Level, ln.Bsets, len(ln.Keys))
	}
	ln.DecodeKeys()
	if _, _, still := ln.Packed(); still {
		t.Fatal("keys still packed after DecodeKeys")
	}
	if ln.Bsets != n.Bsets || ln.SectorsWritten != n.SectorsWritten || ln.Min != n.Min || ln.Max != n.Max || ln.Seq != n.Seq {
		t.Fatalf("lazy header %d bsets %d sectors %v-%v seq %x; eager %d %d %v-%v %x",
			ln.Bsets, ln.SectorsWritten, ln.Min, ln.Max, ln.Seq, n.Bsets, n.SectorsWritten, n.Min, n.Max, n.Seq)
	}
	if len(ln.Keys) != len(n.Keys) {
		t.Fatalf("lazy parse (packed %v) has %d keys, eager %d", wasPacked, len(ln.Keys), len(n.Keys))
	}
	for i := range n.Keys {
		if ln.Keys[i].Key != n.Keys[i].Key || !bytes.Equal(ln.Keys[i].Val, n.Keys[i].Val) {
			t.Fatalf("key %d: lazy %+v, eager %+v", i, ln.Keys[i].Key, n.Keys[i].Key)
		}
	}
	if len(ln.Problems) != len(n.Problems) {
		t.Fatalf("lazy problems %v, eager %v", ln.Problems, n.Problems)
	}
	for i := range n.Problems {
		if ln.Problems[i].Error() != n.Problems[i].Error() {
			t.Fatalf("problem %d: lazy %v, eager %v", i, ln.Problems[i], n.Problems[i])
		}
	}
}

// haveTestdata reports whether the shared test images are present, without
// skipping the caller.
func haveTestdata() bool { return casedata.Dir() != "" }
