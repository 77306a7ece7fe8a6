package shard

import (
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"math/rand/v2"
	"testing"

	"bpcheck/bp"
	"bpcheck/report"
)

// FuzzPackBP: a value that packs unpacks to itself, bit for bit, and its
// words never carry the mark of a value kept whole. Two values that pack
// are therefore equal exactly when their words are.
func FuzzPackBP(f *testing.F) {
	var v [bp.BackpointerBytes]byte
	pos := bp.Pos{Inode: 4096, Offset: 128, Snapshot: ^uint32(0)}
	bp.EncodeBackpointerB(v[:], bp.BtreeExtents, 0, bp.DataUser, 3, 1, 8, &pos)
	f.Add(v[:], true, uint64(0))
	bp.EncodeBackpointerA(v[:], bp.BtreeExtents, 0, bp.DataUser, 5<<bp.ShiftA|7, 8, &pos)
	f.Add(v[:], false, uint64(5<<bp.ShiftA|7))
	f.Add(v[:], false, uint64(6<<bp.ShiftA))
	pos = bp.Pos{Inode: 1 << 62, Offset: ^uint64(0), Snapshot: ^uint32(0)}
	bp.EncodeBackpointerB(v[:], bp.BtreeInodes, 1, bp.DataBtree, 0, 0, 512, &pos)
	f.Add(v[:], true, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, formatB bool, inBucket uint64) {
		var v [bp.BackpointerBytes]byte
		copy(v[:], b)
		var w packedBP
		if !packBP(&w, &v, formatB, inBucket) {
			return
		}
		if w[2]&notPacked != 0 {
			t.Fatalf("packed words %x carry the not-packed mark", w)
		}
		if got := unpackBP(&w, formatB, inBucket); got != v {
			t.Fatalf("formatB %v inBucket %d: %x unpacks to %x", formatB, inBucket, v, got)
		}
	})
}

// hexDescribe renders a value whole, so that a finding shows exactly what
// the shard kept.
func hexDescribe(_ bp.Pos, v []byte) string { return hex.EncodeToString(v) }

