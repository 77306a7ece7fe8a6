package bp_test

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
)

// realNode is a btree node of a test image as this package sees it: the
// node's bkey_format in its on-disk layout, the raw bytes of the keys of its
// first bset (each u64s*8 long, packed or unpacked), and the merged keys
// btreeio decoded from the whole node.
type realNode struct {
	btree  bp.BtreeID
	level  uint8
	format []byte
	keys   [][]byte
	merged []btreeio.NodeKey
}

// nodeCollector is a btreeio.Visitor that keeps every node and fails the
// test on nodes that cannot be read.
type nodeCollector struct {
	tb    testing.TB
	nodes []*btreeio.Node
}

// Node keeps a copy of n: walks reuse node memory after the visit.
func (c *nodeCollector) Node(n *btreeio.Node) error {
	cp := &btreeio.Node{Dev: n.Dev, Offset: n.Offset, SectorsWritten: n.SectorsWritten, BtreeID: n.BtreeID, Level: n.Level}
	cp.Keys = make([]btreeio.NodeKey, len(n.Keys))
	for i, k := range n.Keys {
		cp.Keys[i] = btreeio.NodeKey{Key: k.Key, Val: append([]byte(nil), k.Val...)}
	}
	c.nodes = append(c.nodes, cp)
	return nil
}

// NodeError fails the test: the images used here are clean.
func (c *nodeCollector) NodeError(btree bp.BtreeID, level uint8, _ *bp.Key, err error) error {
	c.tb.Errorf("btree %v level %d: %v", btree, level, err)
	return nil
}

// loadRealNodes opens test case name, walks every btree and returns its
// nodes with the raw keys of their first bsets, read again from the device.
func loadRealNodes(tb testing.TB, name string) []realNode {
	tb.Helper()
	fs, err := btreeio.Open(casedata.CaseImages(tb, name))
	if err != nil {
		tb.Fatalf("open %s: %v", name, err)
	}
	defer fs.Close()
	if err := fs.LoadRoots(); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	c := &nodeCollector{tb: tb}
	for _, r := range fs.Roots {
		if err := fs.Walk(r.Btree, 0, c); err != nil {
			tb.Fatalf("%s: walk %v: %v", name, r.Btree, err)
		}
	}
	var out []realNode
	for _, n := range c.nodes {
		var dev *btreeio.Device
		for _, d := range fs.Devices {
			if d != nil && d.Path == n.Dev {
				dev = d
			}
		}
		if dev == nil {
			tb.Fatalf("%s: node at %s:%d: device not found", name, n.Dev, n.Offset)
		}
		buf := make([]byte, int(n.SectorsWritten)*btreeio.SectorSize)
		if _, err := dev.ReadAt(buf, n.Offset); err != nil {
			tb.Fatal(err)
		}
		rn := realNode{btree: n.BtreeID, level: n.Level, format: buf[80:136], merged: n.Keys}
		end := btreeio.NodeHeaderBytes + 8*int(binary.LittleEndian.Uint16(buf[158:]))
		for p := btreeio.NodeHeaderBytes; p < end && buf[p] != 0; p += 8 * int(buf[p]) {
			rn.keys = append(rn.keys, buf[p:p+8*int(buf[p])])
		}
		out = append(out, rn)
	}
	return out
}

// haveTestdata reports whether the shared test images are present, without
// skipping: fuzz targets then just run on their synthetic seeds.
func haveTestdata() bool { return casedata.Dir() != "" }

// checkSubslice fails the test unless inner is exactly outer[lo:hi]: same
// length, same backing array and start.
func checkSubslice(t *testing.T, what string, outer, inner []byte, lo, hi int) {
	t.Helper()
	if lo < 0 || hi < lo || hi > len(outer) {
		t.Fatalf("%s: range [%d:%d] outside the %d input bytes", what, lo, hi, len(outer))
	}
	if len(inner) != hi-lo || cap(inner) != cap(outer)-lo {
		t.Fatalf("%s: len %d cap %d, want outer[%d:%d] (len %d cap %d)", what, len(inner), cap(inner), lo, hi, hi-lo, cap(outer)-lo)
	}
	if len(inner) > 0 && &inner[0] != &outer[lo] {
		t.Fatalf("%s: not a subslice of the input at byte %d", what, lo)
	}
}

