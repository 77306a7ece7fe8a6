package pipeline

import (
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/gen"
	"bpcheck/shard"
)

// TestFastAcctLikeGeneral feeds the fast path (with its accounting runs)
// and the general path the same random extents, in the three ways eras
// count (no snapshot; per snapshot, up to 1.31; per snapshot and key,
// 1.39, where reflink_v keys are counted apart): 1 to 12 devices, 1 to 4
// pointers, cached ones, several snapshots and snapshot 0. The
// accounting tables must be equal.
func TestFastAcctLikeGeneral(t *testing.T) {
	fs, err := btreeio.Open(generate(t, gen.Params{Devices: 12, Replicas: 1, DeviceSize: 64 << 20, Extents: 50, Seed: 3}))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	c := newChecker(fs, Options{Workers: 1})
	r := rand.New(rand.NewPCG(5, 6))
	for era := range 3 {
		for round := range 40 {
			hi := shard.MakeBucketKey(255, 0)
			fast := testEmitter(c, 0, hi/2, hi, 0x5a)
			general := testEmitter(c, 0, hi/2, hi, 0xa5)
			general.noFast = true
			for _, e := range []*emitter{fast, general} {
				e.acct.snapshotCount, e.acct.snapshotKeys = era == 1, era == 2
				e.runSnapMask, e.runSnapKeys = 0, era == 2
				if era > 0 {
					e.runSnapMask = ^uint32(0)
				}
			}
			ndevs, nsnap := 1+r.IntN(12), 1+r.IntN(3)
			for i := range 300 {
				n := 1 + r.IntN(2)
				if r.IntN(5) == 0 {
					n = 1 + r.IntN(4)
				}
				var ws []uint64
				used := map[uint8]bool{}
				for len(ws) < n && len(used) < ndevs {
					d := uint8(r.IntN(ndevs))
					if used[d] {
						continue
					}
					used[d] = true
					ws = append(ws, bp.Ptr{Offset: uint64(4096 + 8*r.IntN(1000)), Dev: d, Cached: r.IntN(8) == 0}.Encode())
				}
				typ := bp.KeyExtent
				var val []byte
				if r.IntN(6) == 0 {
					typ, val = bp.KeyReflinkV, make([]byte, 8)
				}
				for _, w := range ws {
					val = binary.LittleEndian.AppendUint64(val, w)
				}
				k := bp.Key{Type: typ, Size: uint32(8 * (1 + r.IntN(4))), Pos: bp.Pos{Inode: 4096, Offset: uint64(8 * i), Snapshot: uint32(0xffffffff - r.IntN(nsnap))}}
				if r.IntN(10) == 0 {
					k.Pos.Snapshot = 0
				}
				for _, e := range []*emitter{fast, general} {
					if err := e.emitKeyPtrs(bp.BtreeExtents, 0, &k, val); err != nil {
						t.Fatal(err)
					}
					e.bufs[0], e.bufs[1] = e.bufs[0][:0], e.bufs[1][:0]
				}
			}
			fast.flushAcctRun()
			if !reflect.DeepEqual(fast.acct.t, general.acct.t) {
				for k, v := range general.acct.t {
					if w := fast.acct.t[k]; w == nil || *w != *v {
						t.Errorf("era %d round %d: %x fast %v, general %v", era, round, k, w, v)
					}
				}
				for k, v := range fast.acct.t {
					if general.acct.t[k] == nil {
						t.Errorf("era %d round %d: %x fast %v, general none", era, round, k, v)
					}
				}
				t.FailNow()
			}
		}
	}
}
