package shard

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"bpcheck/bp"
	"bpcheck/report"
)

// scenario is a hand-made (or fuzzed) bucket range: alloc keys, stored
// backpointers in the order a loader adds them, and pointer records.
type scenario struct {
	allocs []BucketKey
	gen    uint8
	bps    []Ref // BPOff and BPVal: a stored backpointer
	refs   []Ref
}

const scBucket = 16 // sectors per bucket of the scenarios

// exact runs the scenario through one Exact shard.
func (sc *scenario) exact(cfg *Config) []string {
	s := New(cfg, 0, MakeBucketKey(1, 0))
	sc.load(s)
	s.Apply(sc.refs)
	return render(s.Finish(nil))
}

func (sc *scenario) load(s *Shard) {
	for _, k := range sc.allocs {
		s.AddAlloc(k, bp.AllocV4{Gen: sc.gen, DataType: bp.DataUser})
	}
	for i := range sc.bps {
		s.AddBP(0, sc.bps[i].BPOff, sc.bps[i].BPVal[:])
	}
}

// digest runs it as the pipeline does: a Digest shard, then a Recheck
// shard over the buckets whose sums disagreed. It returns the findings
// and how many buckets were rechecked.
func (sc *scenario) digest(cfg *Config) ([]string, int) {
	return sc.digestParts(cfg, false)
}

// digestParts is digest with the recheck cut, when parts is set, into a
// part per bucket of the set (as pipeline's recheckParts cuts one too
// large for its memory), except between buckets TiedBuckets ties.
func (sc *scenario) digestParts(cfg *Config, parts bool) ([]string, int) {
	d := NewIn(Digest, cfg, 0, MakeBucketKey(1, 0))
	if d.Mode() != Digest {
		panic("no digest key")
	}
	sc.load(d)
	d.Apply(sc.refs)
	keys, all := d.Mismatches()
	set := &BucketSet{}
	if all {
		set.AddRange(d.Lo, d.Hi)
	}
	set.Add(keys...)
	set.Seal()
	var found []string
	if !set.Empty() {
		cuts := []BucketKey{d.Lo, d.Hi}
		if parts { // a range rechecked whole too: its entries are sorted (sortLoaded)
			for _, l := range d.RecheckLoads(set) {
				tied := false
				for _, t := range d.TiedBuckets() {
					tied = tied || t[0] < l.Key && l.Key <= t[1]
				}
				if !tied && l.Key > d.Lo {
					cuts = append(cuts, l.Key)
				}
			}
			cuts = append(cuts, keys...) // buckets with records only
			slices.Sort(cuts)
			cuts = slices.Compact(cuts)
			cuts = slices.DeleteFunc(cuts, func(k BucketKey) bool {
				for _, t := range d.TiedBuckets() {
					if t[0] < k && k <= t[1] {
						return true
					}
				}
				return false
			})
		}
		var bps, allocs int
		for i := 0; i+1 < len(cuts); i++ {
			part := set.Restrict(cuts[i], cuts[i+1])
			if part.Empty() {
				continue
			}
			r := NewIn(Recheck, cfg, d.Lo, d.Hi)
			r.Only(part)
			b, a := d.RecheckSizes(part)
			bps, allocs = bps+b, allocs+a
			r.Reserve(b, a)
			sc.load(r)
			r.Apply(sc.refs)
			found = append(found, render(r.Finish(nil))...)
			d.MarkIncomplete(r.Incomplete())
		}
		// The parts' loads add up to the whole set's.
		var lb, la int
		for _, l := range d.RecheckLoads(set) {
			lb += l.BPs
			if l.Alloc {
				la++
			}
		}
		if wb, wa := d.RecheckSizes(set); bps != wb || allocs != wa || lb != wb || la != wa {
			panic(fmt.Sprintf("parts hold %d backpointers and %d alloc keys, loads %d and %d, the set %d and %d", bps, allocs, lb, la, wb, wa))
		}
	}
	found = append(found, render(d.Finish(nil))...)
	slices.Sort(found)
	return found, set.Len()
}

func render(fs []report.Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%+v", f))
	}
	slices.Sort(out)
	return out
}

// bpRef returns a record of bucket b whose backpointer sits at sector
// off of the bucket with value byte v.
func bpRef(b, off uint64, v byte) Ref {
	r := Ref{Kind: RefPtr, NeedsBP: true, DataType: bp.DataUser, Sectors: 1, Bucket: MakeBucketKey(0, b), BPOff: b*scBucket + off}
	r.BPVal[0], r.BPVal[1], r.BPVal[2], r.BPVal[8] = byte(bp.BtreeExtents), 0, byte(bp.DataUser), 1
	r.BPVal[16] = v
	return r
}

