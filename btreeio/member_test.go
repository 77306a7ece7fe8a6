package btreeio

import "testing"

// TestMemberBucketOf: the shift for power-of-two bucket sizes and the
// division otherwise give the same bucket; a zero bucket size gives 0.
func TestMemberBucketOf(t *testing.T) {
	for _, bs := range []uint16{1, 8, 128, 1024, 4096, 32768, 3, 24, 1000, 65535} {
		m := Member{BucketSize: bs}
		for _, s := range []uint64{0, 1, uint64(bs) - 1, uint64(bs), uint64(bs)*7 + 5, 1<<44 - 1} {
			if got, want := m.BucketOf(s), s/uint64(bs); got != want {
				t.Fatalf("bucket size %d, sector %d: bucket %d, want %d", bs, s, got, want)
			}
		}
	}
	if got := (&Member{}).BucketOf(12345); got != 0 {
		t.Fatalf("bucket size 0: bucket %d, want 0", got)
	}
}
