package gen

import (
	"encoding/binary"
	"testing"

	"bpcheck/bp"
)

// TestECStructure reads an erasure-coded image back: stripe keys as
// data/ec/format.h lays them out (block sector counts equal to the
// extents in each block), one block per device with the parity rotating,
// erasure-coded extents of one pointer behind a stripe_ptr, the
// bucket_to_stripe bits and the alloc keys of the stripe buckets.
func TestECStructure(t *testing.T) {
	p := Params{Devices: 4, DeviceSize: 128 << 20, Extents: 500, ECStripes: 7, Seed: 11}.WithDefaults()
	dir := t.TempDir()
	m, err := Generate(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	fs := open(t, dir, m)
	bs := uint64(p.BucketSize / sectorSize)
	nd := p.Devices

	type block struct {
		dev    uint8
		bucket uint64
		count  uint16
	}
	stripes := map[uint64][]block{}
	for _, k := range btreeKeys(t, fs, bp.BtreeStripes) {
		st, ptrs, err := bp.DecodeStripe(k.Val)
		if err != nil {
			t.Fatal(err)
		}
		idx := k.Key.Pos.Offset
		if k.Key.Type != bp.KeyStripe || k.Key.Pos.Inode != 0 || k.Key.Pos.Snapshot != 0 || k.Key.Size != 0 {
			t.Fatalf("stripe key %s type %s size %d", k.Key.Pos, k.Key.Type, k.Key.Size)
		}
		if uint64(st.Sectors) != bs || st.Algorithm != 0 || int(st.NrBlocks) != nd || st.NrRedundant != 1 ||
			st.CsumGranBit != 9 || st.CsumType != 0 {
			t.Fatalf("stripe %d: %+v", idx, st)
		}
		if want := (8 + 10*nd + 7) / 8 * 8; len(k.Val) != want {
			t.Fatalf("stripe %d: value of %d bytes, want %d (stripe_val_u64s)", idx, len(k.Val), want)
		}
		var bl []block
		seen := map[uint8]bool{}
		for b := 0; b < nd; b++ {
			ptr := bp.DecodePtr(binary.LittleEndian.Uint64(ptrs[8*b:]))
			if ptr.Offset%bs != 0 || ptr.Gen != 0 || seen[ptr.Dev] {
				t.Fatalf("stripe %d block %d: %+v", idx, b, ptr)
			}
			seen[ptr.Dev] = true
			bl = append(bl, block{dev: ptr.Dev, bucket: ptr.Offset / bs, count: binary.LittleEndian.Uint16(k.Val[8+8*nd+2*b:])})
		}
		if int(bl[nd-1].dev) != int(idx-1)%nd || bl[nd-1].count != 0 {
			t.Fatalf("stripe %d: parity block %+v, want device %d and count 0", idx, bl[nd-1], int(idx-1)%nd)
		}
		stripes[idx] = bl
	}
	if len(stripes) != p.ECStripes {
		t.Fatalf("%d stripes, want %d", len(stripes), p.ECStripes)
	}

	// Extents: the first p.Extents are plain, the rest erasure coded.
	sums := map[[2]uint64]uint64{}
	var ecExtents int
	for i, k := range btreeKeys(t, fs, bp.BtreeExtents) {
		it := bp.NewPtrIter(k.Val, k.Key.Size, nil)
		var ptrs []bp.DecodedPtr
		for {
			d, ok, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			ptrs = append(ptrs, d)
		}
		if len(ptrs) != 1 {
			t.Fatalf("extent %d: %d pointers", i, len(ptrs))
		}
		d := ptrs[0]
		if int64(i) < p.Extents {
			if d.HasStripe {
				t.Fatalf("extent %d is erasure coded", i)
			}
			continue
		}
		ecExtents++
		bl, ok := stripes[d.Stripe.Idx]
		if !d.HasStripe || !ok || d.Stripe.Redundancy != 1 || int(d.Stripe.Block) >= nd-1 {
			t.Fatalf("extent %d %s: stripe ptr %+v", i, k.Key.Pos, d.Stripe)
		}
		b := bl[d.Stripe.Block]
		if d.Ptr.Dev != b.dev || d.Ptr.Offset/bs != b.bucket || (d.Ptr.Offset+uint64(k.Key.Size)-1)/bs != b.bucket {
			t.Fatalf("extent %d: pointer %+v outside block %+v", i, d.Ptr, b)
		}
		// The stripe_ptr entry comes right before the pointer.
		if w := binary.LittleEndian.Uint64(k.Val[len(k.Val)-16:]); w&0x1f != 1<<bp.EntryStripePtr {
			t.Fatalf("extent %d: entry before the pointer is %#x", i, w)
		}
		sums[[2]uint64{d.Stripe.Idx, uint64(d.Stripe.Block)}] += uint64(k.Key.Size)
	}
	if int64(ecExtents) != m.Extents-p.Extents || ecExtents == 0 {
		t.Fatalf("%d erasure-coded extents, manifest %d in all", ecExtents, m.Extents)
	}
	wantAlloc := map[[2]uint64]bp.AllocV4{}
	var b2s []bp.Pos
	for idx, bl := range stripes {
		for b, blk := range bl {
			if b < nd-1 {
				if got := sums[[2]uint64{idx, uint64(b)}]; got != uint64(blk.count) || got == 0 {
					t.Errorf("stripe %d block %d: count %d, extents hold %d", idx, b, blk.count, got)
				}
				wantAlloc[[2]uint64{uint64(blk.dev), blk.bucket}] = bp.AllocV4{DataType: bp.DataStripe, StripeSectors: uint32(blk.count), StripeRefcount: 1}
			} else {
				wantAlloc[[2]uint64{uint64(blk.dev), blk.bucket}] = bp.AllocV4{DataType: bp.DataParity, DirtySectors: uint32(bs), StripeRefcount: 1}
			}
			b2s = append(b2s, bp.Pos{Inode: uint64(blk.dev)<<48 | blk.bucket, Offset: idx})
		}
	}
	for _, k := range btreeKeys(t, fs, bp.BtreeAlloc) {
		w, ok := wantAlloc[[2]uint64{k.Key.Pos.Inode, k.Key.Pos.Offset}]
		if !ok {
			continue
		}
		a, err := bp.DecodeAllocV4(k.Val)
		if err != nil {
			t.Fatal(err)
		}
		if a.DataType != w.DataType || a.DirtySectors != w.DirtySectors || a.StripeSectors != w.StripeSectors || a.StripeRefcount != 1 {
			t.Errorf("alloc %s: %+v, want %+v", k.Key.Pos, a, w)
		}
		delete(wantAlloc, [2]uint64{k.Key.Pos.Inode, k.Key.Pos.Offset})
	}
	if len(wantAlloc) != 0 {
		t.Errorf("stripe buckets without alloc key: %v", wantAlloc)
	}
	keys := btreeKeys(t, fs, btreeBucketToStripe)
	if len(keys) != len(b2s) {
		t.Fatalf("bucket_to_stripe: %d keys, want %d", len(keys), len(b2s))
	}
	want := map[bp.Pos]bool{}
	for _, p := range b2s {
		want[p] = true
	}
	for _, k := range keys {
		if k.Key.Type != bp.KeySet || !want[k.Key.Pos] {
			t.Errorf("bucket_to_stripe key %s type %s", k.Key.Pos, k.Key.Type)
		}
	}
	if d := m.Devices[0]; d.StripeBuckets+d.ParityBuckets != uint64(p.ECStripes) {
		t.Errorf("device 0: %d stripe and %d parity buckets, want %d in all", d.StripeBuckets, d.ParityBuckets, p.ECStripes)
	}
}

// TestECDeterministic: erasure-coded images are byte-identical for the
// same parameters.
func TestECDeterministic(t *testing.T) {
	p := Params{Devices: 3, DeviceSize: 64 << 20, Extents: 800, ExtentMax: 32, ECStripes: 5, Seed: 9,
		Inject: map[string]int{KindWrongStripeSectors: 1, KindWrongParitySectors: 1, KindMissingStripeBP: 1, KindMissingBP: 1}}
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if _, err := Generate(dir, p); err != nil {
			t.Fatal(err)
		}
	}
	ha, hb := hashDir(t, a), hashDir(t, b)
	if len(ha) != 4 {
		t.Fatalf("files: %v", ha)
	}
	for name, h := range ha {
		if hb[name] != h {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
	}
}
