package shard

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"bpcheck/bp"
	"bpcheck/internal/hugemem"
	"bpcheck/report"
)

// TestEntrySizes keeps the planner's per-entry costs true to the structs.
func TestEntrySizes(t *testing.T) {
	if n := unsafe.Sizeof(BPEntry{}); n != BPEntrySize {
		t.Errorf("BPEntry is %d bytes, BPEntrySize says %d", n, BPEntrySize)
	}
	if n := unsafe.Sizeof(bucketState{}); n > AllocEntrySize {
		t.Errorf("bucketState is %d bytes, AllocEntrySize says %d", n, AllocEntrySize)
	}
	if n := unsafe.Sizeof(bucketDigest{}); n != DigestEntrySize {
		t.Errorf("bucketDigest is %d bytes, DigestEntrySize says %d", n, DigestEntrySize)
	}
	if n := unsafe.Sizeof(Ref{}); n != 64 {
		t.Errorf("Ref is %d bytes, want 64: one cache line (records are batched by the thousand)", n)
	}
}

// testConfig is a shard configuration for hand-made records: one format
// B device of the given bucket size, every bucket valid, erasure-coding
// counters compared as from metadata 1.35.
func testConfig(bucketSize uint32) *Config {
	return &Config{
		FormatB:             true,
		BucketSize:          func(uint64) (uint32, bool) { return bucketSize, true },
		ValidBucket:         func(uint64, uint64) bool { return true },
		Describe:            func(bp.Pos, []byte) string { return "" },
		BtreeName:           func(id bp.BtreeID) string { return id.Name(bp.VersionBucketStripeIndex) },
		CheckStripe:         true,
		StripeSectors:       true,
		CheckStripeRefcount: true,
	}
}

// TestApplyAllocs guards the hot path: applying records whose
// backpointers match (the common case) allocates nothing.
func TestApplyAllocs(t *testing.T) {
	cfg := testConfig(128)
	s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
	const buckets, perBucket = 16, 8
	var refs []Ref
	for b := uint64(0); b < buckets; b++ {
		s.AddAlloc(MakeBucketKey(0, b), bp.AllocV4{Gen: 3, DataType: bp.DataUser})
	}
	for b := uint64(0); b < buckets; b++ {
		for k := uint64(0); k < perBucket; k++ {
			r := Ref{Kind: RefPtr, NeedsBP: true, Gen: 3, DataType: bp.DataUser, Sectors: 8,
				Bucket: MakeBucketKey(0, b), BPOff: b*128 + k*8}
			r.BPVal[0] = byte(b)
			r.BPVal[1] = byte(k)
			s.AddBP(0, r.BPOff, r.BPVal[:])
			refs = append(refs, r)
		}
	}
	s.Apply(refs) // first call builds the bucket index
	n := testing.AllocsPerRun(100, func() { s.Apply(refs) })
	if n != 0 {
		t.Errorf("Apply of %d matching records: %.1f allocations per call, want 0", len(refs), n)
	}
	for i := range s.bps {
		if !s.isMatched(i) {
			t.Fatalf("backpointer %d not matched", i)
		}
	}
}