func digestConfig() *Config {
	cfg := testConfig(scBucket)
	cfg.Digest = NewDigestKey()
	return cfg
}

// TestDigestLikeExact: each kind of disagreement is found by the sums, and
// the recheck reports what an Exact shard does; agreeing buckets are not
// rechecked.
func TestDigestLikeExact(t *testing.T) {
	base := func() *scenario {
		sc := &scenario{gen: 0}
		for b := uint64(0); b < 6; b++ {
			sc.allocs = append(sc.allocs, MakeBucketKey(0, b))
			for off := uint64(0); off < 4; off++ {
				r := bpRef(b, off*2, byte(b*4+off))
				r.Sectors = 2
				sc.bps = append(sc.bps, r)
				sc.refs = append(sc.refs, r)
			}
		}
		return sc
	}
	for _, tc := range []struct {
		name    string
		change  func(sc *scenario)
		buckets int // rechecked
	}{
		{"agree", func(*scenario) {}, 0},
		{"missing backpointer", func(sc *scenario) { sc.bps = slices.Delete(sc.bps, 5, 6) }, 1},
		{"orphan backpointer", func(sc *scenario) { sc.refs = slices.Delete(sc.refs, 9, 10) }, 1},
		{"other value", func(sc *scenario) { sc.bps[13].BPVal[20] ^= 1 }, 1},
		{"two pointers, one backpointer", func(sc *scenario) { sc.refs = append(sc.refs, sc.refs[3]) }, 1},
		{"swapped values", func(sc *scenario) { sc.bps[4].BPVal, sc.bps[8].BPVal = sc.bps[8].BPVal, sc.bps[4].BPVal }, 2},
		{"out of order", func(sc *scenario) { sc.bps[2], sc.bps[20] = sc.bps[20], sc.bps[2] }, 1},
		{"no alloc key", func(sc *scenario) { sc.allocs = slices.Delete(sc.allocs, 2, 3) }, 0},
		{"stale pointer", func(sc *scenario) { sc.refs[7].Gen = 5 }, 0},
		{"stripe block", func(sc *scenario) {
			sc.refs = append(sc.refs, Ref{Kind: RefStripe, NeedsBP: true, DataType: bp.DataParity, Sectors: 2, Bucket: MakeBucketKey(0, 5), BPOff: 5*scBucket + 15})
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := base()
			tc.change(sc)
			cfg := digestConfig()
			want := sc.exact(cfg)
			got, n := sc.digest(cfg)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("digest and recheck:\n%s\nexact:\n%s", got, want)
			}
			if n != tc.buckets {
				t.Errorf("%d buckets rechecked, want %d", n, tc.buckets)
			}
		})
	}
}

// TestDigestUndo: backpointers a loader takes back leave the sums as they
// were.
func TestDigestUndo(t *testing.T) {
	cfg := digestConfig()
	s := NewIn(Digest, cfg, 0, MakeBucketKey(1, 0))
	r := bpRef(1, 3, 7)
	s.AddBP(0, r.BPOff, r.BPVal[:])
	before := slices.Clone(s.bpDig)
	m := s.MarkBPs()
	for _, x := range []Ref{bpRef(1, 5, 1), bpRef(0, 1, 3), bpRef(2, 0, 2)} {
		s.AddBP(0, x.BPOff, x.BPVal[:])
	}
	if !s.digBad {
		t.Fatal("a backpointer out of order did not mark the shard")
	}
	s.UndoBPs(m)
	if !slices.Equal(s.bpDig, before) || s.digBad || s.nBP != 1 {
		t.Errorf("after undo: %+v bad %v n %d, want %+v", s.bpDig, s.digBad, s.nBP, before)
	}
	// The bucket undone is not the last entry's any more.
	x := bpRef(2, 1, 9)
	s.AddBP(0, x.BPOff, x.BPVal[:])
	if len(s.bpDig) != 2 || s.bpDig[1].key != MakeBucketKey(0, 2) || s.bpDig[0] != before[0] {
		t.Errorf("a backpointer of bucket 2 after undo: %+v", s.bpDig)
	}
	s.UndoBPs(m)
	s.UndoBPs(BPMark{})
	if len(s.bpDig) != 0 || s.nBP != 0 {
		t.Errorf("after undo to nothing: %+v n %d", s.bpDig, s.nBP)
	}
}

