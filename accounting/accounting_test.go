package accounting

import (
	"testing"

	"bpcheck/bp"
)

// Positions from the accounting btrees of the real images (bcachefs list):
// metadata 1.36 (big endian), 1.13 (little endian, packed) and 1.9 (little
// endian, fields 4 bytes in).
func TestKeysOfRealImages(t *testing.T) {
	for _, c := range []struct {
		pos     bp.Pos
		layout  Layout
		version uint16
		want    string
	}{
		{bp.Pos{Inode: 0x0204020100010000}, LayoutBigEndian, 1<<10 | 36, "replicas user: 1/2 [0 1]"},
		{bp.Pos{Inode: 0x0203020100010000}, LayoutBigEndian, 1<<10 | 36, "replicas btree: 1/2 [0 1]"},
		{bp.Pos{Inode: 0x0300040000000000}, LayoutBigEndian, 1<<10 | 36, "dev_data_type dev=0 data_type=user"},
		{bp.Pos{Inode: 0x0301000000000000}, LayoutBigEndian, 1<<10 | 36, "dev_data_type dev=1 data_type=free"},
		{bp.Pos{Offset: 256, Snapshot: 3}, LayoutAligned, 1<<10 | 9, "dev_data_type dev=0 data_type=sb"},
		{bp.Pos{Offset: 1, Snapshot: 6}, LayoutAligned, 1<<10 | 9, "btree btree=inodes"},
		{bp.Pos{Inode: 0x0405000000000000}, LayoutBigEndian, 1<<10 | 36, "compression incompressible"},
		{bp.Pos{Snapshot: 65539}, LayoutPacked, 1<<10 | 13, "dev_data_type dev=0 data_type=sb"},
		{bp.Pos{Snapshot: 262}, LayoutPacked, 1<<10 | 13, "btree btree=inodes"},
	} {
		a := FromBPos(c.pos, c.layout)
		if got := a.Text(c.version); got != c.want {
			t.Errorf("%v: %q, want %q", c.pos, got, c.want)
		}
		if back := a.BPos(c.layout); back != c.pos {
			t.Errorf("%v: back to %v", c.pos, back)
		}
	}
	if got, want := Replicas(bp.DataUser, 1, []uint8{1, 0}), FromBPos(bp.Pos{Inode: 0x0204020100010000}, LayoutBigEndian); got != want {
		t.Errorf("Replicas sorts its devices: %v, want %v", got, want)
	}
	if got, want := DevDataType(0, bp.DataSB), FromBPos(bp.Pos{Offset: 256, Snapshot: 3}, LayoutAligned); got != want {
		t.Errorf("DevDataType %v, want %v", got, want)
	}
}

func TestCounters(t *testing.T) {
	tb := Table{}
	a := DevDataType(1, bp.DataUser)
	tb.Add(a, 1, 200, 56)
	tb.Add(a, 1, 256, 0)
	if got := tb[a].String(); got != "2 456 56" {
		t.Errorf("%q", got)
	}
	v := Value([]byte{5, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9})
	if v.N != 2 || v.V[0] != 5 || v.V[1] != 7 {
		t.Errorf("Value: %+v", v)
	}
}

// FuzzPos: any key position and value decodes and prints without panic.
func FuzzPos(f *testing.F) {
	f.Add(uint64(0x0204020100010000), uint64(0), uint32(0), []byte{1, 2, 3})
	f.Add(uint64(0), uint64(256), uint32(3), []byte{})
	f.Fuzz(func(t *testing.T, inode, offset uint64, snap uint32, val []byte) {
		p := bp.Pos{Inode: inode, Offset: offset, Snapshot: snap}
		for _, l := range []Layout{LayoutAligned, LayoutPacked, LayoutBigEndian} {
			a := FromBPos(p, l)
			_ = a.Text(1<<10 | 39)
			_ = a.Text(1<<10 | 9)
			if l != LayoutAligned && a.BPos(l) != p {
				t.Fatalf("layout %d round trip %v", l, p)
			}
		}
		_ = Value(val).String()
	})
}
