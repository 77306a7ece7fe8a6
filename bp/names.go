package bp

import "strconv"

// KeyType is a bcachefs key type (enum bch_bkey_type).
type KeyType uint8

// Key types that bpcheck interprets.
const (
	KeyDeleted        KeyType = 0
	KeyWhiteout       KeyType = 1
	KeyError          KeyType = 2
	KeyCookie         KeyType = 3
	KeyHashWhiteout   KeyType = 4
	KeyBtreePtr       KeyType = 5
	KeyExtent         KeyType = 6
	KeyReservation    KeyType = 7
	KeyInode          KeyType = 8
	KeyAlloc          KeyType = 12
	KeyStripe         KeyType = 14
	KeyReflinkP       KeyType = 15
	KeyReflinkV       KeyType = 16
	KeyInlineData     KeyType = 17
	KeyBtreePtrV2     KeyType = 18
	KeyAllocV2        KeyType = 20
	KeyAllocV3        KeyType = 24
	KeySet            KeyType = 25
	KeyAllocV4        KeyType = 27
	KeyBackpointer    KeyType = 28
	KeyBucketGens     KeyType = 30
	KeyAccounting     KeyType = 34
	KeyExtentWhiteout KeyType = 36
)

var keyTypeNames = [...]string{
	"deleted", "whiteout", "error", "cookie", "hash_whiteout", "btree_ptr",
	"extent", "reservation", "inode", "inode_generation", "dirent", "xattr",
	"alloc", "quota", "stripe", "reflink_p", "reflink_v", "inline_data",
	"btree_ptr_v2", "indirect_inline_data", "alloc_v2", "subvolume",
	"snapshot", "inode_v2", "alloc_v3", "set", "lru", "alloc_v4",
	"backpointer", "inode_v3", "bucket_gens", "snapshot_tree",
	"logged_op_truncate", "logged_op_finsert", "accounting",
	"inode_alloc_cursor", "extent_whiteout", "logged_op_stripe_update",
	"damage",
}

// String returns the bcachefs name of the key type.
func (t KeyType) String() string {
	if int(t) < len(keyTypeNames) {
		return keyTypeNames[t]
	}
	return "(unknown type " + strconv.Itoa(int(t)) + ")"
}

// HasPtrs reports whether keys of this type carry device pointers.
func (t KeyType) HasPtrs() bool {
	switch t {
	case KeyBtreePtr, KeyBtreePtrV2, KeyExtent, KeyReflinkV, KeyStripe:
		return true
	}
	return false
}

// BtreeID identifies a btree (enum btree_id).
type BtreeID uint8

// Btree ids that bpcheck treats specially.
const (
	BtreeExtents            BtreeID = 0
	BtreeInodes             BtreeID = 1
	BtreeAlloc              BtreeID = 4
	BtreeStripes            BtreeID = 6
	BtreeReflink            BtreeID = 7
	BtreeFreespace          BtreeID = 11
	BtreeBackpointers       BtreeID = 13
	BtreeBucketGens         BtreeID = 14
	BtreeStripeBackpointers BtreeID = 27
)

// MaxBtreeID is the largest btree id a root may have on disk.
const MaxBtreeID = 63

// btreeNames lists btree names by id for format B (newest); format A named
// id 18 rebalance_work.
var btreeNames = [...]string{
	"extents", "inodes", "dirents", "xattrs", "alloc", "quotas", "stripes",
	"reflink", "subvolumes", "snapshots", "lru", "freespace", "need_discard",
	"backpointers", "bucket_gens", "snapshot_trees", "deleted_inodes",
	"logged_ops", "reconcile_work", "subvolume_children", "accounting",
	"reconcile_hipri", "reconcile_pending", "reconcile_scan",
	"reconcile_work_phys", "reconcile_hipri_phys", "bucket_to_stripe",
	"stripe_backpointers", "damage",
}

// Name returns the btree's name as the given metadata version's tools print
// it.
func (id BtreeID) Name(version uint16) string {
	if id == 18 && version < VersionBackpointerBucketGen {
		return "rebalance_work"
	}
	if int(id) < len(btreeNames) {
		return btreeNames[id]
	}
	return "(unknown btree " + strconv.Itoa(int(id)) + ")"
}

// String returns the btree's name in the newest naming.
func (id BtreeID) String() string { return id.Name(^uint16(0)) }

// ParseBtreeID maps a btree name (either naming) to its id.
func ParseBtreeID(name string) (BtreeID, bool) {
	if name == "rebalance_work" {
		return 18, true
	}
	for i, n := range btreeNames {
		if n == name {
			return BtreeID(i), true
		}
	}
	if v, err := strconv.Atoi(name); err == nil && v >= 0 && v <= MaxBtreeID {
		return BtreeID(v), true
	}
	return 0, false
}

