// Package accounting reads and recomputes bcachefs disk accounting: the
// counters of the accounting btree (replicas, per-device data types,
// snapshots, btrees, …), as recovery builds them in memory (the btree's
// value plus the newer journal deltas), and the same counters summed from
// what the check reads (pointers and corrected alloc keys), compared as
// check_allocations does (bch2_gc_accounting_done: accounting_mismatch).
package accounting

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"bpcheck/bp"
)

// Accounting key types (disk_accounting_type).
const (
	TypeNrInodes           = 0
	TypePersistentReserved = 1
	TypeReplicas           = 2
	TypeDevDataType        = 3
	TypeCompression        = 4
	TypeSnapshot           = 5
	TypeBtree              = 6
	TypeRebalanceWork      = 7
	TypeInum               = 8
	TypeReconcileWork      = 9
	TypeDevLeaving         = 10
)

var typeNames = [...]string{"nr_inodes", "persistent_reserved", "replicas", "dev_data_type", "compression",
	"snapshot", "btree", "rebalance_work", "inum", "reconcile_work", "dev_leaving"}

// MaxCounters is the most counters an accounting key has.
const MaxCounters = 3

// Pos is an accounting key position as the kernel's disk_accounting_pos
// holds it: type first, then the type's fields.
type Pos [20]byte

// Type is the accounting type.
func (a Pos) Type() uint8 { return a[0] }

// Layout is how an accounting key's position holds the kernel's
// disk_accounting_pos; it depends on the metadata version (LayoutOf).
type Layout uint8

// The layouts of disk_accounting_pos in a key position.
const (
	// LayoutAligned (metadata 1.9, disk_accounting_v2): the position's
	// bytes in memory order (snapshot, offset, inode, little endian),
	// the type in the first byte and the type's fields 4 bytes in (the
	// union after the type was aligned then; the real 1.9 images:
	// dev_data_type of dev 0, sb, is 0:256:3).
	LayoutAligned Layout = iota
	// LayoutPacked (1.10 disk_accounting_v3 to 1.14): memory order as
	// LayoutAligned, but the fields right after the type byte (the
	// union is packed; the real 1.13 images: dev_data_type of dev 0,
	// sb, is 0:0:65539).
	LayoutPacked
	// LayoutBigEndian (from 1.15, disk_accounting_big_endian): the
	// packed bytes in big-endian order (inode, offset, snapshot), so
	// that keys sort by type.
	LayoutBigEndian
)

// LayoutOf returns the position layout of metadata version v.
func LayoutOf(v uint16) Layout {
	switch {
	case v >= bp.VersionDiskAccountingBigEndian:
		return LayoutBigEndian
	case v >= bp.VersionDiskAccountingV3:
		return LayoutPacked
	}
	return LayoutAligned
}

// FromBPos decodes a key position of layout l.
func FromBPos(p bp.Pos, l Layout) Pos {
	var a Pos
	if l == LayoutBigEndian {
		binary.BigEndian.PutUint64(a[0:], p.Inode)
		binary.BigEndian.PutUint64(a[8:], p.Offset)
		binary.BigEndian.PutUint32(a[16:], p.Snapshot)
		return a
	}
	// The type is the low byte of the snapshot field.
	var raw [20]byte
	binary.LittleEndian.PutUint32(raw[0:], p.Snapshot)
	binary.LittleEndian.PutUint64(raw[4:], p.Offset)
	binary.LittleEndian.PutUint64(raw[12:], p.Inode)
	if l == LayoutPacked {
		return Pos(raw)
	}
	a[0] = raw[0]
	copy(a[1:], raw[4:])
	return a
}

// BPos is the key position of a in layout l (the inverse of FromBPos).
func (a Pos) BPos(l Layout) bp.Pos {
	if l == LayoutBigEndian {
		return bp.Pos{Inode: binary.BigEndian.Uint64(a[0:]), Offset: binary.BigEndian.Uint64(a[8:]), Snapshot: binary.BigEndian.Uint32(a[16:])}
	}
	var raw [20]byte
	if l == LayoutPacked {
		raw = a
	} else {
		raw[0] = a[0]
		copy(raw[4:], a[1:17])
	}
	return bp.Pos{Snapshot: binary.LittleEndian.Uint32(raw[0:]), Offset: binary.LittleEndian.Uint64(raw[4:]), Inode: binary.LittleEndian.Uint64(raw[12:])}
}

// Replicas returns the position of a replicas entry: data type, the
// replicas required, and the devices (sorted here, as the kernel sorts
// them).
func Replicas(dataType bp.DataType, nrRequired uint8, devs []uint8) Pos {
	var a Pos
	a[0] = TypeReplicas
	a[1] = uint8(dataType)
	n := min(len(devs), len(a)-4)
	a[2] = uint8(n)
	a[3] = nrRequired
	copy(a[4:], devs[:n])
	slices.Sort(a[4 : 4+n])
	return a
}

