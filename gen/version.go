package gen

import (
	"fmt"
	"strings"

	"bpcheck/bp"
)

// Metadata versions the generator writes (Params.MetadataVersion), each in
// the format of the bcachefs-tools release of its era.
const (
	// MetadataVersion128 is metadata 1.28 (inode_has_case_insensitive),
	// as bcachefs-tools v1.25.3 writes it: extent_bp_shift 10, 144-byte
	// members and a members_v1 copy, no extent_type_u64s, alloc keys
	// naming their stripe, one fragmentation lru for all devices.
	MetadataVersion128 = "1.28"
	// MetadataVersion136 is metadata 1.36 (no_sb_user_data_replicas), as
	// bcachefs-tools v1.36.1 writes it; the default.
	MetadataVersion136 = "1.36"
	// MetadataVersion139 is metadata 1.39 (per_dev_fragmentation_lru), as
	// bcachefs-tools v1.39.2 writes it: a fragmentation lru per device,
	// erasure-coded backpointers flagged, per-btree snapshot accounting.
	MetadataVersion139 = "1.39"
	// DefaultMetadataVersion is the version written when
	// Params.MetadataVersion is empty.
	DefaultMetadataVersion = MetadataVersion136
)

// MetadataVersions lists the versions the generator writes, oldest first.
var MetadataVersions = []string{MetadataVersion128, MetadataVersion136, MetadataVersion139}

// sbFieldKind names a superblock field the generator writes; each
// version lists them in the order its real images have them.
type sbFieldKind int

const (
	sfMembersV2 sbFieldKind = iota
	sfMembersV1
	sfClean
	sfCounters
	sfErrors
	sfErrorsV2
	sfExt
	sfExtentTypeU64s
	sfJournalV2
	sfDowngrade
	sfReplicas
)

// fieldErrorsV2 is the errors_v2 superblock field's type (1.39).
const fieldErrorsV2 = 17

// format is what one metadata version's filesystems look like, as far as
// the generator's output differs between versions.
type format struct {
	name    string
	version uint16
	// shift is extent_bp_shift: backpointer positions are ptr.offset <<
	// shift (plus the crc offset, always 0 here).
	shift uint
	// Format limits and defaults (bcachefs format of the era).
	minNBuckets   int64 // BCH_MIN_NR_NBUCKETS
	maxNodeSize   int64
	minNodeSize   int64 // the node must be larger than a block from 1.39
	encodedExtMax int64 // encoded_extent_max default
	pickBucket    func(p Params, f *format) int64

	// Superblock.
	fields       []sbFieldKind
	memberBytes  int
	memberFlags  uint64
	memberName   bool // device_name in the member (1.36+)
	cleanU64s    int  // the clean section's size on the real images
	countersU64s int
	extBytes     int    // payload of the ext field
	extFlags0    uint64 // ext.flags0 (1.39: option defaults)
	downgrade    []byte // the downgrade field (header included)
	flags        func(g *generator) [7]uint64
	features     uint64
	compat       uint64
	// sbReplicas reports whether replica sets of a data type, with
	// nr_required devices required, are kept in the superblock's
	// replicas section.
	sbReplicas func(dt bp.DataType, required uint8) bool

	// Journal.
	jsetFlags   uint32 // csum type, has_overwrites (1.39)
	rewindLimit bool   // a rewind_limit entry after btree_keys (1.39)

	// Btrees.
	lostFound        uint64 // lost+found's inode number
	accBtreeCounters int    // counters of a btree accounting key
	// accSnapshotPerBtree: snapshot accounting keyed by (snapshot,
	// btree) with nr_keys, key bytes and sectors (1.39), else by
	// snapshot with sectors.
	accSnapshotPerBtree bool
	// allocStripeIdx: alloc keys of stripe blocks name the stripe and
	// its redundancy (before 1.35), else hold a stripe refcount.
	allocStripeIdx bool
	bucketToStripe bool // the bucket_to_stripe btree (1.36+)
	perDevFragLRU  bool // fragmentation lru id 8192 + dev (1.39)
	// ecBPFlags: backpointers of erasure-coded pointers carry
	// ERASURE_CODED (1.37+).
	ecBPFlags bool
	// stateCodewords: snapshots and subvolumes carry a state codeword
	// (1.39).
	stateCodewords bool
	// inodeOptsFlag: an inode with an option set has
	// BCH_INODE_has_inode_opts (1.39).
	inodeOptsFlag bool
	// ecInodeReplicas: erasure-coded files also carry data_replicas 2,
	// since from 1.39 erasure_code is ignored where data_replicas is 1
	// (bch2_io_opts_fixups) and the fsck would want their extents
	// reconciled.
	ecInodeReplicas bool
	// inodeCursor is the offset of the inode_alloc_cursor in logged_ops
	// (inode 1): 0 before 1.39; from 1.39 the cursor of inode numbers
	// beyond 32 bits is shard + 1 (shard 0: no shard bits are set).
	inodeCursor uint64
}

