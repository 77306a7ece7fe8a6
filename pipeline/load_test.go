package pipeline

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/gen"
	"bpcheck/report"
	"bpcheck/shard"
)

// openLoaded opens the filesystem on paths with its roots loaded; it is
// closed when the test ends.
func openLoaded(t *testing.T, paths []string) *btreeio.FS {
	t.Helper()
	fs, err := btreeio.Open(paths)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestAllocKeyErrorAnyPass: an alloc key whose value does not decode is
// reported by the loader of whichever pass loads its bucket (each alloc
// key is loaded in one pass; it used to be reported in the first pass
// only, so the error came and went with the memory budget), and not
// again by a recheck's or a re-judging's loader, which load it again.
func TestAllocKeyErrorAnyPass(t *testing.T) {
	paths := generate(t, gen.Params{Devices: 1, DeviceSize: 32 << 20, Extents: 100, Seed: 1})
	fs := openLoaded(t, paths)
	short := &btreeio.Node{Keys: []btreeio.NodeKey{{Key: bp.Key{Type: bp.KeyAllocV4, Pos: bp.Pos{Offset: 7}}, Val: make([]byte, 8)}}}
	for _, tc := range []struct {
		name      string
		pass      int
		quiet     bool // a recheck's loader
		rejudging bool
		want      int
	}{
		{"first pass", 0, false, false, 1},
		{"third pass", 2, false, false, 1},
		{"recheck", 2, true, false, 0},
		{"rejudge", 1, false, true, 0},
	} {
		c := newChecker(fs, Options{Workers: 1})
		c.rejudging = tc.rejudging
		sh := shard.New(c.cfg, 0, ^shard.BucketKey(0))
		l := &allocLoader{c: c, shards: []*shard.Shard{sh}, lo: 0, hi: ^shard.BucketKey(0), pass: tc.pass, quiet: tc.quiet}
		if err := l.Node(short); err != nil {
			t.Fatal(err)
		}
		if len(c.errs) != tc.want {
			t.Errorf("%s: errors %v, want %d", tc.name, c.errs, tc.want)
		}
		for _, e := range c.errs {
			if !errors.Is(e, bp.ErrKey) {
				t.Errorf("%s: error %v", tc.name, e)
			}
		}
		sh.Release()
	}
}

// TestPastDeviceEndAnyLayout checks a filesystem with backpointers and
// alloc keys past its devices' last buckets under 30 layouts (exact and
// digest; 1 to 6 shards; 1 to 5 passes): the findings must be the
// generator's, in every layout. (A backpointer past the end was owned by
// the shard of its bucket clamped to the device's end, while its
// position lay in a later shard's range when a cut fell past the end:
// neither loader took it.)
func TestPastDeviceEndAnyLayout(t *testing.T) {
	dir := t.TempDir()
	m, err := gen.Generate(dir, gen.Params{Devices: 2, DeviceSize: 64 << 20, BtreeNodeSize: 16 << 10, Extents: 3000, ExtentMax: 16, Seed: 5,
		Inject: map[string]int{gen.KindBPPastEnd: 4, gen.KindAllocPastEnd: 2, gen.KindMissingAlloc: 1}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, f := range m.Findings {
		want[f.Code]++
	}
	paths := []string{filepath.Join(dir, "dev0.img"), filepath.Join(dir, "dev1.img")}
	var first string
	passes := map[int]bool{}
	for _, exact := range []bool{true, false} {
		for _, shards := range []int{1, 2, 3, 4, 6} {
			for _, budget := range []int64{0, 200 << 10, 60 << 10} {
				got, res := checkPaths(t, paths, Options{Workers: 2, Shards: shards, MemoryBudget: budget, Exact: exact})
				passes[res.Passes] = true
				codes := map[string]int{}
				for _, f := range res.Findings {
					codes[f.Code]++
				}
				if !maps.Equal(codes, want) {
					t.Errorf("exact %v, %d shards, budget %d (%d passes): findings %v, want %v", exact, shards, budget, res.Passes, codes, want)
				}
				if first == "" {
					first = got
				} else if got != first {
					t.Errorf("exact %v, %d shards, budget %d (%d passes): findings differ from the first layout's:\n%s\nfirst:\n%s", exact, shards, budget, res.Passes, got, first)
				}
			}
		}
	}
	if len(passes) < 3 {
		t.Errorf("passes %v: too few layouts", passes)
	}
}

// TestAllocKeyMissingDevBucketOnce: an alloc key of a bucket its device
// does not have (past its end, or of a device that is not a member) is
// alloc_key_to_missing_dev_bucket, reported by the one loader whose
// buckets hold it (a key past the 256 devices: the last loader's), and
// loaded into no shard.
func TestAllocKeyMissingDevBucketOnce(t *testing.T) {
	paths := generate(t, gen.Params{Devices: 1, DeviceSize: 32 << 20, Extents: 100, Seed: 1})
	fs := openLoaded(t, paths)
	nb := fs.SB.Members[0].NBuckets
	val := make([]byte, bp.AllocV4Bytes)
	keys := []bp.Pos{{Inode: 0, Offset: nb + 5}, {Inode: 1, Offset: 7}, {Inode: 300, Offset: 9}}
	n := &btreeio.Node{}
	for _, p := range keys {
		n.Keys = append(n.Keys, btreeio.NodeKey{Key: bp.Key{Type: bp.KeyAllocV4, Pos: p}, Val: val})
	}
	cuts := []shard.BucketKey{0, shard.MakeBucketKey(0, nb), shard.MakeBucketKey(0, nb+100), shard.MakeBucketKey(2, 0), ^shard.BucketKey(0)}
	reported := map[bp.Pos]int{}
	for i := 0; i+1 < len(cuts); i++ {
		c := newChecker(fs, Options{Workers: 1})
		sh := shard.New(c.cfg, cuts[i], cuts[i+1])
		l := &allocLoader{c: c, shards: []*shard.Shard{sh}, lo: cuts[i], hi: cuts[i+1]}
		if err := l.Node(n); err != nil {
			t.Fatal(err)
		}
		for _, f := range c.findings {
			if f.Code != report.AllocKeyToMissingDevBucket {
				t.Errorf("loader %d: finding %s", i, f.Code)
			}
			reported[f.Pos]++
		}
		if _, a := sh.Counts(); a != 0 {
			t.Errorf("loader %d: %d alloc keys loaded", i, a)
		}
		sh.Release()
	}
	for _, p := range keys {
		if reported[p] != 1 {
			t.Errorf("alloc key %s reported %d times, want once", p, reported[p])
		}
	}
}

// TestRejudgeAllocKeyMissingDevBucket: a live check confirms an
// alloc_key_to_missing_dev_bucket of an existing member on a fresh read
// (Rejudge); were it quiet there, confirm would call it transient.
func TestRejudgeAllocKeyMissingDevBucket(t *testing.T) {
	paths := generate(t, gen.Params{Devices: 1, DeviceSize: 64 << 20, Extents: 500, Seed: 2,
		Inject: map[string]int{gen.KindAllocPastEnd: 1}})
	fs := openLoaded(t, paths)
	res, err := Run(context.Background(), fs, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	var f *report.Finding
	for i := range res.Findings {
		if res.Findings[i].Code == report.AllocKeyToMissingDevBucket {
			f = &res.Findings[i]
		}
	}
	if f == nil {
		t.Fatalf("no %s in %d findings", report.AllocKeyToMissingDevBucket, len(res.Findings))
	}
	got, _, err := Rejudge(context.Background(), fs, []BucketRef{{Dev: f.Dev, Bucket: f.Bucket}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range got {
		found = found || g.Code == f.Code && g.Dev == f.Dev && g.Bucket == f.Bucket
	}
	if !found {
		t.Errorf("Rejudge of %d:%d: %v, want the %s again", f.Dev, f.Bucket, got, f.Code)
	}
}
