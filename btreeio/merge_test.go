package btreeio

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"
	"unsafe"

	"bpcheck/bp"
)

// mergeRef is the plain merge the run-based mergeKeys must equal: at each
// position, the last key of the newest bset holding it wins; deleted keys
// are dropped.
func mergeRef(keys []NodeKey, bsetStart []int) []NodeKey {
	type item struct {
		pos  bp.Pos
		bset int
		idx  int
	}
	var items []item
	for b, st := range bsetStart {
		end := len(keys)
		if b+1 < len(bsetStart) {
			end = bsetStart[b+1]
		}
		for i := st; i < end; i++ {
			items = append(items, item{keys[i].Key.Pos, b, i})
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].pos.Less(items[j].pos) })
	var out []NodeKey
	for i := 0; i < len(items); {
		j := i
		win := items[i]
		for j < len(items) && items[j].pos == items[i].pos {
			if items[j].bset >= win.bset {
				win = items[j]
			}
			j++
		}
		if keys[win.idx].Key.Type != bp.KeyDeleted {
			out = append(out, keys[win.idx])
		}
		i = j
	}
	return out
}

// TestMergeKeys compares mergeKeys with mergeRef on random bsets: sorted,
// with repeated positions within and across bsets, deleted keys, empty
// bsets.
func TestMergeKeys(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for iter := 0; iter < 20000; iter++ {
		nb := 1 + r.Intn(5)
		var keys []NodeKey
		var starts []int
		span := 1 + r.Intn(40)
		for b := 0; b < nb; b++ {
			starts = append(starts, len(keys))
			n := r.Intn(30)
			if r.Intn(4) == 0 {
				n = 0
			}
			offs := make([]int, n)
			for i := range offs {
				offs[i] = r.Intn(span)
			}
			sort.Ints(offs)
			for _, o := range offs {
				k := NodeKey{Key: bp.Key{Type: bp.KeyExtent, Pos: bp.Pos{Inode: uint64(o % 3), Offset: uint64(o)}}, Val: []byte(fmt.Sprint(b, len(keys)))}
				if r.Intn(6) == 0 {
					k.Key.Type = bp.KeyDeleted
				}
				keys = append(keys, k)
			}
			// keep each bset sorted by the full position
			bs := keys[starts[b]:]
			sort.SliceStable(bs, func(i, j int) bool { return bs[i].Key.Pos.Less(bs[j].Key.Pos) })
		}
		want := mergeRef(keys, starts)
		got, _ := mergeKeys(append([]NodeKey(nil), keys...), starts, nil)
		if len(got) != len(want) {
			t.Fatalf("iter %d: %d keys, want %d", iter, len(got), len(want))
		}
		for i := range got {
			if got[i].Key != want[i].Key || string(got[i].Val) != string(want[i].Val) {
				t.Fatalf("iter %d key %d: %+v %q, want %+v %q", iter, i, got[i].Key, got[i].Val, want[i].Key, want[i].Val)
			}
		}
	}
}

// BenchmarkMergeKeys merges a node of two bsets as bcachefs leaves them:
// a large sorted bset and a small later one over the same range.
func BenchmarkMergeKeys(b *testing.B) {
	var keys []NodeKey
	for i := 0; i < 3000; i++ {
		keys = append(keys, NodeKey{Key: bp.Key{Type: bp.KeyExtent, Pos: bp.Pos{Inode: 4096, Offset: uint64(2 * i)}}})
	}
	starts := []int{0, len(keys)}
	for i := 0; i < 300; i++ {
		keys = append(keys, NodeKey{Key: bp.Key{Type: bp.KeyExtent, Pos: bp.Pos{Inode: 4096, Offset: uint64(20*i + 1)}}})
	}
	out := make([]NodeKey, 0, len(keys))
	b.SetBytes(int64(len(keys)) * int64(unsafe.Sizeof(NodeKey{})))
	for b.Loop() {
		out, _ = mergeKeys(keys, starts, out)
	}
	if len(out) != 3300 {
		b.Fatalf("%d keys", len(out))
	}
	b.ReportMetric(float64(len(keys))*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}