// DevDataType returns the position of a device's data type counters.
func DevDataType(dev uint8, dataType bp.DataType) Pos {
	return Pos{TypeDevDataType, dev, uint8(dataType)}
}

// PersistentReserved returns the position of the reservations of nr
// replicas.
func PersistentReserved(nr uint8) Pos { return Pos{TypePersistentReserved, nr} }

// Compression returns the position of a compression type's counters.
func Compression(ctype uint8) Pos { return Pos{TypeCompression, ctype} }

// compressionNames are the compression types as fsck prints them.
var compressionNames = [...]string{"none", "lz4_old", "gzip", "lz4", "zstd", "incompressible"}

// Snapshot returns the position of a snapshot's counter (before 1.39:
// id only).
func Snapshot(id uint32) Pos {
	var a Pos
	a[0] = TypeSnapshot
	binary.LittleEndian.PutUint32(a[1:], id)
	return a
}

// SnapshotBtree returns the position of the counters of a btree in a
// snapshot (1.39: keys, key bytes, sectors).
func SnapshotBtree(id uint32, btree bp.BtreeID) Pos {
	a := Snapshot(id)
	binary.LittleEndian.PutUint32(a[5:], uint32(btree))
	return a
}

// SnapshotBtree is the btree field of a 1.39 snapshot position.
func (a Pos) SnapshotBtree() bp.BtreeID { return bp.BtreeID(binary.LittleEndian.Uint32(a[5:])) }

// Btree returns the position of a btree's counters.
func Btree(id bp.BtreeID) Pos {
	var a Pos
	a[0] = TypeBtree
	binary.LittleEndian.PutUint32(a[1:], uint32(id))
	return a
}

// Text renders the key as the fsck prints it after "accounting mismatch
// for " (bch2_accounting_key_to_text), e.g. "replicas user: 1/2 [0 1]",
// "dev_data_type dev=0 data_type=user", "snapshot id=4294967295".
func (a Pos) Text(version uint16) string {
	var b strings.Builder
	if int(a[0]) < len(typeNames) {
		b.WriteString(typeNames[a[0]])
	} else {
		fmt.Fprintf(&b, "(unknown type %d)", a[0])
		return b.String()
	}
	b.WriteByte(' ')
	switch a[0] {
	case TypePersistentReserved:
		fmt.Fprintf(&b, "replicas=%d", a[1])
	case TypeReplicas:
		n := int(min(a[2], 16))
		fmt.Fprintf(&b, "%s: %d/%d [", bp.DataType(a[1]), a[3], a[2])
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprint(&b, a[4+i])
		}
		b.WriteByte(']')
	case TypeDevDataType:
		fmt.Fprintf(&b, "dev=%d data_type=%s", a[1], bp.DataType(a[2]))
	case TypeCompression:
		if int(a[1]) < len(compressionNames) {
			b.WriteString(compressionNames[a[1]])
		} else {
			fmt.Fprintf(&b, "(unknown compression type %d)", a[1])
		}
	case TypeSnapshot:
		fmt.Fprintf(&b, "id=%d", binary.LittleEndian.Uint32(a[1:]))
		if version >= bp.VersionPerDevFragmentationLRU {
			fmt.Fprintf(&b, " btree=%s", bp.BtreeID(binary.LittleEndian.Uint32(a[5:])).Name(version))
		}
	case TypeBtree:
		fmt.Fprintf(&b, "btree=%s", bp.BtreeID(binary.LittleEndian.Uint32(a[1:])).Name(version))
	case TypeInum:
		fmt.Fprintf(&b, "inum=%d", binary.LittleEndian.Uint64(a[1:]))
	}
	return strings.TrimSpace(b.String())
}

// Counters are the values of one accounting key.
type Counters struct {
	N int
	V [MaxCounters]int64
}

// String prints the counters as the fsck does ("540 138016 224").
func (c Counters) String() string {
	parts := make([]string, c.N)
	for i := range parts {
		parts[i] = fmt.Sprint(uint64(c.V[i]))
	}
	return strings.Join(parts, " ")
}

// Table maps accounting positions to counters.
type Table map[Pos]*Counters

// Add adds v to the counters of a (n of them).
func (t Table) Add(a Pos, v ...int64) {
	c := t[a]
	if c == nil {
		c = &Counters{N: min(len(v), MaxCounters)}
		t[a] = c
	}
	for i := range min(len(v), c.N) {
		c.V[i] += v[i]
	}
}

// Merge adds every counter of o to t.
func (t Table) Merge(o Table) {
	for a, c := range o {
		t.Add(a, c.V[:c.N]...)
	}
}

// Value decodes an accounting key's value: its counters (u64 each, at
// most MaxCounters).
func Value(val []byte) Counters {
	var c Counters
	for c.N < MaxCounters && len(val) >= 8 {
		c.V[c.N] = int64(binary.LittleEndian.Uint64(val))
		c.N++
		val = val[8:]
	}
	return c
}
