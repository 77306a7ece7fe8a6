package btreeio_test

import (
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
)

// childPtr is a btree pointer key found in an interior node.
type childPtr struct {
	level uint8 // level of the node it points at
	key   bp.Key
	val   []byte
}

// interiorCollector is a Visitor that collects the btree pointers held by
// interior nodes.
type interiorCollector struct {
	tb   testing.TB
	ptrs []childPtr
}

// Node collects the btree pointers of interior node n.
func (c *interiorCollector) Node(n *btreeio.Node) error {
	if n.Level == 0 {
		return nil
	}
	for _, k := range n.Keys {
		if k.Key.Type == bp.KeyBtreePtrV2 || k.Key.Type == bp.KeyBtreePtr {
			c.ptrs = append(c.ptrs, childPtr{level: n.Level - 1, key: k.Key, val: k.Val})
		}
	}
	return nil
}

// NodeError fails the benchmark: the image is clean.
func (c *interiorCollector) NodeError(btree bp.BtreeID, level uint8, _ *bp.Key, err error) error {
	c.tb.Fatalf("btree %v level %d: %v", btree, level, err)
	return nil
}

// BenchmarkParseNode reads, verifies (crc32c) and merges the leaves of the
// extents btree of the many-extents case. One op handles every leaf; the
// bytes are whole on-disk nodes.
//
//   - ParseNode: the node buffers are in memory (verify + unpack + merge).
//   - ReadNode: each node is read from the image (page cache) and parsed,
//     as a walk does.
func BenchmarkParseNode(b *testing.B) {
	casedata.Require(b)
	var leaves []nodeBuf
	for _, nb := range loadNodeBufs(b, "many-extents", false) {
		if nb.exp.Btree == bp.BtreeExtents && nb.exp.Level == 0 {
			leaves = append(leaves, nb)
		}
	}
	if len(leaves) == 0 {
		b.Fatal("no extents leaves")
	}
	nodeBytes, keys := 0, 0
	for _, nb := range leaves {
		nodeBytes += len(nb.buf)
		keys += nb.keys
	}
	report := func(b *testing.B) {
		s := b.Elapsed().Seconds()
		b.ReportMetric(float64(len(leaves))*float64(b.N)/s, "nodes/s")
		b.ReportMetric(float64(keys)*float64(b.N)/s, "keys/s")
	}

	b.Run("ParseNode", func(b *testing.B) {
		b.SetBytes(int64(nodeBytes))
		b.ReportAllocs()
		for b.Loop() {
			for _, nb := range leaves {
				n, err := btreeio.ParseNode(nb.sb, nb.dev, nb.off, nb.buf, nb.exp)
				if err != nil {
					b.Fatal(err)
				}
				if len(n.Keys) != nb.keys {
					b.Fatalf("%d keys, want %d", len(n.Keys), nb.keys)
				}
			}
		}
		report(b)
	})

	b.Run("ReadNode", func(b *testing.B) {
		fs, err := btreeio.Open(casedata.CaseImages(b, "many-extents"))
		if err != nil {
			b.Fatal(err)
		}
		defer fs.Close()
		if err := fs.LoadRoots(); err != nil {
			b.Fatal(err)
		}
		c := &interiorCollector{tb: b}
		if err := fs.Walk(bp.BtreeExtents, 1, c); err != nil {
			b.Fatal(err)
		}
		var ptrs []childPtr
		for _, p := range c.ptrs {
			if p.level == 0 {
				ptrs = append(ptrs, p)
			}
		}
		if len(ptrs) != len(leaves) {
			b.Fatalf("%d leaf pointers, %d leaves", len(ptrs), len(leaves))
		}
		b.SetBytes(int64(nodeBytes))
		b.ReportAllocs()
		for b.Loop() {
			for i := range ptrs {
				if _, err := fs.ReadNode(bp.BtreeExtents, 0, &ptrs[i].key, ptrs[i].val); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b)
	})
}
