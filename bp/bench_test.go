package bp_test

import (
	"fmt"
	"testing"

	"bpcheck/bp"
	"bpcheck/internal/casedata"
)

// benchSink keeps the decoded keys alive so the compiler cannot drop the
// work.
var benchSink uint64

// BenchmarkDecodeKey unpacks every key of the first bset of real leaf nodes
// of the many-extents case (the fullest leaf of a few btrees, each with its
// own bkey_format). One op decodes all keys of the node.
func BenchmarkDecodeKey(b *testing.B) {
	casedata.Require(b)
	nodes := loadRealNodes(b, "many-extents")
	var picks []realNode
	for _, id := range []bp.BtreeID{bp.BtreeExtents, bp.BtreeBackpointers, bp.BtreeAlloc, bp.BtreeInodes} {
		best := -1
		for i, n := range nodes {
			if n.btree == id && n.level == 0 && (best < 0 || len(n.keys) > len(nodes[best].keys)) {
				best = i
			}
		}
		if best >= 0 {
			picks = append(picks, nodes[best])
		}
	}
	if len(picks) == 0 {
		b.Fatal("no leaf nodes found")
	}
	for _, n := range picks {
		f, err := bp.DecodeFormat(n.format)
		if err != nil {
			b.Fatal(err)
		}
		size := 0
		for _, k := range n.keys {
			size += len(k)
		}
		name := fmt.Sprintf("%v/keys=%d/bits=%d-%d-%d-%d-%d-%d", n.btree, len(n.keys),
			f.Bits[0], f.Bits[1], f.Bits[2], f.Bits[3], f.Bits[4], f.Bits[5])
		u := f.Unpacker()
		// format: Format.DecodeKeyInto; unpacker: the node path's
		// Unpacker (field positions worked out once per node).
		for _, via := range []string{"format", "unpacker"} {
			b.Run(name+"/"+via, func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				var sum uint64
				var k bp.Key
				for b.Loop() {
					for _, kb := range n.keys {
						var err error
						if via == "format" {
							_, err = f.DecodeKeyInto(&k, kb)
						} else {
							_, err = u.DecodeKeyInto(&k, kb)
						}
						if err != nil {
							b.Fatal(err)
						}
						sum += k.Pos.Offset
					}
				}
				benchSink += sum
				b.ReportMetric(float64(len(n.keys))*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
			})
		}
	}
}
