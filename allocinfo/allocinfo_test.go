package allocinfo

import (
	"encoding/binary"
	"strings"
	"testing"

	"bpcheck/bp"
	"bpcheck/report"
	"bpcheck/shard"
)

func rules(perDev bool) *Rules {
	return &Rules{
		Member: func(dev uint64) (Member, bool) {
			if dev > 1 {
				return Member{}, false
			}
			return Member{BucketSize: 256, FirstBucket: 1, NBuckets: 1024, WalkEnd: 1024, FreespaceInitialized: true}, true
		},
		PerDevFragLRU: perDev,
		BtreeName:     func(id bp.BtreeID) string { return id.String() },
	}
}

// The fragmentation index of the real corrupt-mixed case: 232 of 256
// sectors live is time 1946157056 (fsck's "fragmentation" and LRU pos).
func TestFragmentationIndex(t *testing.T) {
	a := bp.AllocV4{DataType: bp.DataUser, DirtySectors: 232}
	if got := FragmentationIndex(&a, 256); got != 1946157056 {
		t.Errorf("%d", got)
	}
	a.DirtySectors = 256
	if got := FragmentationIndex(&a, 256); got != 0 {
		t.Errorf("full bucket: %d", got)
	}
	a.DirtySectors, a.DataType = 100, bp.DataCached
	if got := FragmentationIndex(&a, 256); got != 0 {
		t.Errorf("cached bucket: %d", got)
	}
}

func set(p bp.Pos, size uint32) *bp.Key { return &bp.Key{Type: bp.KeySet, Pos: p, Size: size} }

func codes(fs []report.Finding) string {
	var b []string
	for _, f := range fs {
		b = append(b, f.Code+" "+f.Detail)
	}
	return strings.Join(b, "\n")
}

// A hole of the alloc btree that no freespace key covers is reported per
// run, cut at the end of an alloc leaf, as the fsck walks it: once from
// v1.25 (it repairs the run at once), and for v1.9.4 again at every 256th
// bucket up to the run's end; a covered hole and a bucket with the right
// keys are quiet.
func TestHolesAndKeys(t *testing.T) {
	for _, noAutofix := range []bool{false, true} {
		lo, hi := shard.MakeBucketKey(0, 0), shard.MakeBucketKey(1, 0)
		k := NewKeys(lo, hi, false)
		// Buckets 1..9 and 300..1023 free and covered; 10 holds data;
		// 11..299 a hole without freespace keys, an alloc leaf ending at 199.
		k.Add(bp.BtreeFreespace, set(bp.Pos{Offset: 10}, 9), nil)
		k.Add(bp.BtreeFreespace, set(bp.Pos{Offset: 1024}, 724), nil)
		k.AddAllocLeaf(bp.Pos{Offset: 199})
		gens := make([]byte, 256)
		gens[10] = 3
		k.Add(bp.BtreeBucketGens, &bp.Key{Type: bp.KeyBucketGens, Pos: bp.Pos{}}, gens)
		k.Seal()
		cs := []shard.Corrected{{Key: shard.MakeBucketKey(0, 10), A: bp.AllocV4{DataType: bp.DataUser, DirtySectors: 256, Gen: 3}, Stored: true}}
		r := rules(false)
		r.NoAutofix = noAutofix
		got := codes(Judge(r, k, lo, hi, shard.CorrectedSlice(cs)))
		runs := []string{"11-200", "200-300"}
		if noAutofix {
			runs = []string{"11-200", "200-300", "256-300"}
		}
		var want []string
		for _, r := range runs {
			want = append(want, "freespace_hole_missing hole in alloc btree missing in freespace btree: device 0 buckets "+r)
		}
		if got != strings.Join(want, "\n") {
			t.Errorf("no autofix %v: got\n%s\nwant\n%s", noAutofix, got, strings.Join(want, "\n"))
		}
	}
}

// MergeHoles joins the runs a shard boundary cut, not those an alloc
// leaf's end cut.
func TestMergeHoles(t *testing.T) {
	f := func(x, y uint64) report.Finding {
		return report.Finding{Code: report.FreespaceHoleMissing, Bucket: x, Detail: holeDetail(0, x, y)}
	}
	leafEnds := map[shard.BucketKey]bool{shard.MakeBucketKey(0, 700): true}
	for _, c := range []struct {
		noAutofix bool
		want      []string
	}{
		{false, []string{"0 buckets 100-700", "0 buckets 700-800"}},
		{true, []string{"0 buckets 100-700", "0 buckets 256-700", "0 buckets 512-700", "0 buckets 700-800"}},
	} {
		in := []report.Finding{f(100, 512), f(512, 700), f(700, 800)}
		if c.noAutofix {
			in = []report.Finding{f(100, 512), f(256, 512), f(512, 700), f(700, 800)}
		}
		out := MergeHoles(in, leafEnds, c.noAutofix)
		var got []string
		for _, o := range out {
			got = append(got, strings.TrimPrefix(o.Detail, "hole in alloc btree missing in freespace btree: device "))
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("no autofix %v: %v, want %v", c.noAutofix, got, c.want)
		}
	}
}

