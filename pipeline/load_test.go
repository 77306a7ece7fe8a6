package pipeline

import (
	"errors"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/gen"
	"bpcheck/shard"
)

// TestAllocKeyErrorAnyPass: an alloc key whose value does not decode is
// reported by the loader of whichever pass loads its bucket (each alloc
// key is loaded in one pass; it used to be reported in the first pass
// only, so the error came and went with the memory budget), and not
// again by a recheck's or a re-judging's loader, which load it again.
func TestAllocKeyErrorAnyPass(t *testing.T) {
	paths := generate(t, gen.Params{Devices: 1, DeviceSize: 32 << 20, Extents: 100, Seed: 1})
	fs, err := btreeio.Open(paths)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
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