// TestStripeBuckets follows v1.36.1's stripe triggers: a parity block puts
// the stripe's sectors in dirty_sectors and makes the bucket parity; a
// data block makes it stripe, and its erasure-coded extent pointers count
// in stripe_sectors; every block is one stripe_refcount.
func TestStripeBuckets(t *testing.T) {
	cfg := testConfig(512)
	const parity, data = 1, 2
	stripeRef := func(bucket uint64, dt bp.DataType, sectors uint32) Ref {
		return Ref{Kind: RefStripe, DataType: dt, Sectors: sectors, Bucket: MakeBucketKey(0, bucket)}
	}
	ecPtr := Ref{Kind: RefPtr, DataType: bp.DataStripe, Sectors: 100, Bucket: MakeBucketKey(0, data)}

	run := func(parityAlloc, dataAlloc bp.AllocV4, dataCount uint32) []string {
		s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
		s.AddAlloc(MakeBucketKey(0, parity), parityAlloc)
		s.AddAlloc(MakeBucketKey(0, data), dataAlloc)
		pr, dr := stripeRef(parity, bp.DataParity, 256), stripeRef(data, bp.DataUser, 0)
		pr.StripeCount, pr.StripeBlock = 0+1, 1
		dr.StripeCount, dr.StripeBlock = dataCount+1, 0
		s.Apply([]Ref{pr, dr, ecPtr, ecPtr})
		var codes []string
		for _, f := range s.Finish(nil) {
			codes = append(codes, fmt.Sprintf("%s %d %s->%s", f.Code, f.Bucket, f.Got, f.Want))
		}
		return codes
	}
	goodParity := bp.AllocV4{DataType: bp.DataParity, DirtySectors: 256, StripeRefcount: 1}
	goodData := bp.AllocV4{DataType: bp.DataStripe, StripeSectors: 200, StripeRefcount: 1}
	if got := run(goodParity, goodData, 200); len(got) != 0 {
		t.Fatalf("consistent stripe buckets: findings %q", got)
	}
	badParity := goodParity
	badParity.DirtySectors, badParity.StripeRefcount = 0, 0
	badParity.DataType = bp.DataFree
	badData := goodData
	badData.StripeSectors = 8
	badData.DataType = bp.DataUser
	got := run(badParity, badData, 192)
	want := []string{
		"alloc_key_data_type_wrong 1 free->parity",
		"alloc_key_dirty_sectors_wrong 1 0->256",
		"alloc_key_stripe_wrong 1 0->1",
		"alloc_key_data_type_wrong 2 user->stripe",
		"alloc_key_stripe_sectors_wrong 2 8->200",
		"stripe_sector_count_wrong 2 192->200",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("findings\n got %q\nwant %q", got, want)
	}
}

// TestDuplicatePositionOrder: a corrupt btree may hold one backpointer
// position twice; which stored entry a pointer is judged against must
// not depend on the order records arrive in.
func TestDuplicatePositionOrder(t *testing.T) {
	cfg := testConfig(128)
	var a, b [bp.BackpointerBytes]byte
	a[0], b[0] = 1, 2
	ref := func(v [bp.BackpointerBytes]byte) Ref {
		return Ref{Kind: RefPtr, NeedsBP: true, DataType: bp.DataUser, Sectors: 8, Bucket: MakeBucketKey(0, 0),
			BPOff: 8, BPVal: v}
	}
	run := func(refs ...Ref) string {
		s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
		s.AddAlloc(MakeBucketKey(0, 0), bp.AllocV4{DataType: bp.DataUser, DirtySectors: 16})
		s.AddBP(0, 8, a[:])
		s.AddBP(0, 8, b[:])
		s.Apply(refs)
		var out []string
		for _, f := range s.Finish(nil) {
			out = append(out, f.Code)
		}
		return fmt.Sprint(out)
	}
	ab, ba := run(ref(a), ref(b)), run(ref(b), ref(a))
	if ab != ba {
		t.Errorf("findings depend on record order: %s, reversed %s", ab, ba)
	}
}

// TestStripesLost: when a stripes node was unreadable (and, before 1.22,
// no stripe backpointer names the lost keys), buckets whose alloc keys
// speak of stripes are not judged: their stripe references may be in the
// lost node.
func TestStripesLost(t *testing.T) {
	cfg := testConfig(512)
	run := func(lost *Lost) int {
		s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
		s.AddAlloc(MakeBucketKey(0, 1), bp.AllocV4{DataType: bp.DataParity, DirtySectors: 256, StripeRefcount: 1})
		s.AddAlloc(MakeBucketKey(0, 2), bp.AllocV4{DataType: bp.DataUser, DirtySectors: 8})
		s.Apply([]Ref{{Kind: RefPtr, DataType: bp.DataUser, Sectors: 16, Bucket: MakeBucketKey(0, 2)}})
		return len(s.Finish(lost))
	}
	if n := run(nil); n != 4 {
		t.Fatalf("nothing lost: %d findings, want 4 (parity bucket: data type, dirty, refcount; user bucket: dirty)", n)
	}
	lost := &Lost{Owners: []LostRange{{Btree: bp.BtreeStripes, Level: 0, Max: bp.SPosMax}}}
	if n := run(lost); n != 1 {
		t.Errorf("stripes lost: %d findings, want 1 (the user bucket's dirty sectors)", n)
	}
}