var formats = map[string]*format{
	MetadataVersion128: format128,
	MetadataVersion136: format136,
	MetadataVersion139: format139,
}

// formatOf returns the format of a Params.MetadataVersion ("" is the
// default), or nil if the version is not one the generator writes.
func formatOf(v string) *format {
	if v == "" {
		v = DefaultMetadataVersion
	}
	return formats[v]
}

// mustFormat is formatFor for validated parameters.
func mustFormat(p *Params) *format {
	f := formatFor(p)
	if f == nil {
		panic(fmt.Sprintf("gen: metadata version %q", p.MetadataVersion))
	}
	return f
}

func checkVersion(v string) error {
	if formatOf(v) == nil {
		return fmt.Errorf("metadata version %q: must be one of %s", v, strings.Join(MetadataVersions, ", "))
	}
	return nil
}

// format136 is what the generator wrote before it knew other versions:
// bcachefs-tools v1.36.1 (see sb.go).
var format136 = &format{
	name:          MetadataVersion136,
	version:       1<<10 | 36,
	shift:         16,
	minNBuckets:   512,
	maxNodeSize:   1 << 20,
	minNodeSize:   blockSectors * sectorSize,
	encodedExtMax: 256 << 10,
	pickBucket:    pickBucketSize136,
	fields: []sbFieldKind{sfMembersV2, sfClean, sfCounters, sfErrors, sfExt, sfExtentTypeU64s,
		sfJournalV2, sfDowngrade, sfReplicas},
	memberBytes:  224,
	memberFlags:  0x3600e4000,
	memberName:   true,
	cleanU64s:    468,
	countersU64s: 131,
	extBytes:     88,
	downgrade:    downgradeField,
	flags:        sbFlags136,
	features:     0xfba80,
	compat:       0x1f,
	// User data and btree nodes; not the journal, nor (the generator
	// never wrote them) the sets of erasure-coded data.
	sbReplicas: func(dt bp.DataType, required uint8) bool {
		return (dt == bp.DataUser || dt == bp.DataBtree) && required == 1
	},
	jsetFlags:        1, // crc32c_nonzero
	lostFound:        1 << 31,
	accBtreeCounters: 3,
	bucketToStripe:   true,
}

// format128: bcachefs-tools v1.25.3, metadata 1.28.
var format128 = &format{
	name:          MetadataVersion128,
	version:       1<<10 | 28,
	shift:         bp.ShiftA, // no extent_bp_shift field yet: 10
	minNBuckets:   64,
	maxNodeSize:   1 << 20,
	minNodeSize:   blockSectors * sectorSize,
	encodedExtMax: 64 << 10,
	pickBucket:    pickBucketSize128,
	fields: []sbFieldKind{sfMembersV2, sfMembersV1, sfCounters, sfErrors, sfExt, sfJournalV2,
		sfDowngrade, sfReplicas, sfClean},
	memberBytes:  144,
	memberFlags:  0x600e4000, // no rotational flags yet
	cleanU64s:    324,
	countersU64s: 93,
	extBytes:     88,
	downgrade:    mustHex("160000000e0000000904200000000000000000000000000000000c004c004d004e00440045004600470048004a0049004b0050000a04200000000000000000000000000000000d004c004d004e00440045004600470048004a0049004b00110150000c042000000000000000000000000000000003001001160115010e040040000000000000000000000000000003007d00800093000f04200000000000000000000000000000000300100116011501"),
	flags:        sbFlags128,
	features:     0xf8a80,
	compat:       0xf,
	// Every set: journal, btree, user, and for erasure coding parity
	// and user with nr_required = the stripe's data blocks.
	sbReplicas: func(bp.DataType, uint8) bool { return true },
	jsetFlags:  1,
	// inodes_32bit is on by default: lost+found is the inode after the
	// root.
	lostFound:        rootIno + 1,
	accBtreeCounters: 1,
	allocStripeIdx:   true,
}

