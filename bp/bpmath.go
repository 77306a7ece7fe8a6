package bp

import "encoding/binary"

// ShiftA is the fixed backpointer sub-sector shift of format A
// (MAX_EXTENT_COMPRESS_RATIO_SHIFT).
const ShiftA = 10

// Geometry is what the backpointer math needs to know about a filesystem.
type Geometry struct {
	Version          uint16 // superblock metadata version
	Shift            uint   // extent_bp_shift (10 in format A)
	BtreeNodeSectors uint32
	// BucketSize returns the bucket size in sectors of member dev and
	// whether that member exists.
	BucketSize func(dev uint8) (uint32, bool)
	// Rotational reports the member's ROTATIONAL flag (format B only).
	Rotational func(dev uint8) bool
}

// FormatB reports whether backpointer values use the format B layout.
func (g *Geometry) FormatB() bool { return g.Version >= VersionBackpointerBucketGen }

// BPPos returns the backpointer key position for a pointer (format A and
// B, non-stripe keys).
func (g *Geometry) BPPos(d *DecodedPtr) Pos {
	p := Pos{Inode: uint64(d.Ptr.Dev), Offset: d.Ptr.Offset<<g.Shift + uint64(d.CRC.Offset)}
	if g.Version >= VersionErasureCoding && d.Ptr.Dev == 0xff && d.HasStripe {
		p.Inode = d.Stripe.Idx<<8 | uint64(d.Stripe.Block)
	}
	return p
}

// BucketOfBP returns the device and bucket a backpointer key position
// belongs to, given the device's bucket size in sectors.
func (g *Geometry) BucketOfBP(p Pos, bucketSize uint32) (dev uint64, bucket uint64) {
	if bucketSize == 0 {
		return p.Inode, 0
	}
	return p.Inode, (p.Offset >> g.Shift) / uint64(bucketSize)
}

// ReconcilePhys returns the RECONCILE_PHYS work id of an extent value's
// entries (0 none, 1 hipri, 2 normal), as bcachefs format B derives it from
// the key's reconcile entry.
func ReconcilePhys(entries []byte, extra []uint8) uint32 {
	// The entries are walked as EntryIter would, without building an
	// Entry per step: this runs once per extent.
	for off := 0; off+8 <= len(entries); {
		w := binary.LittleEndian.Uint64(entries[off:])
		if w == 0 {
			return 0
		}
		t, n := EntrySize(w, extra)
		if n == 0 || off+8*n > len(entries) {
			return 0
		}
		if t == EntryReconcile {
			return ReconcileWork(w)
		}
		off += 8 * n
	}
	return 0
}

// ReconcileWork returns the RECONCILE_PHYS work id that a reconcile entry
// (first word w) gives its key's backpointers: 0 none, 1 hipri, 2 normal.
func ReconcileWork(w uint64) uint32 {
	needRB := w >> 17 & 0x1f
	switch {
	case needRB == 0, w>>16&1 != 0:
		return 0
	case w>>15&1 != 0:
		return 1
	}
	return 2
}

// ExpectedBP computes the backpointer that pointer d of key k needs: its key
// position and value. level is the level the backpointer records (0 for
// data pointers, node level + 1 for btree node pointers); reconcile is the
// key's RECONCILE_PHYS work id (format B, level 0). ok is false when the
// pointer needs no backpointer (format A cached pointers, stale cached
// pointers are the caller's to judge).
func (g *Geometry) ExpectedBP(btree BtreeID, level uint8, k *Key, d *DecodedPtr, reconcile uint32) (Pos, Backpointer) {
	var bp Backpointer
	pos := g.ExpectedBPInto(&bp, btree, level, k, d, reconcile)
	return pos, bp
}

// ExpectedBPInto is ExpectedBP storing the value in *bp, for hot loops.
func (g *Geometry) ExpectedBPInto(bp *Backpointer, btree BtreeID, level uint8, k *Key, d *DecodedPtr, reconcile uint32) Pos {
	sectors := k.Size
	if level > 0 {
		sectors = g.BtreeNodeSectors
	}
	// Field by field: a composite literal is built on the stack and
	// copied with wide loads that stall on its narrow stores.
	bp.BtreeID = btree
	bp.Level = level
	bp.BucketOffset = 0
	bp.BucketGen = 0
	bp.Flags = 0
	bp.BucketLen = d.DiskSectors(sectors)
	bp.Pos.Inode, bp.Pos.Offset, bp.Pos.Snapshot = k.Pos.Inode, k.Pos.Offset, k.Pos.Snapshot
	switch {
	case k.Type == KeyBtreePtr || k.Type == KeyBtreePtrV2:
		bp.DataType = DataBtree
	case d.HasStripe:
		bp.DataType = DataStripe
	case d.Ptr.Cached && g.FormatB():
		bp.DataType = DataCached
	default:
		bp.DataType = DataUser
	}
	pos := g.BPPos(d)
	if g.FormatB() {
		bp.BucketGen = d.Ptr.Gen
		if level == 0 && g.Rotational != nil && g.Rotational(d.Ptr.Dev) {
			bp.Flags |= reconcile & BPFlagReconcileMask
		}
		if d.HasStripe && g.Version >= VersionErasureCoding {
			bp.Flags |= BPFlagErasureCoded
			if d.Ptr.Dev == 0xff {
				bp.Flags |= BPFlagStripePtr
			}
		}
	} else if bs, ok := g.BucketSize(d.Ptr.Dev); ok && bs != 0 {
		bp.BucketOffset = (d.Ptr.Offset%uint64(bs))<<ShiftA + uint64(d.CRC.Offset)
	}
	return pos
}

// NeedsBP reports whether pointer d of a key in a data btree needs a
// backpointer under the filesystem's version, ignoring staleness: format A
// skips cached pointers; format B before 1.21 does too.
func (g *Geometry) NeedsBP(d *DecodedPtr) bool {
	if d.Ptr.Cached && g.Version < VersionCachedBackpointers {
		return false
	}
	if d.Ptr.Dev == 0xff {
		return g.FormatB() && d.HasStripe
	}
	return true
}

// OldLayoutB reports whether a backpointer value read from a format B
// filesystem still has the format A layout: bytes 3..7, where format B
// keeps bucket_gen and flags, hold the 40-bit bucket_offset that format A
// stored, and it equals bucketOffset, the offset the key's position gives
// (position - bucket start << ShiftA). Filesystems upgraded to 1.14 from
// older metadata can keep such values (the upgrade of bcachefs-tools v1.20
// to v1.25 left them). A zero offset reads the same in both layouts and is
// never reported.
func OldLayoutB(val []byte, bucketOffset uint64) bool {
	if len(val) < BackpointerBytes || bucketOffset == 0 || bucketOffset >= 1<<40 {
		return false
	}
	stored := uint64(val[3]) | uint64(val[4])<<8 | uint64(val[5])<<16 | uint64(val[6])<<24 | uint64(val[7])<<32
	return stored == bucketOffset
}
