package pipeline

import (
	"fmt"
	"path/filepath"
	"testing"

	"bpcheck/btreeio"
	"bpcheck/gen"
	"bpcheck/shard"
)

// TestLeafRangeMayHold checks the recheck's choice of leaves: by the
// range in (device, bucket) order, and, for a data leaf, by its devices
// and the range of its bucket numbers on any of them; and that merging
// two logs of one node keeps every bucket either held.
func TestLeafRangeMayHold(t *testing.T) {
	set := &shard.BucketSet{}
	set.Add(shard.MakeBucketKey(2, 500))
	set.Seal()
	k := shard.MakeBucketKey
	for _, c := range []struct {
		name string
		r    leafRange
		want bool
	}{
		{"empty", leafRange{lo: 1, hi: 0}, false},
		{"range without devices, around the bucket", leafRange{lo: k(0, 0), hi: k(3, 9)}, true},
		{"range without devices, past it", leafRange{lo: k(2, 501), hi: k(3, 9)}, false},
		{"four devices, bucket numbers below", leafRange{lo: k(0, 100), hi: k(3, 200), devs: 0b1111, blo: 100, bhi: 200}, false},
		{"four devices, bucket numbers around", leafRange{lo: k(0, 450), hi: k(3, 600), devs: 0b1111, blo: 450, bhi: 600}, true},
		{"around, but not on its device", leafRange{lo: k(0, 450), hi: k(3, 600), devs: 0b1011, blo: 450, bhi: 600}, false},
		{"devices from 63: not told apart", leafRange{lo: k(0, 1), hi: k(70, 2), devs: 1<<63 | 1, blo: 1, bhi: 2}, true},
	} {
		if got := c.r.mayHold(set); got != c.want {
			t.Errorf("%s: mayHold %v, want %v", c.name, got, c.want)
		}
	}
	// Two logs of one node: the producers' (per device) and one without
	// devices (a loader's) merge to one without devices; an empty log
	// leaves the other's devices.
	a := leafRange{id: 7, lo: k(0, 100), hi: k(3, 200), devs: 0b1001, blo: 100, bhi: 200}
	b := leafRange{id: 7, lo: k(2, 400), hi: k(2, 600)}
	m := sealLeafRanges([]leafRange{a, b})
	if len(m) != 1 || m[0].devs != 0 || !m[0].mayHold(set) {
		t.Errorf("merged %+v: want one range without devices, holding (2, 500)", m)
	}
	e := leafRange{id: 7, lo: 1, hi: 0}
	m = sealLeafRanges([]leafRange{e, a})
	if len(m) != 1 || m[0].devs != a.devs || m[0].blo != a.blo || m[0].bhi != a.bhi {
		t.Errorf("merged %+v: want the ranges of %+v", m, a)
	}
	c := leafRange{id: 7, lo: k(1, 450), hi: k(1, 550), devs: 0b0010, blo: 450, bhi: 550}
	for _, order := range [][]leafRange{{a, c}, {c, a}} {
		m = sealLeafRanges(order)
		if len(m) != 1 || m[0].devs != 0b1011 || m[0].blo != 100 || m[0].bhi != 550 || m[0].mayHold(set) {
			t.Errorf("merged %+v: want devices 0, 1, 3 and buckets 100-550, not holding (2, 500)", m)
		}
	}
}

// TestLeafEndHolds logs one record's bucket through seen and leafEnd, on
// devices up to 70: the logged range holds it, and a bucket elsewhere on
// the device is not held. (A leaf with a record on device 63 or above
// once logged a range whose end wrapped past the last key, and every
// recheck skipped it.)
func TestLeafEndHolds(t *testing.T) {
	for dev := range uint64(71) {
		e := &emitter{track: true}
		e.leafStart()
		b := shard.MakeBucketKey(dev, 5)
		e.seen(b)
		if dev > 0 {
			e.seen(shard.MakeBucketKey(dev-1, 7))
		}
		e.leafEnd(&btreeio.Node{})
		r := sealLeafRanges(e.leaves)[0]
		for _, probe := range []struct {
			k    shard.BucketKey
			want bool
		}{{b, true}, {shard.MakeBucketKey(dev, 9), false}} {
			set := &shard.BucketSet{}
			set.Add(probe.k)
			set.Seal()
			if got := r.mayHold(set); got != probe.want && (probe.want || dev < 63) {
				t.Errorf("device %d: the range %+v holds bucket %d:%d: %v, want %v", dev, r, probe.k.Dev(), probe.k.Bucket(), got, probe.want)
			}
		}
	}
}