// TestDigestSumBits: a record's digest changes with every bit of its
// device, position and value.
func TestDigestSumBits(t *testing.T) {
	d := NewDigestKey()
	var v [bp.BackpointerBytes]byte
	h0 := d.Sum(1, 1000, &v)
	for i := 0; i < len(v)*8; i++ {
		w := v
		w[i/8] ^= 1 << (i % 8)
		if d.Sum(1, 1000, &w) == h0 {
			t.Errorf("value bit %d does not change the digest", i)
		}
	}
	for i := 0; i < 64; i++ {
		if d.Sum(1, 1000^1<<i, &v) == h0 {
			t.Errorf("offset bit %d does not change the digest", i)
		}
	}
	for i := 0; i < 32; i++ {
		if d.Sum(1^1<<i, 1000, &v) == h0 {
			t.Errorf("device bit %d does not change the digest", i)
		}
	}
}

// FuzzDigestLikeExact builds a bucket range from the input (alloc keys in
// or out of order, stored backpointers in any order, pointer records with
// any generation, some expecting their backpointer in another bucket) and
// checks that a Digest shard and the recheck of the buckets it lists,
// whole or in parts, report exactly what one Exact shard reports.
func FuzzDigestLikeExact(f *testing.F) {
	f.Add([]byte{0x3f, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x80, 1, 2, 3})
	f.Add([]byte{0xff, 7, 0x12, 0x34, 0x12, 0x34, 0x56, 0x80, 0x12, 0x34, 0x99})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 1 {
			return
		}
		sc := &scenario{gen: 1}
		for b := uint64(0); b < 8; b++ {
			if data[0]>>b&1 != 0 {
				sc.allocs = append(sc.allocs, MakeBucketKey(0, b))
			}
		}
		if len(data)%4 >= 2 {
			// Alloc keys out of order (a corrupt alloc btree).
			slices.Reverse(sc.allocs)
		}
		// Each byte: bucket (3 bits), sector (3 bits), value (2 bits);
		// 0x80 alone switches from stored backpointers to records, whose
		// bytes add a generation (1 bit) and cached flag (1 bit).
		refs := false
		for i := 1; i < len(data); i++ {
			c := data[i]
			if c == 0x80 && !refs {
				refs = true
				continue
			}
			r := bpRef(uint64(c&7), uint64(c>>3&7), c>>6)
			if refs && i+1 < len(data) {
				i++
				r.Gen = data[i] & 1
				r.Cached = data[i]&2 != 0
				r.NeedsBP = data[i]&4 == 0
				if data[i]&0x40 != 0 {
					// A corrupt crc offset: the expected backpointer
					// sits in another bucket (bits 3-5).
					r.BPOff = uint64(data[i]>>3&7)*scBucket + uint64(c>>3&7)
				}
				if r.Cached {
					r.DataType = bp.DataCached
				}
			}
			if refs {
				sc.refs = append(sc.refs, r)
			} else {
				sc.bps = append(sc.bps, r)
			}
		}
		cfg := digestConfig()
		want := sc.exact(cfg)
		parts := len(data)%2 == 1 // the recheck cut into parts
		got, _ := sc.digestParts(cfg, parts)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("digest and recheck:\n%s\nexact:\n%s", got, want)
		}
		// The same keys in key order (equal keys as they came): an Exact
		// shard finds the same whatever the order (sortLoaded).
		inOrder := *sc
		inOrder.allocs = slices.Clone(sc.allocs)
		slices.Sort(inOrder.allocs)
		inOrder.bps = slices.Clone(sc.bps)
		slices.SortStableFunc(inOrder.bps, func(a, b Ref) int { return cmp.Compare(a.BPOff, b.BPOff) })
		if sorted := inOrder.exact(cfg); fmt.Sprint(sorted) != fmt.Sprint(want) {
			t.Errorf("exact, keys in order:\n%s\nexact, keys as they came:\n%s", sorted, want)
		}
	})
}

// BenchmarkDigestSum is the cost of one record's digest.
func BenchmarkDigestSum(b *testing.B) {
	d := NewDigestKey()
	var v [bp.BackpointerBytes]byte
	b.SetBytes(int64(len(v)) + 12)
	var acc uint64
	for i := 0; b.Loop(); i++ {
		acc += d.Sum(uint32(i&1), uint64(i), &v)
	}
	sink = acc
}

var sink uint64