// FuzzDecodeKey decodes a random bkey_format and then a key with it. It must
// never panic; a decoded key's value must be the right subslice of the input,
// its header bytes must match, and re-packing it must give back every bit
// the format uses.
func FuzzDecodeKey(f *testing.F) {
	f.Add(formatBytes(&workedFormat), workedKey)
	f.Add(formatBytes(&workedFormat), packKey(&workedFormat, &workedWant, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	unpacked := make([]byte, 48)
	bp.PutUnpacked(unpacked, &bp.Key{U64s: 6, Type: bp.KeyInode, Size: 9, Pos: bp.Pos{Inode: 4096, Offset: 1}})
	f.Add(formatBytes(&bp.CurrentFormat), unpacked)
	if haveTestdata() {
		for _, name := range []string{"tiny", "small"} {
			seen := map[string]int{}
			for _, n := range loadRealNodes(f, name) {
				fk := string(n.format)
				for _, k := range n.keys {
					if seen[fk] >= 3 {
						break
					}
					seen[fk]++
					f.Add(n.format, k)
				}
			}
		}
	}
	f.Add([]byte{1, 6, 64, 8, 0, 0, 0, 0}, []byte{1, 0, 0, 0, 0, 0, 0, 0}) // fields past key_u64s
	f.Fuzz(func(t *testing.T, fb, kb []byte) {
		// Unvalidated formats: neither decoder may panic, and both must
		// agree.
		if len(fb) >= 8 {
			var raw bp.Format
			raw.KeyU64s, raw.NrFields = fb[0], fb[1]
			copy(raw.Bits[:], fb[2:8])
			for i := range raw.Offset {
				if 8+8*i+8 <= len(fb) {
					raw.Offset[i] = binary.LittleEndian.Uint64(fb[8+8*i:])
				}
			}
			var k1, k2 bp.Key
			v1, e1 := raw.DecodeKeyInto(&k1, kb)
			u := raw.Unpacker()
			v2, e2 := u.DecodeKeyInto(&k2, kb)
			if (e1 == nil) != (e2 == nil) || e1 == nil && (k1 != k2 || len(v1) != len(v2)) {
				t.Fatalf("unvalidated format %+v: Unpacker %+v %v, Format %+v %v", raw, k2, e2, k1, e1)
			}
		}
		format, err := bp.DecodeFormat(fb)
		if err != nil {
			if !errors.Is(err, bp.ErrKey) {
				t.Fatalf("DecodeFormat error %v is not ErrKey", err)
			}
			return
		}
		k, val, err := format.DecodeKey(kb)
		// The node path decodes through an Unpacker: it must agree.
		u := format.Unpacker()
		var uk bp.Key
		uval, uerr := u.DecodeKeyInto(&uk, kb)
		if (err == nil) != (uerr == nil) || err == nil && (uk != k || len(uval) != len(val) || len(val) > 0 && &uval[0] != &val[0]) {
			t.Fatalf("Unpacker: %+v, %d value bytes, error %v; Format: %+v, %d value bytes, error %v", uk, len(uval), uerr, k, len(val), err)
		}
		// DecodePos, when it takes the key, gives DecodeKeyInto's type,
		// position and value; it takes every packed key that decodes.
		var pos bp.Pos
		if typ, pval, ok := u.DecodePos(&pos, kb); ok {
			if uerr != nil || typ != uk.Type || pos != uk.Pos || len(pval) != len(uval) || len(pval) > 0 && &pval[0] != &uval[0] {
				t.Fatalf("DecodePos: %s %v, %d value bytes; DecodeKeyInto: %+v, %d value bytes, error %v", typ, pos, len(pval), uk, len(uval), uerr)
			}
		} else if uerr == nil && uk.Format == bp.FormatPacked {
			t.Fatalf("DecodePos refused a packed key that DecodeKeyInto decodes: %+v", uk)
		}
		if err != nil {
			if !errors.Is(err, bp.ErrKey) {
				t.Fatalf("DecodeKey error %v is not ErrKey", err)
			}
			return
		}
		n := 8 * int(kb[0])
		if k.Type != bp.KeyType(kb[2]) || k.Format != kb[1]&0x7f || k.NeedsWhiteout != (kb[1]&0x80 != 0) {
			t.Fatalf("header: got %+v from % x", k, kb[:3])
		}
		switch k.Format {
		case bp.FormatUnpacked:
			checkSubslice(t, "unpacked value", kb, val, bp.KeyBytes, n)
			if int(k.U64s) != int(kb[0]) {
				t.Fatalf("unpacked u64s %d, stored %d", k.U64s, kb[0])
			}
			var re [bp.KeyBytes]byte
			bp.PutUnpacked(re[:], &k)
			orig := [bp.KeyBytes]byte(kb[:bp.KeyBytes])
			orig[3] = 0 // pad
			if re != orig {
				t.Fatalf("unpacked re-encode\n got % x\nwant % x", re, orig)
			}
		case bp.FormatPacked:
			ku := int(format.KeyU64s)
			checkSubslice(t, "packed value", kb, val, 8*ku, n)
			if int(k.U64s) != int(kb[0])-ku+bp.KeyU64s {
				t.Fatalf("packed u64s %d, stored %d, key_u64s %d", k.U64s, kb[0], ku)
			}
			checkRepack(t, &format, &k, kb[:8*ku])
		default:
			t.Fatalf("decoded key has format %d", k.Format)
		}
	})
}

// checkRepack packs k again with f (packKey) and compares with the original
// packed header words orig on every bit the format defines: the type byte,
// the format bits except needs_whiteout, and the field bits. The u64s byte is
// checked by the caller; the padding between the header and the fields is
// undefined and skipped.
func checkRepack(t *testing.T, f *bp.Format, k *bp.Key, orig []byte) {
	t.Helper()
	for i, v := range fieldValues(k) {
		stored := (v - f.Offset[i]) & widthMask(unpackedWidth[i])
		if uint(bits.Len64(stored)) > uint(f.Bits[i]) {
			t.Fatalf("field %d = %#x does not fit its %d bits above offset %#x", i, v, f.Bits[i], f.Offset[i])
		}
	}
	re := packKey(f, k, nil)
	ku := int(f.KeyU64s)
	fieldBits := 0
	for _, b := range f.Bits {
		fieldBits += int(b)
	}
	for w := 0; w < ku; w++ {
		var used uint64
		for bit := 0; bit < 64; bit++ {
			abs := 64*w + bit
			if (abs >= 8 && abs < 24 && abs != 15) || abs >= 64*ku-fieldBits {
				used |= 1 << bit
			}
		}
		a := binary.LittleEndian.Uint64(orig[8*w:])
		b := binary.LittleEndian.Uint64(re[8*w:])
		if a&used != b&used {
			t.Fatalf("word %d: re-packed %#016x, original %#016x (mask %#016x)", w, b, a, used)
		}
	}
}

// extentSeeds returns extent-like values of real keys (extents and btree
// pointers), at most limit of them.
func extentSeeds(nodes []realNode, limit int) [][]byte {
	var out [][]byte
	for _, n := range nodes {
		for _, k := range n.merged {
			if len(out) >= limit {
				return out
			}
			if e, ok, err := bp.ValueEntries(k.Key.Type, k.Val); ok && err == nil && len(e) > 0 {
				out = append(out, e)
			}
		}
	}
	return out
}

// FuzzExtentEntries walks random bytes as extent entries with EntryIter and
// PtrIter. Both must terminate without panicking, agree with each other, and
// return entries that are subslices of the input of the documented sizes.
func FuzzExtentEntries(f *testing.F) {
	c64 := crcFields{compressed: 30, uncompressed: 128, offset: 5, nonce: 9, csumType: 6, compression: 3, csumLo: 42, csumHi: 7}
	f.Add(le64s(cat(crc64Words(c64), []uint64{stripePtrWord(1, 1, 5), ptrWord(256037, 0, 1, false, false)})...), []byte(nil), uint32(100))
	f.Add(le64s(cat(crc32Words(crcFields{compressed: 8, uncompressed: 8, csumType: 5}), crc128Words(crcFields{compressed: 9, uncompressed: 9}),
		[]uint64{ptrWord(1, 1, 1, true, false), 1 << 9})...), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, uint32(8))
	if haveTestdata() {
		for _, e := range extentSeeds(loadRealNodes(f, "tiny"), 24) {
			f.Add(e, []byte(nil), uint32(8))
		}
	}
	sizes := [...]int{1, 1, 2, 3, 1, 1, 1, 1, 1}
	f.Fuzz(func(t *testing.T, b, extra []byte, size uint32) {
		limit := len(b)/8 + 1
		var ptrWords []uint64
		// The reference decoding, from EntryIter: each pointer with the crc
		// and stripe_ptr before it; the first reconcile entry's work id.
		var want []bp.DecodedPtr
		refCRC := bp.CRC{CompressedSize: size, UncompressedSize: size, LiveSize: size}
		var refStripe *bp.StripePtr
		wantReconcile, sawReconcile := uint32(0), false
		it := bp.NewEntryIter(b, extra)
		var entErr error
		for n := 0; ; n++ {
			if n > limit {
				t.Fatalf("EntryIter: more than %d entries in %d bytes", limit, len(b))
			}
			off := it.Offset()
			e, ok, err := it.Next()
			if !ok {
				entErr = err
				break
			}
			if err != nil {
				t.Fatalf("EntryIter: ok with error %v", err)
			}
			checkSubslice(t, "entry", b, e.Words, off, it.Offset())
			w := binary.LittleEndian.Uint64(e.Words)
			if e.Type != bits.TrailingZeros64(w) || len(e.Words) < 8 || len(e.Words)%8 != 0 {
				t.Fatalf("entry type %d, %d bytes, first word %#x", e.Type, len(e.Words), w)
			}
			if e.Type < len(sizes) && len(e.Words) != 8*sizes[e.Type] {
				t.Fatalf("entry type %d is %d bytes, want %d", e.Type, len(e.Words), 8*sizes[e.Type])
			}
			switch e.Type {
			case bp.EntryCRC32, bp.EntryCRC64, bp.EntryCRC128:
				refCRC = bp.DecodeCRC(e, size)
			case bp.EntryStripePtr:
				sp := bp.DecodeStripePtr(e)
				refStripe = &sp
			case bp.EntryPtr:
				d := bp.DecodedPtr{Ptr: bp.DecodePtr(w), CRC: refCRC}
				if refStripe != nil {
					d.HasStripe, d.Stripe = true, *refStripe
				}
				refStripe = nil
				want = append(want, d)
			case bp.EntryReconcile:
				if !sawReconcile {
					sawReconcile = true
					switch needRB := w >> 17 & 0x1f; {
					case needRB == 0, w>>16&1 != 0:
					case w>>15&1 != 0:
						wantReconcile = 1
					default:
						wantReconcile = 2
					}
				}
			}
			switch e.Type {
			case bp.EntryPtr:
				ptrWords = append(ptrWords, w)
				if got := bp.DecodePtr(w).Encode(); got != w&^(1<<2) {
					t.Fatalf("ptr %#x re-encodes as %#x", w, got)
				}
			case bp.EntryCRC32, bp.EntryCRC64, bp.EntryCRC128:
				c := bp.DecodeCRC(e, size)
				maxSize := map[int]uint32{bp.EntryCRC32: 128, bp.EntryCRC64: 512, bp.EntryCRC128: 8192}[e.Type]
				if c.CompressedSize < 1 || c.CompressedSize > maxSize || c.UncompressedSize < 1 || c.UncompressedSize > maxSize ||
					c.Offset >= maxSize || c.CsumType > 15 || c.CompressionType > 15 || c.LiveSize != size {
					t.Fatalf("crc entry %d out of range: %+v", e.Type, c)
				}
			case bp.EntryStripePtr:
				if s := bp.DecodeStripePtr(e); s.Idx != w>>17 || s.Redundancy > 15 {
					t.Fatalf("stripe_ptr %#x: %+v", w, s)
				}
			}
		}
		if entErr != nil && !errors.Is(entErr, bp.ErrKey) {
			t.Fatalf("EntryIter error %v is not ErrKey", entErr)
		}

		pit := bp.NewPtrIter(b, size, extra)
		var got []uint64
		for n := 0; ; n++ {
			if n > limit {
				t.Fatalf("PtrIter: more than %d pointers in %d bytes", limit, len(b))
			}
			d, ok, err := pit.Next()
			if !ok {
				if (err == nil) != (entErr == nil) {
					t.Fatalf("PtrIter ends with %v, EntryIter with %v", err, entErr)
				}
				break
			}
			got = append(got, d.Ptr.Encode())
			if !d.HasStripe {
				d.Stripe = bp.StripePtr{} // meaningless without HasStripe
			}
			if i := len(got) - 1; i < len(want) && d != want[i] {
				t.Fatalf("pointer %d: PtrIter %+v, EntryIter gives %+v", i, d, want[i])
			}
			ds := d.DiskSectors(size)
			if !d.CRC.Compressed() && ds != size {
				t.Fatalf("uncompressed pointer: %d disk sectors for size %d", ds, size)
			}
		}
		if len(got) != len(ptrWords) {
			t.Fatalf("PtrIter yields %d pointers, EntryIter saw %d", len(got), len(ptrWords))
		}
		for i := range got {
			if got[i] != ptrWords[i]&^(1<<2) {
				t.Fatalf("pointer %d: %#x, entry %#x", i, got[i], ptrWords[i])
			}
		}
		if r := bp.ReconcilePhys(b, extra); r != wantReconcile {
			t.Fatalf("ReconcilePhys = %d, EntryIter gives %d", r, wantReconcile)
		}
		for _, kt := range []bp.KeyType{bp.KeyExtent, bp.KeyBtreePtr, bp.KeyBtreePtrV2, bp.KeyReflinkV, bp.KeyInode} {
			e, ok, err := bp.ValueEntries(kt, b)
			if ok && err == nil {
				checkSubslice(t, "entries", b, e, len(b)-len(e), len(b))
			}
		}
	})
}

// allocByte returns byte i of an alloc_v4 value as __bch2_alloc_to_v4 sees
// it: zero past the value and at or beyond BACKPOINTERS_START*8 (48 if 0).
func allocByte(v []byte, i int) byte {
	start := int(binary.LittleEndian.Uint32(v[8:])>>2&0x3f) * 8
	if start == 0 {
		start = 48
	}
	if i >= len(v) || i >= start {
		return 0
	}
	return v[i]
}

// allocUint reads an n-byte little-endian field at byte off with allocByte.
func allocUint(v []byte, off, n int) uint64 {
	var x uint64
	for i := n - 1; i >= 0; i-- {
		x = x<<8 | uint64(allocByte(v, off+i))
	}
	return x
}

// FuzzValues runs the value decoders over random bytes: alloc_v4 (checked
// against allocByte), backpointers in both layouts (which must re-encode to
// the same 32 bytes), btree_ptr_v2 and stripe headers.
func FuzzValues(f *testing.F) {
	f.Add(allocValue(6))
	f.Add(allocValue(8)[:56])
	bpv := make([]byte, bp.BackpointerBytes)
	(&bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataUser, BucketOffset: 37893, BucketLen: 24, Pos: workedWant.Pos}).Encode(bpv, false)
	f.Add(bpv)
	f.Add(append([]byte{0, 1, 2, 3, 1, 12, 5, 0}, le64s(ptrWord(1, 0, 0, false, false), ptrWord(2, 1, 0, false, false))...))
	if haveTestdata() {
		for _, name := range []string{"tiny", "a-tiny"} {
			perType := map[bp.KeyType]int{}
			for _, n := range loadRealNodes(f, name) {
				for _, k := range n.merged {
					switch k.Key.Type {
					case bp.KeyAllocV4, bp.KeyBackpointer, bp.KeyBtreePtrV2:
						if perType[k.Key.Type] < 6 {
							perType[k.Key.Type]++
							f.Add(k.Val)
						}
					}
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		le := binary.LittleEndian
		a, err := bp.DecodeAllocV4(v)
		if len(v) < 16 {
			if !errors.Is(err, bp.ErrKey) {
				t.Fatalf("alloc_v4 of %d bytes: %v", len(v), err)
			}
		} else {
			if err != nil {
				t.Fatalf("alloc_v4 of %d bytes: %v", len(v), err)
			}
			want := bp.AllocV4{
				JournalSeqNonempty: allocUint(v, 0, 8),
				Flags:              le.Uint32(v[8:]),
				Gen:                allocByte(v, 12),
				OldestGen:          allocByte(v, 13),
				DataType:           bp.DataType(allocByte(v, 14)),
				StripeRedundancy:   allocByte(v, 15),
				DirtySectors:       uint32(allocUint(v, 16, 4)),
				CachedSectors:      uint32(allocUint(v, 20, 4)),
				IOTime:             [2]uint64{allocUint(v, 24, 8), allocUint(v, 32, 8)},
				StripeRefcount:     uint32(allocUint(v, 40, 4)),
				NrExternalBPs:      uint32(allocUint(v, 44, 4)),
				JournalSeqEmpty:    allocUint(v, 48, 8),
				StripeSectors:      uint32(allocUint(v, 56, 4)),
			}
			if a != want {
				t.Fatalf("alloc_v4\n got %+v\nwant %+v", a, want)
			}
		}

		for _, formatB := range []bool{false, true} {
			b, err := bp.DecodeBackpointer(v, formatB)
			if len(v) < bp.BackpointerBytes {
				if !errors.Is(err, bp.ErrKey) {
					t.Fatalf("backpointer of %d bytes: %v", len(v), err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			re := make([]byte, bp.BackpointerBytes)
			b.Encode(re, formatB)
			if string(re) != string(v[:bp.BackpointerBytes]) {
				t.Fatalf("backpointer (format B %v) re-encodes\n% x\nfrom\n% x", formatB, re, v[:bp.BackpointerBytes])
			}
			if formatB && b.BucketOffset != 0 || !formatB && (b.BucketGen != 0 || b.Flags != 0 || b.BucketOffset >= 1<<40) {
				t.Fatalf("backpointer (format B %v) mixes layouts: %+v", formatB, b)
			}
		}

		p, err := bp.DecodeBtreePtrV2(v)
		if len(v) < bp.BtreePtrV2Bytes {
			if !errors.Is(err, bp.ErrKey) {
				t.Fatalf("btree_ptr_v2 of %d bytes: %v", len(v), err)
			}
		} else if err != nil || p.Seq != le.Uint64(v[8:]) || p.SectorsWritten != le.Uint16(v[16:]) ||
			p.Flags != le.Uint16(v[18:]) || p.MinKey != bp.DecodePos(v[20:]) || p.MemPtr != le.Uint64(v) {
			t.Fatalf("btree_ptr_v2: %+v, %v", p, err)
		}

		s, ptrs, err := bp.DecodeStripe(v)
		switch {
		case len(v) < bp.StripeHeaderBytes || bp.StripeHeaderBytes+8*int(v[3]) > len(v):
			if !errors.Is(err, bp.ErrKey) {
				t.Fatalf("stripe of %d bytes with %d blocks: %v", len(v), s.NrBlocks, err)
			}
		case err != nil:
			t.Fatalf("stripe: %v", err)
		default:
			checkSubslice(t, "stripe pointers", v, ptrs, bp.StripeHeaderBytes, bp.StripeHeaderBytes+8*int(s.NrBlocks))
			if s.Sectors != le.Uint16(v) || s.NrBlocks != v[3] || s.NrRedundant != v[4] || s.CsumType != v[6] {
				t.Fatalf("stripe header %+v from % x", s, v[:8])
			}
			// Block counts: where they are found, they are the u16 at
			// stripe_blockcount_offset (computed here the long way).
			csumBytes := map[uint8]int{0: 0, 1: 4, 2: 8, 3: 10, 4: 16, 5: 4, 6: 8, 7: 8}
			for i := -1; i <= int(s.NrBlocks); i++ {
				c, ok := s.BlockCount(v, i)
				cb, known := csumBytes[s.CsumType]
				if !known || s.CsumGranBit >= 64 || i < 0 || i >= int(s.NrBlocks) {
					if ok {
						t.Fatalf("block %d of %+v: count %d, want none", i, s, c)
					}
					continue
				}
				perDev := (int(s.Sectors) + (1 << s.CsumGranBit) - 1) >> s.CsumGranBit
				if s.CsumGranBit > 16 {
					perDev = 0
					if s.Sectors > 0 {
						perDev = 1
					}
				}
				off := 8 + 8*int(s.NrBlocks) + int(s.NrBlocks)*perDev*cb + 2*i
				if fits := off+2 <= len(v); ok != fits || ok && c != le.Uint16(v[off:]) {
					t.Fatalf("block %d of %+v (%d bytes): count %d ok %v, want the u16 at %d (fits %v)", i, s, len(v), c, ok, off, fits)
				}
			}
		}
	})
}