// TestMultipleSticky follows v1.38's alloc_data_type: a bucket holding
// btree and user data is "multiple" whatever order its pointers come in,
// and an alloc key that says "multiple" keeps it; before 1.38 "multiple"
// is wrong for a user bucket.
func TestMultipleSticky(t *testing.T) {
	user := Ref{Kind: RefPtr, DataType: bp.DataUser, Sectors: 8, Bucket: MakeBucketKey(0, 1)}
	btree := Ref{Kind: RefPtr, DataType: bp.DataBtree, Sectors: 8, Bucket: MakeBucketKey(0, 1)}
	run := func(sticky bool, stored bp.DataType, refs ...Ref) string {
		cfg := testConfig(128)
		cfg.MultipleSticky = sticky
		s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
		var sectors uint32
		for _, r := range refs {
			sectors += r.Sectors
		}
		s.AddAlloc(MakeBucketKey(0, 1), bp.AllocV4{DataType: stored, DirtySectors: sectors})
		s.Apply(refs)
		var out []string
		for _, f := range s.Finish(nil) {
			out = append(out, f.Code+" "+f.Got+"->"+f.Want)
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct {
		sticky bool
		stored bp.DataType
		refs   []Ref
		want   string
	}{
		{true, bp.DataMultiple, []Ref{user, btree}, "[]"},
		{true, bp.DataMultiple, []Ref{btree, user}, "[]"},
		{true, bp.DataMultiple, []Ref{user}, "[]"},
		{true, bp.DataUser, []Ref{user, btree}, "[alloc_key_data_type_wrong user->multiple]"},
		{true, bp.DataUser, []Ref{btree, user}, "[alloc_key_data_type_wrong user->multiple]"},
		{false, bp.DataMultiple, []Ref{user}, "[alloc_key_data_type_wrong multiple->user]"},
		{false, bp.DataUser, []Ref{user, user}, "[]"},
	} {
		if got := run(tc.sticky, tc.stored, tc.refs...); got != tc.want {
			t.Errorf("sticky %v, stored %s, %d refs: %s, want %s", tc.sticky, tc.stored, len(tc.refs), got, tc.want)
		}
	}
}

// TestOldLayoutBackpointers: on a format B filesystem with shift 10 (one
// upgraded from format A), a stored backpointer whose bytes 3..7 hold the
// format A bucket_offset of its position is still reported both ways, as
// the real fsck reports it, and marked as the old layout; other bad
// values are not marked.
func TestOldLayoutBackpointers(t *testing.T) {
	cfg := testConfig(128)
	cfg.Shift = bp.ShiftA
	const bucket, sector = 3, 40 // the pointer's sector within the bucket
	off := (uint64(bucket)*128 + sector) << bp.ShiftA
	want := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataUser, BucketGen: 0, BucketLen: 8, Pos: bp.Pos{Inode: 4096, Offset: 8, Snapshot: 1}}
	var wantVal, oldVal, badVal [bp.BackpointerBytes]byte
	want.Encode(wantVal[:], true)
	old := want
	old.BucketOffset = sector << bp.ShiftA
	old.Encode(oldVal[:], false) // format A bytes
	badVal = wantVal
	badVal[4] = 0x55
	for _, tc := range []struct {
		name   string
		stored [bp.BackpointerBytes]byte
		marked bool
	}{{"old layout", oldVal, true}, {"other bytes", badVal, false}} {
		s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
		s.AddAlloc(MakeBucketKey(0, bucket), bp.AllocV4{DataType: bp.DataUser, DirtySectors: 8})
		s.AddBP(0, off, tc.stored[:])
		s.Apply([]Ref{{Kind: RefPtr, NeedsBP: true, DataType: bp.DataUser, Sectors: 8, Bucket: MakeBucketKey(0, bucket), BPOff: off, BPVal: wantVal}})
		var got []string
		for _, f := range s.Finish(nil) {
			got = append(got, fmt.Sprintf("%s %v", f.Code, f.Leftover == report.LeftoverLayout114))
		}
		w := fmt.Sprintf("[ptr_to_missing_backpointer %v backpointer_to_missing_ptr %v]", tc.marked, tc.marked)
		if fmt.Sprint(got) != w {
			t.Errorf("%s: findings %v, want %s", tc.name, got, w)
		}
	}
	if bp.OldLayoutB(wantVal[:], 0) || !bp.OldLayoutB(oldVal[:], sector<<bp.ShiftA) || bp.OldLayoutB(oldVal[:], sector<<bp.ShiftA+1) {
		t.Error("OldLayoutB misreads the bytes")
	}
}

// TestECFlagsLeftover: from 1.37 the backpointer of an erasure-coded
// pointer carries ERASURE_CODED; one stored without it (written before
// 1.37, kept by the upgrade) is reported both ways, as the v1.37+ fsck
// reports it, and marked as an upgrade leftover; other bad values are not.
func TestECFlagsLeftover(t *testing.T) {
	cfg := testConfig(128)
	cfg.ECFlags = true
	cfg.Shift = 16
	const bucket = 5
	off := uint64(bucket*128+16) << 16
	want := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataStripe, BucketLen: 8, Flags: bp.BPFlagErasureCoded, Pos: bp.Pos{Inode: 4096, Offset: 8, Snapshot: 1}}
	var wantVal, oldVal, badVal [bp.BackpointerBytes]byte
	want.Encode(wantVal[:], true)
	old := want
	old.Flags = 0
	old.Encode(oldVal[:], true)
	bad := old
	bad.BucketLen = 16
	bad.Encode(badVal[:], true)
	for _, tc := range []struct {
		name   string
		stored [bp.BackpointerBytes]byte
		marked bool
	}{{"flags missing", oldVal, true}, {"flags and length wrong", badVal, false}} {
		s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
		s.AddAlloc(MakeBucketKey(0, bucket), bp.AllocV4{DataType: bp.DataUser, StripeSectors: 8})
		s.AddBP(0, off, tc.stored[:])
		s.Apply([]Ref{{Kind: RefPtr, NeedsBP: true, DataType: bp.DataStripe, Sectors: 8, Bucket: MakeBucketKey(0, bucket), BPOff: off, BPVal: wantVal}})
		var got []string
		for _, f := range s.Finish(nil) {
			got = append(got, fmt.Sprintf("%s %v", f.Code, f.Leftover == report.LeftoverECFlags137))
		}
		w := fmt.Sprintf("[ptr_to_missing_backpointer %v backpointer_to_missing_ptr %v]", tc.marked, tc.marked)
		if fmt.Sprint(got) != w {
			t.Errorf("%s: findings %v, want %s", tc.name, got, w)
		}
	}
}