// TestDigestCrossBucket: a pointer into a bucket with no alloc key (not
// indexed: an Exact shard's findBP searches the whole shard) whose
// expected backpointer lies in another bucket, whose stored backpointer
// another pointer matches (so that bucket's sums agree): both buckets
// must be rechecked for the findings to be Exact's. (Found by a review.)
func TestDigestCrossBucket(t *testing.T) {
	sc := &scenario{}
	for b := uint64(1); b < 4; b++ {
		sc.allocs = append(sc.allocs, MakeBucketKey(0, b))
		r := bpRef(b, 2, byte(b))
		sc.bps = append(sc.bps, r)
		sc.refs = append(sc.refs, r)
	}
	// Bucket 0 (no alloc key); its expected backpointer sits where bucket
	// 2's stored one does (a corrupt crc offset), with another value.
	p := bpRef(0, 0, 99)
	p.BPOff = sc.bps[1].BPOff
	sc.refs = append(sc.refs, p)
	cfg := digestConfig()
	want := sc.exact(cfg)
	got, n := sc.digest(cfg)
	if !slices.Equal(got, want) {
		t.Errorf("%d buckets rechecked\nexact:  %q\ndigest: %q", n, want, got)
	}
	// The record ties bucket 0 to bucket 2: a recheck in parts keeps
	// them in one.
	if got, _ := sc.digestParts(cfg, true); !slices.Equal(got, want) {
		t.Errorf("recheck in parts\nexact:  %q\ndigest: %q", want, got)
	}
	d := NewIn(Digest, cfg, 0, MakeBucketKey(1, 0))
	sc.load(d)
	d.Apply(sc.refs)
	d.Mismatches()
	if got, want := d.TiedBuckets(), [][2]BucketKey{{MakeBucketKey(0, 0), MakeBucketKey(0, 2)}}; !slices.Equal(got, want) {
		t.Errorf("tied buckets %v, want %v", got, want)
	}
}

// TestBucketSetRestrict: keys and ranges of a set are clipped to a range.
func TestBucketSetRestrict(t *testing.T) {
	k := func(b uint64) BucketKey { return MakeBucketKey(0, b) }
	set := &BucketSet{}
	set.Add(k(9), k(1), k(5))
	set.AddRange(k(20), k(30))
	set.Seal()
	r := set.Restrict(k(5), k(25))
	for b := uint64(0); b < 40; b++ {
		want := set.Has(k(b)) && b >= 5 && b < 25
		if r.Has(k(b)) != want {
			t.Errorf("bucket %d: in the restricted set %v, want %v", b, r.Has(k(b)), want)
		}
	}
	if !set.Restrict(k(2), k(5)).Empty() {
		t.Error("no bucket of the set in [2, 5), yet the restriction is not empty")
	}
}

// TestDigestAllocOutOfOrder: alloc keys that come out of order (a corrupt
// alloc btree) make an Exact shard's look-ups depend on every key it
// holds; the Digest shard has its whole range rechecked, whole or in
// parts, and reports what the Exact shard does. Found by a review: a
// recheck in parts held a subset of the keys and reported other codes.
func TestDigestAllocOutOfOrder(t *testing.T) {
	sc := &scenario{gen: 0}
	sc.allocs = []BucketKey{MakeBucketKey(0, 5), MakeBucketKey(0, 1)}
	sc.bps = []Ref{bpRef(1, 3, 1), bpRef(5, 3, 1)}
	cfg := digestConfig()
	want := sc.exact(cfg)
	for _, parts := range []bool{false, true} {
		got, n := sc.digestParts(cfg, parts)
		if !slices.Equal(got, want) {
			t.Errorf("parts %v, %d rechecked:\nexact:  %q\ndigest: %q", parts, n, want, got)
		}
	}
}

// TestDigestWholeWithOutside: a Digest shard rechecked whole (backpointers
// out of order) that also holds a backpointer whose bucket lies past its
// range (a backpointer past its device's buckets: the planner clamps its
// bucket, the shard does not). The recheck's set must hold that bucket
// too, or its finding is lost. Found by a review; the recheck (pipeline)
// adds a shard's mismatched keys also when its whole range is rechecked.
func TestDigestWholeWithOutside(t *testing.T) {
	cfg := digestConfig()
	lo, hi := BucketKey(0), MakeBucketKey(0, 4)
	bps := []Ref{bpRef(2, 3, 1), bpRef(1, 3, 1), bpRef(6, 3, 1)}
	load := func(s *Shard) {
		for i := range bps {
			s.AddBP(0, bps[i].BPOff, bps[i].BPVal[:])
		}
	}
	ex := New(cfg, lo, hi)
	load(ex)
	want := render(ex.Finish(nil))
	d := NewIn(Digest, cfg, lo, hi)
	load(d)
	keys, all := d.Mismatches()
	if !all || !slices.Contains(keys, MakeBucketKey(0, 6)) {
		t.Fatalf("mismatches %v, all %v: want the whole range and bucket 6", keys, all)
	}
	set := &BucketSet{}
	set.AddRange(d.Lo, d.Hi)
	set.Add(keys...)
	set.Seal()
	r := NewIn(Recheck, cfg, lo, hi)
	r.Only(set)
	r.Reserve(d.RecheckSizes(set))
	load(r)
	got := append(render(r.Finish(nil)), render(d.Finish(nil))...)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("exact:  %q\ndigest: %q", want, got)
	}
}