// format139: bcachefs-tools v1.39.2, metadata 1.39.
var format139 = &format{
	name:          MetadataVersion139,
	version:       1<<10 | 39,
	shift:         16,
	minNBuckets:   512,
	maxNodeSize:   1 << 19,
	minNodeSize:   2 * blockSectors * sectorSize,
	encodedExtMax: 256 << 10,
	pickBucket:    pickBucketSize139,
	fields: []sbFieldKind{sfExt, sfMembersV2, sfClean, sfCounters, sfExtentTypeU64s, sfErrorsV2,
		sfDowngrade, sfJournalV2, sfReplicas},
	memberBytes:  328,
	memberFlags:  0x3600e4000,
	memberName:   true,
	cleanU64s:    620,
	countersU64s: 137,
	extBytes:     112,
	// dev_readahead 4096, ec_stripe_buf_limit 5, scrub_max_rewind_secs
	// 10, discard_buffer 4, btree_cache_shrinker_seeks 2: the option
	// defaults as the real images store them.
	extFlags0: 0x0000090028501000,
	downgrade: mustHex("080000000e00000026040004000000000000000000000000000003007c0072007b00270420880000000000000000000000000000030083006900100100000000"),
	flags:     sbFlags139,
	features:  0xfba80,
	compat:    0x1f,
	// From 1.36 incompat, replica sets of data above btree nodes are not
	// kept in the superblock; the real images list btree sets only.
	sbReplicas:          func(dt bp.DataType, _ uint8) bool { return dt == bp.DataBtree },
	jsetFlags:           1 | 1<<6, // crc32c_nonzero, has_overwrites
	rewindLimit:         true,
	lostFound:           1 << 31,
	accBtreeCounters:    3,
	accSnapshotPerBtree: true,
	bucketToStripe:      true,
	perDevFragLRU:       true,
	ecBPFlags:           true,
	stateCodewords:      true,
	inodeOptsFlag:       true,
	ecInodeReplicas:     true,
	inodeCursor:         1,
}

// sbFlags136 are the flag words of the v1.36.1 images, with this
// filesystem's node size and replicas.
func sbFlags136(g *generator) [7]uint64 {
	f := sbFlagsCommon(g)
	f[1] = 0x1124002
	f[3] = 0xfa00000000
	incompat := uint64(1<<10 | 33)
	if len(g.devs) > 1 {
		f[3] |= 1 << 63
		incompat = uint64(g.f.version)
	}
	v := uint64(g.f.version)
	f[5] = v | 30<<16 | incompat<<32 | v<<48
	f[6] = 0xc1e0 | uint64(g.f.shift)<<40
	return f
}

// sbFlags128 are the flag words of the v1.25.3 images: inodes_32bit and
// inodes_use_key_cache on, encoded_extent_max 64 KiB, no version_incompat,
// no extent_bp_shift field.
func sbFlags128(g *generator) [7]uint64 {
	f := sbFlagsCommon(g)
	f[1] = 0x111c102
	f[3] = 0xfa20000000
	if len(g.devs) > 1 {
		f[3] |= 1 << 63
	}
	v := uint64(g.f.version)
	f[5] = v | 30<<16 | v<<48
	f[6] = 0xc1e0
	return f
}