// TestHugeCap checks the reservation of arrays mapped on huge pages: the
// first n entries lie in whole 2 MiB pages of the range (hugemem advises
// exactly the array), with less than a huge page to spare; small arrays
// are reserved as asked.
func TestHugeCap(t *testing.T) {
	for _, c := range []struct {
		n    int
		size uintptr
	}{
		{0, 48}, {1, 48}, {1000, 48}, {hugemem.MinBytes/48 - 1, 48},
		{hugemem.MinBytes / 48, 48}, {739031, 48}, {745155, 48}, {47639, 120}, {45181, 120},
		{hugePage / 120 * 3, 120}, {hugePage / 48 * 4, 48}, {1 << 22, 120},
	} {
		got := hugeCap(c.n, c.size)
		b := int64(c.n) * int64(c.size)
		if b < hugemem.MinBytes {
			if got != c.n {
				t.Errorf("hugeCap(%d, %d) = %d, want %d (not mapped)", c.n, c.size, got, c.n)
			}
			continue
		}
		whole := (b + hugePage - 1) / hugePage * hugePage
		if got < c.n || int64(got)*int64(c.size) < whole || int64(got)*int64(c.size) >= whole+int64(c.size) {
			t.Errorf("hugeCap(%d, %d) = %d: %d bytes for %d, whole huge pages %d", c.n, c.size, got, int64(got)*int64(c.size), b, whole)
		}
	}
	// The shard reserves with it.
	s := New(&Config{}, 0, 1)
	defer s.Release()
	s.Reserve(hugemem.MinBytes/BPEntrySize+1, 10)
	if c := cap(s.bps); c != hugeCap(hugemem.MinBytes/BPEntrySize+1, BPEntrySize) {
		t.Errorf("Reserve: backpointer capacity %d, want %d", c, hugeCap(hugemem.MinBytes/BPEntrySize+1, BPEntrySize))
	}
}

