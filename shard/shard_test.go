package shard

import (
	"testing"
	"unsafe"

	"bpcheck/bp"
)

// TestEntrySizes keeps the planner's per-entry costs true to the structs.
func TestEntrySizes(t *testing.T) {
	if n := unsafe.Sizeof(BPEntry{}); n != BPEntrySize {
		t.Errorf("BPEntry is %d bytes, BPEntrySize says %d", n, BPEntrySize)
	}
	if n := unsafe.Sizeof(bucketState{}); n > AllocEntrySize {
		t.Errorf("bucketState is %d bytes, AllocEntrySize says %d", n, AllocEntrySize)
	}
	if n := unsafe.Sizeof(Ref{}); n > 96 {
		t.Errorf("Ref grew to %d bytes", n)
	}
}

// TestApplyAllocs guards the hot path: applying records whose
// backpointers match (the common case) allocates nothing.
func TestApplyAllocs(t *testing.T) {
	cfg := &Config{
		FormatB:     true,
		Shift:       0,
		BucketSize:  func(uint64) (uint32, bool) { return 128, true },
		ValidBucket: func(uint64, uint64) bool { return true },
	}
	s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
	const buckets, perBucket = 16, 8
	var refs []Ref
	for b := uint64(0); b < buckets; b++ {
		s.AddAlloc(MakeBucketKey(0, b), bp.AllocV4{Gen: 3, DataType: bp.DataUser})
	}
	for b := uint64(0); b < buckets; b++ {
		for k := uint64(0); k < perBucket; k++ {
			r := Ref{Kind: RefPtr, NeedsBP: true, Gen: 3, DataType: bp.DataUser, Sectors: 8,
				Bucket: MakeBucketKey(0, b), BPPos: bp.Pos{Inode: 0, Offset: b*128 + k*8}}
			r.BPVal[0] = byte(b)
			r.BPVal[1] = byte(k)
			s.AddBP(0, r.BPPos.Offset, r.BPVal[:])
			refs = append(refs, r)
		}
	}
	s.Apply(refs) // first call builds the bucket index
	n := testing.AllocsPerRun(100, func() { s.Apply(refs) })
	if n != 0 {
		t.Errorf("Apply of %d matching records: %.1f allocations per call, want 0", len(refs), n)
	}
	for i := range s.bps {
		if !s.bps[i].Matched {
			t.Fatalf("backpointer %d not matched", i)
		}
	}
}