// TestPackedAndWholeValues: values that pack and values kept whole match
// a pointer that expects exactly them, differ from one that expects a
// value one byte away, and come back whole in the findings; in format A,
// in format B, and in format B upgraded from A (format A's shift, values
// left in format A's layout).
func TestPackedAndWholeValues(t *testing.T) {
	const bucketSize = 128
	layouts := []struct {
		name      string
		formatB   bool
		shift     uint
		valuesInA bool
	}{
		{"format B", true, 0, false},
		{"format A", false, bp.ShiftA, true},
		{"format B upgraded from A", true, bp.ShiftA, true},
	}
	for _, l := range layouts {
		cfg := testConfig(bucketSize)
		cfg.FormatB, cfg.Shift = l.formatB, l.shift
		cfg.Describe = hexDescribe
		mk := func(bucket, sector uint64, mutate func(v *[bp.BackpointerBytes]byte)) Ref {
			r := Ref{Kind: RefPtr, NeedsBP: true, Gen: 1, DataType: bp.DataUser, Sectors: 8,
				Bucket: MakeBucketKey(0, bucket), BPOff: (bucket*bucketSize+sector)<<cfg.Shift + 3}
			pos := bp.Pos{Inode: 4096 + bucket, Offset: 64 + sector, Snapshot: ^uint32(0)}
			if l.valuesInA {
				bp.EncodeBackpointerA(r.BPVal[:], bp.BtreeExtents, 0, bp.DataUser, sector<<bp.ShiftA+3, 8, &pos)
			} else {
				bp.EncodeBackpointerB(r.BPVal[:], bp.BtreeExtents, 0, bp.DataUser, 1, 0, 8, &pos)
			}
			if mutate != nil {
				mutate(&r.BPVal)
			}
			return r
		}
		le := binary.LittleEndian
		cases := []struct {
			name   string
			mutate func(v *[bp.BackpointerBytes]byte)
			packs  bool
		}{
			{"plain", nil, true},
			{"offset 2^40", func(v *[bp.BackpointerBytes]byte) { le.PutUint64(v[16:], 1<<40) }, false},
			{"POS_MAX", func(v *[bp.BackpointerBytes]byte) { le.PutUint64(v[16:], ^uint64(0)) }, false},
			{"level 9", func(v *[bp.BackpointerBytes]byte) { v[1] = 9 }, false},
			{"data type 40", func(v *[bp.BackpointerBytes]byte) { v[2] = 40 }, false},
			{"bucket_len 2^24", func(v *[bp.BackpointerBytes]byte) { le.PutUint32(v[8:], 1<<24) }, false},
			{"high inode", func(v *[bp.BackpointerBytes]byte) { le.PutUint64(v[24:], 1<<63|5) }, true},
			// Format B: flags of 2^31; format A's layout: a bucket_offset
			// the position does not give.
			{"bytes 4-7", func(v *[bp.BackpointerBytes]byte) { v[7] = 0x80 }, false},
		}
		s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
		var same, other []Ref
		for i := range cases {
			s.AddAlloc(MakeBucketKey(0, uint64(i)), bp.AllocV4{Gen: 1, DataType: bp.DataUser, DirtySectors: 16})
		}
		for i, c := range cases {
			// Sector 40: bucket_offset 40<<10+3, read as format B's
			// flags 160 (format A's layout marked in format B).
			r := mk(uint64(i), 40, c.mutate)
			s.AddBP(0, r.BPOff, r.BPVal[:])
			if packed := s.bps[i].w[2]&notPacked == 0; packed != c.packs {
				t.Errorf("%s, %s: packed %v, want %v", l.name, c.name, packed, c.packs)
			}
			if got := s.value(i, 0); got != r.BPVal {
				t.Errorf("%s, %s: kept %x, added %x", l.name, c.name, got, r.BPVal)
			}
			if marked := s.bps[i].w[2]&(notPacked|packALayout) == packALayout; marked != (c.packs && l.formatB && l.valuesInA) {
				t.Errorf("%s, %s: packed in format A's layout %v", l.name, c.name, marked)
			}
			same = append(same, r)
			o := r
			o.BPVal[31] ^= 1 // the inode's top byte
			other = append(other, o)
		}
		s.Apply(same)
		s.Apply(other)
		for i, c := range cases {
			if !s.isMatched(i) {
				t.Errorf("%s, %s: the pointer with the stored value did not match", l.name, c.name)
			}
		}
		var missing int
		for _, f := range s.Finish(nil) {
			if f.Code != report.PtrToMissingBackpointer {
				continue
			}
			missing++
			i := int(f.Bucket)
			if want := hex.EncodeToString(same[i].BPVal[:]); f.Got != want {
				t.Errorf("%s, %s: finding shows the stored value as %s, want %s", l.name, cases[i].name, f.Got, want)
			}
		}
		if missing != len(cases) {
			t.Errorf("%s: %d pointers one byte off found no backpointer, want %d", l.name, missing, len(cases))
		}
	}
}

// TestTruncateDropsWholeValues: a loader that takes back entries takes
// back the values kept whole with them.
func TestTruncateDropsWholeValues(t *testing.T) {
	s := New(testConfig(128), MakeBucketKey(0, 0), MakeBucketKey(1, 0))
	var v [bp.BackpointerBytes]byte
	v[1] = 9 // level 9: kept whole
	s.AddBP(0, 8, v[:])
	s.AddBP(0, 16, v[:])
	s.TruncateBPs(1)
	if len(s.whole) != 1 {
		t.Fatalf("%d values kept whole after truncating to one entry, want 1", len(s.whole))
	}
	v[2] = 1
	s.AddBP(0, 16, v[:])
	if got := s.value(1, 0); got != v {
		t.Fatalf("entry re-added after truncation reads %x, want %x", got, v)
	}
	// A packed entry first among those dropped: the cut is at the first
	// value kept whole after it; the values before stay as they were.
	first := s.value(0, 0)
	var packed [bp.BackpointerBytes]byte
	packed[2] = 1
	s.AddBP(0, 24, packed[:])
	v[2] = 2
	s.AddBP(0, 32, v[:])
	s.TruncateBPs(2)
	if len(s.whole) != 2 || s.value(0, 0) != first || s.value(1, 0)[2] != 1 {
		t.Fatalf("after truncating behind a packed entry: %d values kept whole, entry 0 %x", len(s.whole), s.value(0, 0))
	}
}