// HasDataPtrs reports whether leaf keys of the btree carry pointers to
// data buckets, which count in the buckets' alloc keys: extents, reflink
// and stripes. Extent and reflink pointers need backpointers in every
// version; stripe blocks from 1.22 (VersionStripeBackpointers).
func (id BtreeID) HasDataPtrs(version uint16) bool {
	switch id {
	case BtreeExtents, BtreeReflink, BtreeStripes:
		return true
	}
	return false
}

// IsExtents reports whether the btree has extent semantics (positions are
// end offsets).
func (id BtreeID) IsExtents() bool {
	return id == BtreeExtents || id == BtreeReflink || id == BtreeFreespace
}

// DataType is a bucket or backpointer data type (enum bch_data_type).
type DataType uint8

// Data types.
const (
	DataFree        DataType = 0
	DataSB          DataType = 1
	DataJournal     DataType = 2
	DataBtree       DataType = 3
	DataUser        DataType = 4
	DataCached      DataType = 5
	DataParity      DataType = 6
	DataStripe      DataType = 7
	DataNeedGCGens  DataType = 8
	DataNeedDiscard DataType = 9
	DataUnstriped   DataType = 10
	DataMultiple    DataType = 11
)

var dataTypeNames = [...]string{
	"free", "sb", "journal", "btree", "user", "cached", "parity", "stripe",
	"need_gc_gens", "need_discard", "unstriped", "multiple",
}

// String returns the bcachefs name of the data type.
func (d DataType) String() string {
	if int(d) < len(dataTypeNames) {
		return dataTypeNames[d]
	}
	return "(invalid data type " + strconv.Itoa(int(d)) + ")"
}

// Metadata versions that change what bpcheck decodes.
const (
	VersionMin                 uint16 = 9
	VersionBackpointers        uint16 = 22
	VersionNoBpsInAllocKeys    uint16 = 28
	Version1_0                 uint16 = 1 << 10
	VersionBucketStripeSectors uint16 = 1<<10 | 8
	// VersionDiskAccountingV3 (1.10): accounting key positions hold
	// their fields right after the type byte (the union is packed).
	VersionDiskAccountingV3 uint16 = 1<<10 | 10
	// VersionInodeHasChildSnapshots (1.13) is the version bcachefs-tools
	// v1.13.0 and Linux 6.12 write; their fsck no longer keeps a
	// fragmentation LRU index in alloc keys (era v1.13.0).
	VersionInodeHasChildSnapshots uint16 = 1<<10 | 13
	VersionBackpointerBucketGen   uint16 = 1<<10 | 14
	// VersionDiskAccountingBigEndian: accounting key positions hold
	// their fields in big-endian byte order (1.15).
	VersionDiskAccountingBigEndian uint16 = 1<<10 | 15
	// VersionBtreeNodeAccounting: btree accounting counts nodes and
	// interior nodes beside sectors (1.31).
	VersionBtreeNodeAccounting uint16 = 1<<10 | 31
	// VersionSBFieldExtentTypeU64s (1.32): the superblock records the
	// size of each extent entry type; from it to 1.34 the tools print
	// the v1.33 `list` text (listfmt.DialectV133).
	VersionSBFieldExtentTypeU64s uint16 = 1<<10 | 32
	// VersionReconcile (1.33): rebalance becomes reconcile, with its
	// reconcile_work accounting keys.
	VersionReconcile          uint16 = 1<<10 | 33
	VersionCachedBackpointers uint16 = 1<<10 | 21
	VersionStripeBackpointers uint16 = 1<<10 | 22
	// VersionExtentFlags (1.25): from the tools that write it (v1.25.1
	// on; v1.25.0 still the v1.20 text) backpointers print their data type.
	VersionExtentFlags uint16 = 1<<10 | 25
	// VersionInodeHasCaseInsensitive (1.28) is the newest version the
	// bcachefs-tools v1.25 and the last mainline kernel (6.16) write.
	VersionInodeHasCaseInsensitive uint16 = 1<<10 | 28
	VersionBucketStripeIndex       uint16 = 1<<10 | 35
	VersionErasureCoding           uint16 = 1<<10 | 37
	// VersionNeedDiscardByJournalSeq (1.38) also makes an alloc key's
	// data type "multiple" sticky: a bucket holding data of two types is
	// marked so instead of being an error.
	VersionNeedDiscardByJournalSeq uint16 = 1<<10 | 38
	// VersionPerDevFragmentationLRU (1.39) is the newest version bpcheck
	// knows (bcachefs-tools v1.39); newer filesystems are refused unless
	// the user allows them.
	VersionPerDevFragmentationLRU uint16 = 1<<10 | 39
	// VersionKnown is the newest metadata version bpcheck decodes and
	// judges.
	VersionKnown = VersionPerDevFragmentationLRU
)

// VersionString formats a metadata version as "major.minor".
func VersionString(v uint16) string {
	return strconv.Itoa(int(v>>10)) + "." + strconv.Itoa(int(v&1023))
}