// TestRecheckLeavesMultiDevice checks a digest check of a filesystem whose
// data is spread over four devices, with faults: the recheck reads only
// the data leaves whose records, on some device, fall near a bucket
// rechecked (each leaf points into every device, so the range of its
// records in (device, bucket) order spans the devices between whole), and
// finds what the exact check finds.
func TestRecheckLeavesMultiDevice(t *testing.T) {
	paths := generate(t, gen.Params{Devices: 4, Replicas: 1, DeviceSize: 1 << 30, BtreeNodeSize: 16 << 10,
		Extents: 100000, ExtentMax: 16, Seed: 11, Inject: map[string]int{gen.KindMissingBP: 2, gen.KindDanglingBP: 1}})
	want, exact := checkPaths(t, paths, Options{Workers: 2, Exact: true})
	if len(exact.Findings) < 3 {
		t.Fatalf("%d findings, want the injected faults'", len(exact.Findings))
	}
	got, res := checkPaths(t, paths, Options{Workers: 2})
	if got != want {
		t.Fatalf("digest check found\n%s\nexact check\n%s", got, want)
	}
	st := res.Stats
	if st.Rechecked == 0 || st.RecheckLeaves == 0 {
		t.Fatalf("rechecked %d buckets reading %d leaves: want a recheck", st.Rechecked, st.RecheckLeaves)
	}
	if st.RecheckLeaves*10 > st.Nodes {
		t.Errorf("the recheck of %d buckets read %d of %d data leaves, want under a tenth", st.Rechecked, st.RecheckLeaves, st.Nodes)
	}
	t.Logf("the recheck of %d buckets read %d of %d data leaves", st.Rechecked, st.RecheckLeaves, st.Nodes)
}

// TestCleanMultiDevice checks clean generated filesystems whose data is
// spread over several devices (one and two copies; 40 replicas entries
// taking turns, more than the emitter's run slots): no finding, the
// accounting's replicas entries included.
func TestCleanMultiDevice(t *testing.T) {
	for _, p := range []gen.Params{
		{Devices: 10, Replicas: 1, Extents: 60000, Seed: 12},
		{Devices: 40, Replicas: 1, Extents: 40000, Seed: 14},
		{Devices: 6, Replicas: 2, Extents: 40000, Seed: 13},
	} {
		p.DeviceSize, p.BtreeNodeSize, p.ExtentMax = 1<<30, 16<<10, 16
		paths := generate(t, p)
		for _, exact := range []bool{false, true} {
			got, res := checkPaths(t, paths, Options{Workers: 2, Exact: exact})
			if got != "" || res.Stats.Extents != int64(p.Extents) {
				t.Errorf("%d devices, %d copies, exact %v: %d extents, findings\n%s", p.Devices, p.Replicas, exact, res.Stats.Extents, got)
			}
		}
	}
}

// TestDigestLikeExactMultiDevice checks digest checks against exact ones
// on generated filesystems of 4 to 64 devices with faults (devices from
// 63 on are told apart in a leaf's log only as a group), in the three
// eras the generator writes, with 1 to 3 copies and erasure coding.
func TestDigestLikeExactMultiDevice(t *testing.T) {
	faults := map[string]int{gen.KindMissingBP: 5, gen.KindDanglingBP: 3, gen.KindWrongBP: 2, gen.KindWrongDirty: 2, gen.KindMissingNodeBP: 1}
	for _, p := range []gen.Params{
		{Devices: 64, Replicas: 1, Extents: 30000, Seed: 21, DeviceSize: 64 << 20, Inject: map[string]int{gen.KindMissingBP: 40, gen.KindDanglingBP: 10}},
		{Devices: 5, Replicas: 2, Extents: 20000, Seed: 31, MetadataVersion: "1.39", Inject: faults},
		{Devices: 9, Replicas: 1, Extents: 20000, Seed: 32, MetadataVersion: "1.28", Inject: faults},
		{Devices: 7, Replicas: 3, Extents: 15000, Seed: 33, Inject: faults},
		{Devices: 4, Replicas: 1, Extents: 15000, Seed: 35, ECStripes: 3, Inject: faults},
	} {
		if p.DeviceSize == 0 {
			p.DeviceSize = 256 << 20
		}
		p.BtreeNodeSize, p.ExtentMax = 16<<10, 16
		paths := generate(t, p)
		want, exact := checkPaths(t, paths, Options{Workers: 2, Exact: true})
		got, res := checkPaths(t, paths, Options{Workers: 2})
		if len(exact.Findings) < 5 {
			t.Errorf("%d devices: %d findings, want the injected faults'", p.Devices, len(exact.Findings))
		}
		if got != want {
			t.Errorf("%d devices, %d copies, metadata %q: digest check found\n%s\nexact check\n%s", p.Devices, p.Replicas, p.MetadataVersion, got, want)
		}
		t.Logf("%d devices: %d findings; the recheck of %d buckets read %d of %d data leaves", p.Devices, len(exact.Findings), res.Stats.Rechecked, res.Stats.RecheckLeaves, res.Stats.Nodes)
	}
}

// generate writes a generated filesystem of p into a temporary directory
// and returns its devices' paths.
func generate(t *testing.T, p gen.Params) []string {
	t.Helper()
	dir := t.TempDir()
	if _, err := gen.Generate(dir, p); err != nil {
		t.Fatalf("%d devices: %v", p.Devices, err)
	}
	paths := make([]string, max(p.Devices, 1))
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("dev%d.img", i))
	}
	return paths
}
