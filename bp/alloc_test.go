package bp_test

import (
	"encoding/binary"
	"testing"

	"bpcheck/bp"
)

// TestNoAllocsPerKey guards the hot path: unpacking a key, iterating its
// pointers and computing its backpointer allocate nothing.
func TestNoAllocsPerKey(t *testing.T) {
	f := bp.Format{KeyU64s: 2, NrFields: 6, Bits: [6]uint8{20, 30, 32, 10, 0, 8}, Offset: [6]uint64{4096, 0, 0xfffffff0, 0, 0, 0}}
	key := []byte{0x02, 0x00, 0x06, 0x70, 0x80, 0xfe, 0x03, 0x00, 0x00, 0x40, 0x2c, 0x9a, 0xb7, 0x9e, 0x03, 0x03}
	val := make([]byte, 16)
	binary.LittleEndian.PutUint64(val[0:], 1<<1|0<<2|7<<9|uint64(2)<<24) // crc32 entry
	binary.LittleEndian.PutUint64(val[8:], bp.Ptr{Offset: 1234, Dev: 0, Gen: 1}.Encode())
	buf := append(append([]byte{}, key...), val...)
	buf[0] = 4 // key + 2 value words
	g := &bp.Geometry{Version: 1<<10 | 36, Shift: 16, BtreeNodeSectors: 512,
		BucketSize: func(uint8) (uint32, bool) { return 256, true }, Rotational: func(uint8) bool { return false }}
	n := testing.AllocsPerRun(200, func() {
		k, v, err := f.DecodeKey(buf)
		if err != nil {
			t.Fatal(err)
		}
		it := bp.NewPtrIter(v, k.Size, nil)
		for {
			d, ok, _ := it.Next()
			if !ok {
				break
			}
			_, _ = g.ExpectedBP(bp.BtreeExtents, 0, &k, &d, 0)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per key", n)
	}
}
