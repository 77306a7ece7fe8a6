package shard

import (
	"fmt"
	"testing"

	"bpcheck/bp"
)

// BenchmarkShard measures a shard's per-backpointer work on one pass of a
// healthy filesystem: the loader's AddBP (packing each value), every
// pointer's record applied and matched, and Finish. The records are those
// of 4 KiB extents, one per 8 sectors, consecutive in 1 024-sector
// buckets, in both backpointer layouts. SetBytes counts the 32-byte
// values, so MB/s is backpointer values checked per second.
func BenchmarkShard(b *testing.B) {
	const buckets, bucketSize, perBucket = 2048, 1024, 128
	for _, formatB := range []bool{true, false} {
		b.Run(fmt.Sprintf("formatB=%v", formatB), func(b *testing.B) {
			cfg := testConfig(bucketSize)
			cfg.FormatB = formatB
			cfg.Shift = bp.ShiftA
			refs := make([]Ref, 0, buckets*perBucket)
			for bk := uint64(0); bk < buckets; bk++ {
				for k := uint64(0); k < perBucket; k++ {
					sector := k * 8
					r := Ref{Kind: RefPtr, KeyType: bp.KeyExtent, NeedsBP: true, Gen: 1, DataType: bp.DataUser, Sectors: 8,
						Bucket: MakeBucketKey(0, bk), BPOff: (bk*bucketSize + sector) << bp.ShiftA}
					pos := bp.Pos{Inode: 4096 + bk, Offset: 8 * (k + 1), Snapshot: ^uint32(0)}
					if formatB {
						bp.EncodeBackpointerB(r.BPVal[:], bp.BtreeExtents, 0, bp.DataUser, 1, 0, 8, &pos)
					} else {
						bp.EncodeBackpointerA(r.BPVal[:], bp.BtreeExtents, 0, bp.DataUser, sector<<bp.ShiftA, 8, &pos)
					}
					refs = append(refs, r)
				}
			}
			b.SetBytes(int64(len(refs)) * bp.BackpointerBytes)
			b.ReportAllocs()
			for b.Loop() {
				s := New(cfg, MakeBucketKey(0, 0), MakeBucketKey(1, 0))
				s.Reserve(len(refs), buckets)
				for bk := uint64(0); bk < buckets; bk++ {
					s.AddAlloc(MakeBucketKey(0, bk), bp.AllocV4{Gen: 1, DataType: bp.DataUser, DirtySectors: perBucket * 8})
				}
				for i := range refs {
					s.AddBP(0, refs[i].BPOff, refs[i].BPVal[:])
				}
				for i := 0; i < len(refs); i += 1024 {
					s.Apply(refs[i:min(i+1024, len(refs))])
				}
				if f := s.Finish(nil); len(f) != 0 {
					b.Fatalf("%d findings on a healthy shard, the first %+v", len(f), f[0])
				}
				s.Release()
			}
		})
	}
}