// LRU entries: a missing fragmentation entry, a stale one, and the
// per-device ids of 1.39.
func TestLRUs(t *testing.T) {
	for _, perDev := range []bool{false, true} {
		r := rules(perDev)
		lo, hi := shard.MakeBucketKey(0, 0), ^shard.BucketKey(0)
		k := NewKeys(lo, hi, false)
		b1, b2 := shard.MakeBucketKey(1, 5), shard.MakeBucketKey(1, 6)
		id := uint64(r.fragID(1))
		// b1 has its right entry; b2's entry is stale (its bucket is full).
		k.Add(BtreeLRU, set(bp.Pos{Inode: id<<48 | 1946157056, Offset: uint64(b1)}, 0), nil)
		k.Add(BtreeLRU, set(bp.Pos{Inode: id<<48 | 1000, Offset: uint64(b2)}, 0), nil)
		k.Seal()
		cs := []shard.Corrected{
			{Key: b1, A: bp.AllocV4{DataType: bp.DataUser, DirtySectors: 232}, Stored: true},
			{Key: b2, A: bp.AllocV4{DataType: bp.DataUser, DirtySectors: 256}, Stored: true},
			{Key: shard.MakeBucketKey(1, 7), A: bp.AllocV4{DataType: bp.DataBtree, DirtySectors: 128}, Stored: true},
		}
		var got []string
		for _, f := range Judge(r, k, lo, hi, shard.CorrectedSlice(cs)) {
			if f.Code == report.LRUEntryBad || f.Code == report.AllocKeyToMissingLRUEntry {
				got = append(got, f.Code+" "+f.Pos.String())
			}
		}
		want := []string{
			report.LRUEntryBad + " " + bp.Pos{Inode: id<<48 | 1000, Offset: uint64(b2)}.String(),
			report.AllocKeyToMissingLRUEntry + " " + bp.Pos{Inode: id<<48 | 1<<30, Offset: uint64(shard.MakeBucketKey(1, 7))}.String(),
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("per device %v: got %v, want %v", perDev, got, want)
		}
	}
}

// FuzzJudge: any keys of the derived btrees against any corrected buckets
// are judged without a panic.
func FuzzJudge(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{4, 1, 200})
	f.Fuzz(func(t *testing.T, keys, buckets []byte) {
		for _, perDev := range []bool{false, true} {
			r := rules(perDev)
			r.FragLRUField = !perDev
			r.LRUEntryChecksA = !perDev
			lo, hi := shard.MakeBucketKey(0, 0), ^shard.BucketKey(0)
			k := NewKeys(lo, hi, perDev)
			for rest := keys; len(rest) >= 26; rest = rest[26:] {
				btree := []bp.BtreeID{BtreeLRU, bp.BtreeFreespace, BtreeNeedDiscard, bp.BtreeBucketGens}[rest[0]%4]
				key := &bp.Key{Type: bp.KeyType(rest[1] % 40), Size: uint32(binary.LittleEndian.Uint16(rest[2:])),
					Pos: bp.Pos{Inode: binary.LittleEndian.Uint64(rest[4:]), Offset: binary.LittleEndian.Uint64(rest[12:]), Snapshot: binary.LittleEndian.Uint32(rest[20:])}}
				if rest[1]&1 == 0 {
					key.Type = bp.KeySet
				}
				k.Add(btree, key, rest[24:])
				if rest[0]&8 != 0 {
					k.AddAllocLeaf(key.Pos)
				}
			}
			k.Seal()
			var cs []shard.Corrected
			for rest := buckets; len(rest) >= 3; rest = rest[3:] {
				key := shard.MakeBucketKey(uint64(rest[0]&1), uint64(rest[1])*4)
				if len(cs) > 0 && cs[len(cs)-1].Key >= key {
					continue
				}
				cs = append(cs, shard.Corrected{Key: key, Stored: true,
					A: bp.AllocV4{DataType: bp.DataType(rest[2] % 12), DirtySectors: uint32(rest[2]), Gen: rest[2] >> 3}})
			}
			_ = Judge(r, k, lo, hi, shard.CorrectedSlice(cs))
		}
	})
}