// TestOrphanNotLeftover: a backpointer no pointer claims (its extent is
// gone) is an orphan, not an upgrade leftover, even when its value lacks
// the 1.37 flags (v139-up-ec-corrupt: a deleted erasure-coded extent).
func TestOrphanNotLeftover(t *testing.T) {
	cfg := testConfig(128)
	cfg.ECFlags = true
	cfg.Shift = 16
	v := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataStripe, BucketLen: 8, Pos: bp.Pos{Inode: 4096, Offset: 8, Snapshot: 1}}
	var val [bp.BackpointerBytes]byte
	v.Encode(val[:], true)
	s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
	s.AddAlloc(MakeBucketKey(0, 5), bp.AllocV4{DataType: bp.DataStripe, StripeSectors: 8})
	s.AddBP(0, uint64(5*128+16)<<16, val[:])
	s.Apply([]Ref{{Kind: RefPtr, DataType: bp.DataStripe, Sectors: 8, Bucket: MakeBucketKey(0, 5)}})
	for _, f := range s.Finish(nil) {
		if f.Code == report.BackpointerToMissingPtr && f.Leftover != "" {
			t.Errorf("orphan marked %q", f.Leftover)
		}
	}
}

// TestDenseIndexLikeSearch checks that the dense bucket index finds the
// entries the binary search over the alloc keys finds: present buckets,
// holes between them (added as extra entries), buckets outside the
// keys' span and on other devices, and that alloc keys out of order or
// spread too thinly keep the search.
func TestDenseIndexLikeSearch(t *testing.T) {
	keys := []uint64{5, 6, 9, 9, 10, 40, 41}
	probe := []BucketKey{MakeBucketKey(0, 4), MakeBucketKey(0, 5), MakeBucketKey(0, 7), MakeBucketKey(0, 9),
		MakeBucketKey(0, 41), MakeBucketKey(0, 42), MakeBucketKey(1, 5), MakeBucketKey(0, 7)}
	build := func(keys []uint64, dense bool) *Shard {
		s := New(testConfig(128), MakeBucketKey(0, 0), MakeBucketKey(2, 0))
		for _, b := range keys {
			s.AddAlloc(MakeBucketKey(0, b), bp.AllocV4{Gen: byte(b)})
		}
		if dense {
			s.makeDense()
		}
		return s
	}
	dense, search := build(keys, true), build(keys, false)
	if dense.dense == nil {
		t.Fatal("no dense index for sorted keys on one device")
	}
	for _, k := range probe {
		if a, b := dense.bucketIndex(k), search.bucketIndex(k); a != b {
			t.Errorf("bucket %d:%d: dense index %d, search %d", k.Dev(), k.Bucket(), a, b)
		}
	}
	if s := build([]uint64{5, 9, 6}, true); s.dense != nil {
		t.Error("dense index made for alloc keys out of order")
	}
	if s := build([]uint64{1, 1 << 20}, true); s.dense != nil {
		t.Error("dense index made for two keys a million buckets apart")
	}
}

// TestDenseIndexDevicesLikeSearch is TestDenseIndexLikeSearch for alloc
// keys on several devices (a dense index per device): every bucket of
// every device's span and around it, and of devices without keys.
func TestDenseIndexDevicesLikeSearch(t *testing.T) {
	keys := []BucketKey{MakeBucketKey(0, 5), MakeBucketKey(0, 9), MakeBucketKey(0, 9), MakeBucketKey(0, 12),
		MakeBucketKey(2, 100), MakeBucketKey(2, 103), MakeBucketKey(3, 0), MakeBucketKey(3, 1), MakeBucketKey(5, 7)}
	build := func(keys []BucketKey, dense bool) *Shard {
		s := New(testConfig(128), MakeBucketKey(0, 0), MakeBucketKey(9, 0))
		for _, k := range keys {
			s.AddAlloc(k, bp.AllocV4{Gen: byte(k)})
		}
		if dense {
			s.makeDense()
		}
		return s
	}
	dense, search := build(keys, true), build(keys, false)
	if dense.denseSegs == nil || dense.dense != nil {
		t.Fatal("no dense index per device for sorted keys on four devices")
	}
	for dev := range uint64(7) {
		for b := range uint64(110) {
			k := MakeBucketKey(dev, b)
			if a, w := dense.bucketIndex(k), search.bucketIndex(k); a != w {
				t.Fatalf("bucket %d:%d: dense index %d, search %d", dev, b, a, w)
			}
		}
	}
	if s := build([]BucketKey{MakeBucketKey(2, 5), MakeBucketKey(0, 9)}, true); s.denseSegs != nil {
		t.Error("dense index made for alloc keys out of order")
	}
	if s := build([]BucketKey{MakeBucketKey(0, 1), MakeBucketKey(1, 1), MakeBucketKey(1, 1<<20)}, true); s.denseSegs != nil {
		t.Error("dense index made for two keys a million buckets apart")
	}
	s := build(keys, true)
	s.dropDense()
	if s.denseSegs != nil || s.denseArr != nil {
		t.Error("dropDense left the per-device index")
	}
}

