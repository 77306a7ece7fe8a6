package pipeline

import (
	"math/rand/v2"
	"testing"

	"bpcheck/accounting"
	"bpcheck/bp"
)

// TestAcctKeyReplicas feeds acctSums.key extents whose replicas entries
// change from key to key (1 to 6 devices out of 40, so entries collide in
// its cache and some are too wide for it) and checks every entry's
// sectors against sums kept by accounting.Replicas alone.
func TestAcctKeyReplicas(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s acctSums
	want := map[accounting.Pos]int64{}
	k := bp.Key{Type: bp.KeyExtent}
	for range 200000 {
		n := 1 + r.IntN(6)
		if r.IntN(4) != 0 {
			n = 1 + r.IntN(2)
		}
		devs := make([]uint8, 0, n)
		for len(devs) < n {
			d := uint8(r.IntN(40))
			dup := false
			for _, x := range devs {
				dup = dup || x == d
			}
			if !dup {
				devs = append(devs, d)
			}
		}
		nr := uint8(1)
		if r.IntN(10) == 0 {
			nr = 0
		}
		sectors := int64(1 + r.IntN(128))
		want[accounting.Replicas(bp.DataUser, nr, devs)] += sectors
		s.key(0, &k, devs, sectors, nr)
	}
	if len(s.t) != len(want) {
		t.Fatalf("%d replicas entries, want %d", len(s.t), len(want))
	}
	for pos, v := range want {
		if c := s.t[pos]; c == nil || c.V[0] != v {
			t.Fatalf("entry %x: %v, want %d sectors", pos, c, v)
		}
	}
}