// FuzzSameAt: a stored value (packed or kept whole) matches an expected
// value exactly when the two are equal byte for byte, in both layouts.
func FuzzSameAt(f *testing.F) {
	var a [bp.BackpointerBytes]byte
	pos := bp.Pos{Inode: 4096, Offset: 128, Snapshot: ^uint32(0)}
	bp.EncodeBackpointerB(a[:], bp.BtreeExtents, 0, bp.DataUser, 3, 1, 8, &pos)
	f.Add(a[:], a[:], true, uint64(5<<bp.ShiftA|7), uint8(0))
	b := a
	b[7] = 0x80
	f.Add(a[:], b[:], true, uint64(0), uint8(0))
	bp.EncodeBackpointerA(a[:], bp.BtreeExtents, 0, bp.DataUser, 5<<bp.ShiftA|7, 8, &pos)
	f.Add(a[:], a[:], false, uint64(128<<bp.ShiftA|5<<bp.ShiftA|7), uint8(0))
	f.Add(a[:], a[:], false, uint64(128<<bp.ShiftA|6<<bp.ShiftA), uint8(1))
	// Format B upgraded from A, a value left in format A's layout.
	bp.EncodeBackpointerA(a[:], bp.BtreeExtents, 0, bp.DataUser, 40<<bp.ShiftA|7, 8, &pos)
	f.Add(a[:], a[:], true, uint64(128<<bp.ShiftA|40<<bp.ShiftA|7), uint8(2))
	f.Add(a[:], a[:], true, uint64(128<<bp.ShiftA|40<<bp.ShiftA|7), uint8(3))
	f.Add(a[:], a[:], true, uint64(128<<bp.ShiftA|41<<bp.ShiftA|7), uint8(2))
	f.Fuzz(func(t *testing.T, x, y []byte, formatB bool, off uint64, flip uint8) {
		var stored, want [bp.BackpointerBytes]byte
		copy(stored[:], x)
		copy(want[:], y)
		if flip&1 != 0 {
			want = stored
			want[int(flip>>1)%bp.BackpointerBytes] ^= flip | 1
		} else if len(y) == 0 {
			want = stored
		}
		cfg := testConfig(128)
		cfg.FormatB = formatB
		if !formatB || flip&2 != 0 { // format A, or B upgraded from A
			cfg.Shift = bp.ShiftA
		}
		s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
		s.AddBP(0, off, stored[:])
		if got := s.value(0, 0); got != stored {
			t.Fatalf("stored %x reads back as %x", stored, got)
		}
		if got, exp := s.sameAt(0, 0, &want), stored == want; got != exp {
			t.Fatalf("format B %v off %d: sameAt(%x, %x) = %v, want %v", formatB, off, stored, want, got, exp)
		}
	})
}

// TestBucketOffsets checks bucketOffsets against math/big: a bucket's
// offsets, or !ok exactly when its end does not fit 64 bits.
func TestBucketOffsets(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	lim := new(big.Int).Lsh(big.NewInt(1), 64)
	for i := range 200000 {
		b := r.Uint64() >> (16 + r.IntN(48))
		bs := r.Uint64() >> (32 + r.IntN(32))
		shift := uint(r.IntN(66))
		if i%7 == 0 {
			bs = 0
		}
		lo, hi, ok := bucketOffsets(b, bs, shift)
		top := new(big.Int).SetUint64(b + 1)
		top.Mul(top, new(big.Int).SetUint64(bs))
		top.Lsh(top, shift)
		want := bs != 0 && shift < 64 && top.Cmp(lim) < 0
		if ok != want {
			t.Fatalf("bucketOffsets(%d, %d, %d): ok %v, want %v", b, bs, shift, ok, want)
		}
		if ok && (lo != b*bs<<shift || hi != top.Uint64()) {
			t.Fatalf("bucketOffsets(%d, %d, %d) = [%d, %d), want [%d, %d)", b, bs, shift, lo, hi, b*bs<<shift, top.Uint64())
		}
	}
}