// sbFlags139 are the flag words of the v1.39.2 images: version_incompat
// 1.36 whatever the number of devices.
func sbFlags139(g *generator) [7]uint64 {
	f := sbFlagsCommon(g)
	f[1] = 0x1124002
	f[3] = 0xfa00000000
	if len(g.devs) > 1 {
		f[3] |= 1 << 63
	}
	v := uint64(g.f.version)
	f[5] = v | 30<<16 | (1<<10|36)<<32 | v<<48
	f[6] = 0xc1e0 | uint64(g.f.shift)<<40
	return f
}

// sbFlagsCommon fills flags[0] (the same in every version: initialized,
// clean, crc32c_nonzero metadata checksums, node size, gc reserve,
// checksum options, replicas) and flags[4].
func sbFlagsCommon(g *generator) [7]uint64 {
	r := uint64(g.p.Replicas)
	var f [7]uint64
	f[0] = 1 | 1<<1 | 1<<2 | 1<<8 | g.nodeSectors<<12 | 8<<28 |
		1<<40 | 1<<44 | r<<48 | r<<52 | 1<<56 | 1<<63
	f[4] = 0x100000064
	return f
}

// pickBucketSize136 follows bch2_pick_bucket_size and
// dev_bucket_size_clamp of bcachefs-tools v1.36.1, without the term that
// depends on the RAM of the machine formatting: at least 4 ×
// encoded_extent_max, larger for large filesystems (up to 2 MiB at 2
// TiB), at most 1/2048 of the device, and raised towards 64 KiB while the
// device keeps 512 buckets.
func pickBucketSize136(p Params, f *format) int64 {
	b := pickFSBucket(p, f, 0)
	maxSize := roundDownPow2(p.DeviceSize / (f.minNBuckets * 4))
	if p.BtreeNodeSize != 0 {
		maxSize = max(maxSize, p.BtreeNodeSize)
	}
	b = min(b, maxSize)
	for b < 64<<10 && p.DeviceSize/(b*2) >= f.minNBuckets {
		b *= 2
	}
	return max(b, blockSectors*sectorSize)
}

// pickBucketSize128 follows bch2_pick_bucket_size of bcachefs-tools
// v1.25.3 (without the RAM term): the filesystem's size capped per
// device at 1/256 of the device (dev_max_bucket_size, 64 buckets at
// least).
func pickBucketSize128(p Params, f *format) int64 {
	b := pickFSBucket(p, f, 0)
	b = min(b, roundDownPow2(p.DeviceSize/(f.minNBuckets*4)))
	return max(b, blockSectors*sectorSize)
}

// pickBucketSize139 follows pick_bucket_size and dev_bucket_size_clamp
// of bcachefs-tools v1.39.2 (without the RAM term): at least 256 KiB and
// 4 × encoded_extent_max, capped per device at 1/2048 of it, raised
// towards encoded_extent_max within that cap.
func pickBucketSize139(p Params, f *format) int64 {
	b := pickFSBucket(p, f, 256<<10)
	maxSize := roundDownPow2(p.DeviceSize / (f.minNBuckets * 4))
	if p.BtreeNodeSize != 0 {
		maxSize = max(maxSize, p.BtreeNodeSize)
	}
	b = min(b, maxSize)
	for b < f.encodedExtMax && b < maxSize {
		b *= 2
	}
	return max(b, blockSectors*sectorSize)
}

// pickFSBucket is the filesystem-wide bucket size all versions start
// from: the block or node size, floor, 4 × encoded_extent_max, and
// total size / 1 MiB up to 2 MiB, rounded up to a power of two.
func pickFSBucket(p Params, f *format, floor int64) int64 {
	total := p.DeviceSize * int64(max(p.Devices, 1))
	b := int64(blockSectors * sectorSize)
	if p.BtreeNodeSize != 0 {
		b = max(b, p.BtreeNodeSize)
	}
	b = max(b, floor)
	b = max(b, 4*f.encodedExtMax)
	b = max(b, min(2<<20, total/(1<<20)))
	return roundUpPow2(b)
}