// The stripe LRU: a stripe with one of its two data blocks empty sits at
// LRU_TIME_MAX - 1; all empty, at 1; none, nowhere. A missing entry, a
// stale one, and a stripe whose counts fsck corrects (not judged).
func TestStripeLRU(t *testing.T) {
	// A stripe value: header, 3 block pointers, no checksums, 3 counts.
	mk := func(counts ...uint16) (bp.Stripe, []byte) {
		st := bp.Stripe{Sectors: 64, NrBlocks: 3, NrRedundant: 1}
		val := make([]byte, bp.StripeHeaderBytes+8*3+2*3)
		for i, c := range counts {
			binary.LittleEndian.PutUint16(val[bp.StripeHeaderBytes+8*3+2*i:], c)
		}
		return st, val
	}
	for _, c := range []struct {
		counts []uint16
		want   uint64
	}{{[]uint16{64, 64, 64}, 0}, {[]uint16{64, 0, 64}, lruTimeMax - 1}, {[]uint16{0, 0, 64}, 1}} {
		st, val := mk(c.counts...)
		if got, ok := StripeLRUPos(&st, val); !ok || got != c.want {
			t.Errorf("%v: %d %v, want %d", c.counts, got, ok, c.want)
		}
	}
	k := NewKeys(0, ^shard.BucketKey(0), false)
	stale := bp.Pos{Inode: uint64(lruStripeID)<<48 | 1, Offset: 7}
	k.Add(BtreeLRU, set(stale, 0), nil)                                                 // stripe 7 is full: stale
	k.Add(BtreeLRU, set(bp.Pos{Inode: uint64(lruStripeID)<<48 | 1, Offset: 9}, 0), nil) // stripe 9 corrected: not judged
	k.Seal()
	stripes := map[uint64]uint64{7: 0, 8: lruTimeMax - 1, 9: 0}
	fs := JudgeStripeLRU(k, stripes, map[uint64]bool{9: true}, func(id bp.BtreeID) string { return id.String() })
	var got []string
	for _, f := range fs {
		got = append(got, f.Code+" "+f.Pos.String())
	}
	want := []string{
		report.LRUEntryBad + " " + stale.String(),
		report.AllocKeyToMissingLRUEntry + " " + bp.Pos{Inode: uint64(lruStripeID)<<48 | (lruTimeMax - 1), Offset: 8}.String(),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %v, want %v", got, want)
	}
}

// BenchmarkJudge judges a shard of 64 Ki buckets, a quarter with alloc
// keys (every tenth partly filled, with its LRU entry), the rest holes
// that one freespace key covers; bytes are the corrected keys' (the unit
// of the shard's alloc array).
func BenchmarkJudge(b *testing.B) {
	const n = 1 << 16
	lo, hi := shard.MakeBucketKey(0, 0), shard.MakeBucketKey(1, 0)
	r := rules(false)
	r.Member = func(dev uint64) (Member, bool) {
		return Member{BucketSize: 256, FirstBucket: 1, NBuckets: n, WalkEnd: n, FreespaceInitialized: true}, dev == 0
	}
	k := NewKeys(lo, hi, false)
	var cs []shard.Corrected
	for bkt := uint64(1); bkt < n; bkt++ {
		if bkt%4 != 0 {
			continue
		}
		a := bp.AllocV4{DataType: bp.DataUser, DirtySectors: 256}
		if bkt%40 == 0 {
			a.DirtySectors = 128
			k.Add(BtreeLRU, set(bp.Pos{Inode: uint64(lruFragFSWide)<<48 | FragmentationIndex(&a, 256), Offset: bkt}, 0), nil)
		}
		cs = append(cs, shard.Corrected{Key: shard.MakeBucketKey(0, bkt), A: a, Stored: true})
	}
	for bkt := uint64(1); bkt < n; bkt++ { // every hole bucket its own freespace key
		if bkt%4 != 0 {
			k.Add(bp.BtreeFreespace, set(bp.Pos{Offset: bkt + 1}, 1), nil)
		}
	}
	k.Seal()
	list := shard.CorrectedSlice(cs)
	b.SetBytes(int64(len(cs)) * shard.AllocEntrySize)
	b.ReportAllocs()
	for b.Loop() {
		if fs := Judge(r, k, lo, hi, list); len(fs) != 0 {
			b.Fatalf("%d findings on a consistent shard: %s", len(fs), codes(fs[:1]))
		}
	}
}