// TestDenseIndexRandomLikeSearch compares the dense index with the
// search on random alloc keys: up to 70 devices, keys of a few devices
// crowded, equal keys, keys out of order (no index then), probes on
// devices without keys and past the last one, and after dropDense.
func TestDenseIndexRandomLikeSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	made := 0
	for it := range 3000 {
		ndev := 1 + r.IntN(70)
		var keys []BucketKey
		for range 1 + r.IntN(60) {
			d := uint64(r.IntN(ndev))
			if r.IntN(3) == 0 {
				d = uint64(r.IntN(3))
			}
			keys = append(keys, MakeBucketKey(d, uint64(r.IntN(200))))
		}
		if r.IntN(5) == 0 && len(keys) > 1 {
			keys = append(keys, keys[0])
		}
		if r.IntN(10) != 0 {
			slices.Sort(keys)
		}
		build := func(dense bool) *Shard {
			s := New(testConfig(128), MakeBucketKey(0, 0), MakeBucketKey(255, 0))
			for _, k := range keys {
				s.AddAlloc(k, bp.AllocV4{Gen: byte(k)})
			}
			if dense {
				s.makeDense()
			}
			return s
		}
		d, search := build(true), build(false)
		if d.denseSegs != nil || d.dense != nil {
			made++
		}
		probe := func(k BucketKey) {
			if a, w := d.bucketIndex(k), search.bucketIndex(k); a != w {
				t.Fatalf("round %d, keys %v: bucket %d:%d: dense index %d, search %d", it, keys, k.Dev(), k.Bucket(), a, w)
			}
		}
		for range 400 {
			probe(MakeBucketKey(uint64(r.IntN(ndev+3)), uint64(r.IntN(220))))
		}
		for _, k := range keys {
			probe(k)
		}
		probe(MakeBucketKey(255, 1<<48-1))
		if it%3 == 0 {
			d.dropDense()
			search.dropDense()
			for _, k := range keys {
				probe(k)
			}
		}
	}
	if made < 2000 {
		t.Errorf("a dense index in %d of 3000 layouts, want most", made)
	}
}

// TestBPInBucketDevices checks bpInBucket's cache across devices whose
// buckets differ in size: the same bucket number holds different
// offsets on each.
func TestBPInBucketDevices(t *testing.T) {
	cfg := testConfig(0)
	sizes := map[uint64]uint32{0: 128, 1: 1024, 2: 64, 8: 512, 64: 256, 72: 2048}
	cfg.BucketSize = func(dev uint64) (uint32, bool) { sz, ok := sizes[dev]; return sz, ok }
	s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(99, 0))
	r := rand.New(rand.NewPCG(9, 10))
	devs := []uint64{0, 1, 2, 8, 3, 64, 72} // 64 and 72 share slots of the cache with 0 and 8
	for range 100000 {
		dev := devs[r.IntN(len(devs))]
		b := uint64(r.IntN(4))
		off := uint64(r.IntN(5000)) << cfg.Shift
		bs := uint64(sizes[dev])
		want := bs != 0 && off >= b*bs<<cfg.Shift && off < (b+1)*bs<<cfg.Shift
		if got := s.bpInBucket(MakeBucketKey(dev, b), off); got != want {
			t.Fatalf("offset %d in bucket %d of device %d (%d sectors): %v, want %v", off, b, dev, bs, got, want)
		}
	}
}

