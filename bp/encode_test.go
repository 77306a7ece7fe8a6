package bp

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// The worked example of format.md §4.3, packed instead of unpacked.
func TestPackKeyWorkedExample(t *testing.T) {
	f := Format{KeyU64s: 2, NrFields: 6, Bits: [6]uint8{20, 30, 32, 10, 0, 8}, Offset: [6]uint64{4096, 0, 0xfffffff0, 0, 0, 0}}
	k := Key{Type: KeyExtent, Pos: Pos{Inode: 16441, Offset: 987654321, Snapshot: 0xffffffff}, Size: 1000, Version: Version{Lo: 7}}
	buf := make([]byte, 16)
	n, ok := f.PackKey(buf, &k, 0)
	if !ok || n != 16 {
		t.Fatalf("PackKey: n=%d ok=%v", n, ok)
	}
	want, _ := hex.DecodeString("02000670" + "80fe0300" + "00402c9a" + "b79e0303")
	if !bytes.Equal(buf, want) {
		t.Fatalf("packed %x, want %x", buf, want)
	}
}

// Formats bcachefs computed for real nodes of the small case
// (list/btree_nodes.txt): the extents leaf POS_MIN..2147484629:80:U32_MAX
// holding extents up to 128 sectors, and the backpointers leaf
// POS_MIN..0:5319950336:0.
func TestFormatDoneMatchesRealNodes(t *testing.T) {
	s := NewFormatState()
	s.AddPos(PosMin)
	s.AddPos(Pos{Inode: 2147484629, Offset: 80, Snapshot: 0xffffffff})
	s.AddKey(&Key{Pos: Pos{Inode: 2147483653, Offset: 128, Snapshot: 0xffffffff}, Size: 128})
	f := s.Done()
	if f.KeyU64s != 2 || f.Bits != [6]uint8{32, 8, 32, 16, 0, 0} || f.Offset != [6]uint64{} {
		t.Errorf("extents format %+v", f)
	}
	if s.KeyU64s() != 2 {
		t.Errorf("KeyU64s %d", s.KeyU64s())
	}
	s = NewFormatState()
	s.AddPos(PosMin)
	s.AddPos(Pos{Offset: 5319950336})
	f = s.Done()
	if f.KeyU64s != 1 || f.Bits != [6]uint8{0, 40, 0, 0, 0, 0} || f.Offset != [6]uint64{} {
		t.Errorf("backpointers format %+v", f)
	}
	s = NewFormatState()
	s.AddPos(PosMin)
	s.AddPos(SPosMax)
	f = s.Done()
	if f.KeyU64s != 3 || f.Bits != [6]uint8{64, 64, 32, 0, 0, 0} {
		t.Errorf("root format %+v", f)
	}
	if err := f.Validate(); err != nil {
		t.Error(err)
	}
}

func TestPackKeyRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	val := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	for i := 0; i < 20000; i++ {
		n := 1 + r.IntN(20)
		keys := make([]Key, n)
		s := NewFormatState()
		base := Pos{Inode: r.Uint64() >> r.IntN(64), Offset: r.Uint64() >> r.IntN(64), Snapshot: r.Uint32() >> r.IntN(32)}
		for j := range keys {
			k := &keys[j]
			k.Type = KeyType(r.IntN(40))
			k.Pos = Pos{Inode: base.Inode + uint64(r.IntN(3)), Offset: base.Offset + r.Uint64()>>r.IntN(64), Snapshot: r.Uint32() >> r.IntN(32)}
			k.Size = r.Uint32() >> r.IntN(32)
			if r.IntN(4) == 0 {
				k.Version = Version{Hi: r.Uint32(), Lo: r.Uint64()}
			}
			s.AddKey(k)
		}
		f := s.Done()
		if err := f.Validate(); err != nil {
			t.Fatalf("format %+v: %v", f, err)
		}
		if int(f.KeyU64s) != s.KeyU64s() {
			t.Fatalf("KeyU64s %d, Done %d", s.KeyU64s(), f.KeyU64s)
		}
		for j := range keys {
			k := &keys[j]
			buf := make([]byte, 48)
			m, ok := f.PackKey(buf, k, 1)
			if !ok || !f.Fits(k) {
				t.Fatalf("key %+v does not fit %+v", k, f)
			}
			copy(buf[m:], val)
			got, v, err := f.DecodeKey(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got.Pos != k.Pos || got.Size != k.Size || got.Version != k.Version || got.Type != k.Type || got.Format != FormatPacked {
				t.Fatalf("round trip %+v → %+v (format %+v)", k, got, f)
			}
			if !bytes.Equal(v, val) || got.U64s != KeyU64s+1 {
				t.Fatalf("value %x u64s %d", v, got.U64s)
			}
		}
	}
}

func TestAppendCRCRoundTrip(t *testing.T) {
	cases := []CRC{
		{CsumType: 5, CompressedSize: 128, UncompressedSize: 128, CsumLo: 0x8a14a626},
		{CsumType: 5, CompressedSize: 8, UncompressedSize: 8, Offset: 3, CsumLo: 1},
		{CsumType: 6, CompressedSize: 512, UncompressedSize: 512, Offset: 100, Nonce: 7, CsumLo: 0x0123456789abcdef, CsumHi: 0xbeef},
		{CsumType: 4, CompressionType: 3, CompressedSize: 40, UncompressedSize: 8192, Offset: 8000, Nonce: 99, CsumLo: 1, CsumHi: 2},
	}
	for i, c := range cases {
		b, ok := c.AppendCRC(nil)
		if !ok {
			t.Fatalf("case %d: no entry", i)
		}
		it := NewEntryIter(b, nil)
		e, ok, err := it.Next()
		if !ok || err != nil || len(e.Words) != len(b) {
			t.Fatalf("case %d: entry %v %v", i, ok, err)
		}
		got := DecodeCRC(e, c.UncompressedSize)
		got.Kind, got.LiveSize = 0, 0
		if got != c {
			t.Errorf("case %d: %+v → %+v", i, c, got)
		}
	}
}

func TestAllocV4AndBtreePtrV2RoundTrip(t *testing.T) {
	a := AllocV4{JournalSeqNonempty: 7, Flags: AllocFlags(true, true, 8), Gen: 3, OldestGen: 1, DataType: DataUser,
		DirtySectors: 128, CachedSectors: 8, IOTime: [2]uint64{1, 2984}, StripeRefcount: 0, JournalSeqEmpty: 9, StripeSectors: 4}
	b := make([]byte, AllocV4Bytes)
	a.Put(b)
	got, err := DecodeAllocV4(b)
	if err != nil || got != a {
		t.Fatalf("alloc %+v → %+v (%v)", a, got, err)
	}
	if !got.NeedDiscard() || !got.NeedIncGen() || got.BackpointersStart() != 8 {
		t.Fatalf("flags %x", got.Flags)
	}
	v := BtreePtrV2{Seq: 0xb4497143caf6a9a, SectorsWritten: 16, MinKey: Pos{Inode: 1, Offset: 2, Snapshot: 3}}
	pb := make([]byte, BtreePtrV2Bytes)
	v.Put(pb)
	gv, err := DecodeBtreePtrV2(pb)
	if err != nil || gv != v {
		t.Fatalf("btree_ptr_v2 %+v → %+v", v, gv)
	}
}
