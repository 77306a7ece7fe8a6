package pipeline

import (
	"context"
	"encoding/binary"
	"reflect"
	"testing"
	"unsafe"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
	"bpcheck/shard"
)

// testEmitter returns an emitter of c for the buckets [lo, hi), with two
// shards split at mid, whose batches hold stale records filled with the
// byte garbage (batches are recycled: a record field the emitter does
// not write would keep it).
func testEmitter(c *checker, lo, mid, hi shard.BucketKey, garbage byte) *emitter {
	shards := []*shard.Shard{shard.New(c.cfg, lo, mid), shard.New(c.cfg, mid, hi)}
	bufs := make([][]shard.Ref, 2)
	for i := range bufs {
		b := make([]shard.Ref, 64)
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), len(b)*int(unsafe.Sizeof(b[0])))
		for j := range raw {
			raw[j] = garbage
		}
		bufs[i] = b[:0]
	}
	e := newEmitter(context.Background(), c, shards, []chan []shard.Ref{make(chan []shard.Ref, 64), make(chan []shard.Ref, 64)}, lo, hi, 0)
	e.bufs = bufs
	return e
}

// valueCollector keeps copies of the values of extents leaves.
type valueCollector struct{ vals [][]byte }

func (v *valueCollector) Node(n *btreeio.Node) error {
	for _, k := range n.Keys {
		if n.Level == 0 && k.Key.Type == bp.KeyExtent && len(v.vals) < 64 {
			v.vals = append(v.vals, append([]byte(nil), k.Val...))
		}
	}
	return nil
}
func (v *valueCollector) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// FuzzFastEmit compares emitExtentFast with the general emitKeyPtrs on
// arbitrary extent values: when the fast path takes a value it must emit
// the same records (every field, written over different stale garbage)
// and count the same statistics; when it declines it must have emitted
// and counted nothing. The filesystem is many-extents (format B, 1.36).
func FuzzFastEmit(f *testing.F) { fuzzFastEmit(f, "many-extents") }

// FuzzFastEmitA is FuzzFastEmit on a-many-extents (format A, 1.9), whose
// backpointers hold the offset within the bucket instead of gen and
// flags.
func FuzzFastEmitA(f *testing.F) { fuzzFastEmit(f, "a-many-extents") }

func fuzzFastEmit(f *testing.F, caseName string) {
	casedata.Require(f)
	fs, err := btreeio.Open(casedata.CaseImages(f, caseName))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { fs.Close() })
	if err := fs.LoadRoots(); err != nil {
		f.Fatal(err)
	}
	c := newChecker(fs, Options{Workers: 1})
	if !c.anyRotational {
		f.Logf("%s has no rotational member: reconcile flags are not exercised", caseName)
	}
	vc := &valueCollector{}
	if err := fs.Walk(bp.BtreeExtents, 0, vc); err != nil {
		f.Fatal(err)
	}
	for i, v := range vc.vals {
		f.Add(v, uint32(8+i), uint64(0), uint64(1000), uint64(1<<20))
	}
	word := func(ws ...uint64) []byte {
		b := make([]byte, 8*len(ws))
		for i, w := range ws {
			binary.LittleEndian.PutUint64(b[8*i:], w)
		}
		return b
	}
	ptr := func(dev, gen uint8, off uint64, cached bool) uint64 {
		return bp.Ptr{Offset: off, Dev: dev, Gen: gen, Cached: cached}.Encode()
	}
	crc32 := uint64(1<<1) | 3<<2 | 7<<9 | 2<<16 | 2<<28 // compressed 4 of 8, offset 2, lz4
	reconcile := uint64(1<<7) | 1<<15 | 3<<17
	f.Add(word(crc32, ptr(0, 1, 4096, false), ptr(0, 2, 8192, true), reconcile), uint32(8), uint64(0), uint64(3), uint64(1<<20))
	f.Add(word(reconcile, ptr(0, 0, 1<<20, false)), uint32(16), uint64(0), uint64(100), uint64(1<<30))
	f.Add(word(ptr(1, 0, 4096, false)), uint32(8), uint64(0), uint64(5), uint64(1<<20))
	f.Add(word(ptr(0xff, 0, 4096, false)), uint32(8), uint64(0), uint64(5), uint64(1<<20))
	f.Add(word(1<<4|1<<17, ptr(0, 0, 4096, false)), uint32(8), uint64(0), uint64(5), uint64(1<<20)) // stripe_ptr
	f.Fuzz(func(t *testing.T, entries []byte, size uint32, lo, mid, hi uint64) {
		lo, mid, hi = lo&(1<<49-1), mid&(1<<49-1), hi&(1<<49-1)
		if !(lo <= mid && mid <= hi) {
			return
		}
		k := bp.Key{Type: bp.KeyExtent, Size: size, Pos: bp.Pos{Inode: 4096, Offset: 777, Snapshot: 0xffffffff}}
		findings, errs := len(c.findings), len(c.errs)
		fast := testEmitter(c, shard.BucketKey(lo), shard.BucketKey(mid), shard.BucketKey(hi), 0x5a)
		done, err := fast.emitExtentFast(bp.BtreeExtents, &k, entries)
		if err != nil {
			t.Fatalf("fast path: %v", err)
		}
		if len(c.findings) != findings || len(c.errs) != errs {
			t.Fatalf("fast path added findings or errors")
		}
		if !done {
			if len(fast.bufs[0])+len(fast.bufs[1]) != 0 || !reflect.DeepEqual(fast.stats, Stats{}) {
				t.Fatalf("fast path declined but emitted %d+%d records, stats %+v", len(fast.bufs[0]), len(fast.bufs[1]), fast.stats)
			}
			return
		}
		gen := testEmitter(c, shard.BucketKey(lo), shard.BucketKey(mid), shard.BucketKey(hi), 0xa5)
		gen.noFast = true
		if err := gen.emitKeyPtrs(bp.BtreeExtents, 0, &k, entries); err != nil {
			t.Fatalf("general path: %v", err)
		}
		if len(c.findings) != findings || len(c.errs) != errs {
			t.Fatalf("the general path found something in a value the fast path took: %v %v", c.findings[findings:], c.errs[errs:])
		}
		for i := range gen.bufs {
			if !reflect.DeepEqual(fast.bufs[i], gen.bufs[i]) {
				t.Fatalf("shard %d records differ\nfast    %+v\ngeneral %+v", i, fast.bufs[i], gen.bufs[i])
			}
		}
		if !reflect.DeepEqual(fast.stats, gen.stats) {
			t.Fatalf("stats differ: fast %+v, general %+v", fast.stats, gen.stats)
		}
		// The accounting the two paths sum, over a run of extents in
		// one snapshot and one in another: the fast path's run reaches
		// the sums when flushed.
		for _, snap := range []uint32{0xffffffff, 5, 5} {
			k.Pos.Snapshot = snap
			k.Pos.Offset += uint64(size)
			if done, err := fast.emitExtentFast(bp.BtreeExtents, &k, entries); !done || err != nil {
				t.Fatalf("fast path took a value once, not again: %v %v", done, err)
			}
			if err := gen.emitKeyPtrs(bp.BtreeExtents, 0, &k, entries); err != nil {
				t.Fatalf("general path: %v", err)
			}
		}
		fast.flushAcctRun()
		if len(fast.acct.t)+len(gen.acct.t) != 0 && !reflect.DeepEqual(fast.acct.t, gen.acct.t) {
			t.Fatalf("accounting differs: fast %v, general %v", fast.acct.t, gen.acct.t)
		}
	})
}