// TestDeviceRuns checks the devices kept per run of backpointers: lookups
// by device and offset across runs (and a run a corrupt btree adds by
// stepping back to an earlier device), devAt, and TruncateBPs dropping
// the runs of the entries it drops.
func TestDeviceRuns(t *testing.T) {
	s := New(testConfig(128), MakeBucketKey(0, 0), MakeBucketKey(4, 0))
	var v [bp.BackpointerBytes]byte
	add := []struct {
		dev uint32
		off uint64
	}{{0, 8}, {0, 16}, {2, 8}, {2, 24}, {3, 8}, {1, 40}}
	for _, a := range add {
		s.AddBP(a.dev, a.off, v[:])
	}
	if len(s.devRuns) != 4 {
		t.Fatalf("%d runs, want 4: %+v", len(s.devRuns), s.devRuns)
	}
	for i, a := range add {
		if d := s.devAt(i); d != a.dev {
			t.Errorf("devAt(%d) = %d, want %d", i, d, a.dev)
		}
		if j := s.findBP(bp.Pos{Inode: uint64(a.dev), Offset: a.off}); j != i {
			t.Errorf("findBP(%d:%d) = %d, want %d", a.dev, a.off, j, i)
		}
	}
	if j := s.findBP(bp.Pos{Inode: 2, Offset: 16}); j != -1 {
		t.Errorf("findBP(2:16) = %d, want -1", j)
	}
	s.TruncateBPs(3)
	if len(s.devRuns) != 2 || s.devAt(2) != 2 {
		t.Errorf("after TruncateBPs(3): runs %+v", s.devRuns)
	}
	s.TruncateBPs(2)
	if len(s.devRuns) != 1 {
		t.Errorf("after TruncateBPs(2): runs %+v", s.devRuns)
	}
	s.AddBP(1, 8, v[:])
	if s.devAt(2) != 1 || s.findBP(bp.Pos{Inode: 1, Offset: 8}) != 2 {
		t.Errorf("after adding again: runs %+v", s.devRuns)
	}
}

// TestBucketKeySaturates: a bucket number past MaxBucket (a corrupt
// key's: 4 KiB buckets and a position near 2^64) sorts after every
// bucket of its device and before the next device's, instead of
// aliasing a real bucket (the 48 bits were masked: bucket 2^48+300 was
// bucket 300).
func TestBucketKeySaturates(t *testing.T) {
	for _, b := range []uint64{MaxBucket, MaxBucket + 1, 1<<48 + 300, ^uint64(0)} {
		k := MakeBucketKey(3, b)
		if k.Dev() != 3 || k.Bucket() != MaxBucket {
			t.Errorf("bucket %d: key %d:%d, want 3:%d", b, k.Dev(), k.Bucket(), uint64(MaxBucket))
		}
		if k <= MakeBucketKey(3, 300) || k >= MakeBucketKey(4, 0) {
			t.Errorf("bucket %d: key %#x out of order", b, uint64(k))
		}
	}
	if k := MakeBucketKey(3, 300); k.Dev() != 3 || k.Bucket() != 300 {
		t.Errorf("key %d:%d, want 3:300", k.Dev(), k.Bucket())
	}
}

// TestCorrectOneBucketOnce: a bucket whose alloc key was loaded twice
// (overlapping leaves of a corrupt alloc btree) is one corrected bucket,
// the first key (the one the pointers were judged against); it was two,
// and every allocinfo finding of the bucket came twice.
func TestCorrectOneBucketOnce(t *testing.T) {
	s := New(testConfig(128), 0, MakeBucketKey(1, 0))
	defer s.Release()
	a1 := bp.AllocV4{Gen: 1, DataType: bp.DataUser, DirtySectors: 8}
	a2 := bp.AllocV4{Gen: 2, DataType: bp.DataUser, DirtySectors: 16}
	s.AddAlloc(MakeBucketKey(0, 5), a1)
	s.AddAlloc(MakeBucketKey(0, 7), a1)
	s.AddAlloc(MakeBucketKey(0, 7), a2)
	s.AddAlloc(MakeBucketKey(0, 9), a1)
	s.Finish(&Lost{})
	v := s.Correct(&Lost{})
	var keys []uint64
	var gen7 uint8
	for i := range v.Len() {
		c := v.At(i)
		keys = append(keys, c.Key.Bucket())
		if c.Key.Bucket() == 7 {
			gen7 = c.A.Gen
		}
	}
	if fmt.Sprint(keys) != "[5 7 9]" || gen7 != 1 {
		t.Errorf("corrected buckets %v (bucket 7 gen %d), want [5 7 9] with the first key's gen 1", keys, gen7)
	}
}
