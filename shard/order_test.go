package shard

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"bpcheck/bp"
)

// TestExactOrderIndependent: an Exact shard's findings do not depend on
// the order its backpointers and alloc keys came in (a corrupt btree
// whose sibling leaves overlap hands them out of order). Before the
// shard sorted them, a binary search among unsorted entries missed
// backpointers that were there: reversed, this scenario reported every
// pointer's backpointer missing and every backpointer an orphan.
func TestExactOrderIndependent(t *testing.T) {
	cfg := digestConfig()
	sc := &scenario{gen: 0}
	for b := uint64(1); b <= 12; b++ {
		sc.allocs = append(sc.allocs, MakeBucketKey(0, b))
		for off := uint64(0); off < 6; off++ {
			r := bpRef(b, off, byte(off))
			switch {
			case b == 3 && off == 2: // a pointer without its backpointer
				sc.refs = append(sc.refs, r)
			case b == 7 && off == 4: // a backpointer without its pointer
				sc.bps = append(sc.bps, r)
			case b == 9 && off == 1: // a backpointer that differs
				sc.refs = append(sc.refs, r)
				r.BPVal[16]++
				sc.bps = append(sc.bps, r)
			default:
				sc.refs = append(sc.refs, r)
				sc.bps = append(sc.bps, r)
			}
		}
	}
	want := sc.exact(cfg)
	bpFindings := 0
	for _, f := range want {
		if strings.Contains(f, "Code:backpointer_to_missing_ptr") || strings.Contains(f, "Code:ptr_to_missing_backpointer") {
			bpFindings++
		}
	}
	if bpFindings != 4 {
		t.Fatalf("in order: %d backpointer findings, want 4:\n%q", bpFindings, want)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for round := range 20 {
		p := *sc
		p.bps, p.allocs = slices.Clone(sc.bps), slices.Clone(sc.allocs)
		if round == 0 {
			slices.Reverse(p.bps)
			slices.Reverse(p.allocs)
		} else {
			rng.Shuffle(len(p.bps), func(i, j int) { p.bps[i], p.bps[j] = p.bps[j], p.bps[i] })
			rng.Shuffle(len(p.allocs), func(i, j int) { p.allocs[i], p.allocs[j] = p.allocs[j], p.allocs[i] })
		}
		if got := p.exact(cfg); !slices.Equal(got, want) {
			t.Errorf("round %d: findings depend on the order:\n got %q\nwant %q", round, got, want)
		}
		if got, _ := p.digest(cfg); !slices.Equal(got, want) {
			t.Errorf("round %d: the digest check differs:\n got %q\nwant %q", round, got, want)
		}
	}
}

// TestExactOrderIndependentDevices: the same across devices, when a
// corrupt btree steps back from one device's backpointers to another's
// (the runs of devices are then put in order through a permutation).
func TestExactOrderIndependentDevices(t *testing.T) {
	cfg := testConfig(scBucket)
	type bpAt struct {
		dev uint32
		r   Ref
	}
	var bps []bpAt
	var refs []Ref
	for dev := uint64(0); dev < 3; dev++ {
		for b := uint64(1); b <= 6; b++ {
			for off := uint64(0); off < 4; off++ {
				r := bpRef(b, off, byte(off))
				r.Bucket = MakeBucketKey(dev, b)
				if !(dev == 1 && b == 4 && off == 2) { // one missing backpointer
					bps = append(bps, bpAt{uint32(dev), r})
				}
				refs = append(refs, r)
			}
		}
	}
	run := func(bps []bpAt) []string {
		s := New(cfg, 0, MakeBucketKey(3, 0))
		for dev := uint64(0); dev < 3; dev++ {
			for b := uint64(1); b <= 6; b++ {
				s.AddAlloc(MakeBucketKey(dev, b), bp.AllocV4{DataType: bp.DataUser, DirtySectors: 4})
			}
		}
		for _, x := range bps {
			s.AddBP(x.dev, x.r.BPOff, x.r.BPVal[:])
		}
		s.Apply(refs)
		return render(s.Finish(nil))
	}
	want := run(bps)
	if len(want) != 1 || !strings.Contains(want[0], "Code:ptr_to_missing_backpointer Dev:1 Bucket:4") {
		t.Fatalf("in order: %q, want the one missing backpointer", want)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for round := range 30 {
		p := slices.Clone(bps)
		switch round {
		case 0:
			slices.Reverse(p) // every device steps back
		case 1:
			// The devices' runs in the order 2, 0, 1, each in order.
			p = append(append(slices.Clone(bps[2*len(bps)/3:]), bps[:len(bps)/3]...), bps[len(bps)/3:2*len(bps)/3]...)
		default:
			rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		}
		if got := run(p); !slices.Equal(got, want) {
			t.Errorf("round %d: findings depend on the order:\n got %q\nwant %q", round, got, want)
		}
	}
}
