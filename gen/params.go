package gen

import (
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"strings"
)

// Params describe the filesystem to generate. Zero fields take the
// defaults of bcachefs format (bucket and btree node size) or of the
// generator (the rest); see WithDefaults.
type Params struct {
	// Devices is the number of member devices (default 1).
	Devices int `json:"devices"`
	// DeviceSize is the size of every device in bytes (default 1 GiB, or
	// more when the extents need it: defaultDeviceSize).
	DeviceSize int64 `json:"device_size"`
	// BucketSize is the bucket size in bytes (default: what bcachefs
	// format picks for the device size, 64 KiB for small devices).
	BucketSize int64 `json:"bucket_size"`
	// BtreeNodeSize is the btree node size in bytes (default: bcachefs
	// format's, min(256 KiB, bucket size)).
	BtreeNodeSize int64 `json:"btree_node_size"`
	// Extents is the number of extents to write (0: an empty filesystem).
	Extents int64 `json:"extents"`
	// ExtentMin and ExtentMax bound the extent size in sectors (defaults 8
	// and 128, or the bucket size if that is smaller); sizes are whole 4
	// KiB blocks. An extent never crosses a bucket, so some are cut short
	// at bucket ends, as bcachefs does.
	ExtentMin uint32 `json:"extent_min"`
	ExtentMax uint32 `json:"extent_max"`
	// ExtentsPerFile is the most extents one file (inode) gets (default 4).
	ExtentsPerFile int `json:"extents_per_file"`
	// Replicas is the number of copies of every extent and btree node on
	// distinct devices (default 1).
	Replicas int `json:"replicas"`
	// Seed makes the filesystem: the same parameters give the same bytes.
	Seed uint64 `json:"seed"`
	// ECStripes is the number of erasure-coded stripes (0: none). Each
	// stripe has one block per device, a whole bucket each: devices-1
	// data blocks filled with the extents of files written after the
	// others, and one parity block. Needs 3..16 devices and Replicas 1.
	ECStripes int `json:"ec_stripes,omitempty"`
	// Inject asks for faults: kind → count (see Kinds).
	Inject map[string]int `json:"inject,omitempty"`
	// MetadataVersion is the on-disk format to write: "1.28"
	// (bcachefs-tools v1.25.3), "1.36" (v1.36.1) or "1.39" (v1.39.2); see
	// MetadataVersions. Empty means DefaultMetadataVersion (1.36), and
	// WithDefaults leaves it empty, so that the manifests of 1.36
	// filesystems stay as they were; the manifest's version field names
	// the version written.
	MetadataVersion string `json:"metadata_version,omitempty"`
	// Encrypted writes the filesystem as `bcachefs format --encrypted`
	// does: a ChaCha20 key in the crypt field (derived from Seed, so that
	// the same parameters give the same images), btree node bsets and
	// journal entries encrypted and MAC'd (chacha20_poly1305_128), extents
	// with chacha20_poly1305_80 data checksums and key versions 1, 2, …
	Encrypted bool `json:"encrypted,omitempty"`
	// Shape picks the shape of the filesystem: "" (ShapeDefault) is the
	// generator's own (extents of 8..128 sectors, files of 1..4 extents,
	// nodes filled to 3/4); ShapeReal ("real") is that of `bcachefs
	// format --encoded_extent_max=4k --source=/usr` by bcachefs-tools
	// v1.36.1, measured on a 20 GiB image of 1.35 M extents (see
	// gen/README.md, "Real shape"): encoded_extent_max 4 KiB in the
	// superblock and in the bucket size format picks (64 KiB buckets and
	// nodes at 20 GiB), every extent one 4 KiB block, file lengths drawn
	// from the extents-per-file distribution of that /usr (68 % of files
	// one extent, a tail to 2^16), and every node filled to 2/5 of its
	// u64s, as bcachefs leaves nodes split by appends (3/5 of a node
	// split past 2/3). Fields left zero take the shape's defaults: a
	// 20 GiB device (doubled while the data would fill more than half
	// of it), extents of 8 sectors, at most 65535 extents per file.
	// Empty is left out of the manifest, so that default manifests stay
	// as they were.
	Shape string `json:"shape,omitempty"`
	// Passphrase seals the key of an encrypted filesystem (scrypt N=2^14
	// r=2^3 p=2^4, as format); empty stores the key in plain text, as
	// `bcachefs format --encrypted --no_passphrase`. Never written to the
	// manifest.
	Passphrase string `json:"-"`
}

// Fault kinds that Inject takes, and the finding bpcheck reports for each.
const (
	// KindMissingBP drops the backpointer of one extent pointer:
	// ptr_to_missing_backpointer.
	KindMissingBP = "missing_bp"
	// KindDanglingBP adds a backpointer in a used bucket that no pointer
	// claims: backpointer_to_missing_ptr.
	KindDanglingBP = "dangling_bp"
	// KindWrongBP stores a backpointer whose bucket_len is off by one
	// block: ptr_to_missing_backpointer (with got and want) for the
	// pointer, and backpointer_to_missing_ptr for the stored value.
	KindWrongBP = "wrong_bp"
	// KindMissingAlloc adds a backpointer in a free bucket, which has no
	// alloc key: backpointer_to_missing_alloc.
	KindMissingAlloc = "missing_alloc"
	// KindMissingDevice adds a backpointer for device index nr_devices:
	// backpointer_to_missing_device.
	KindMissingDevice = "missing_device"
	// KindWrongDirty stores a wrong dirty_sectors in the alloc key of a
	// user bucket: alloc_key_dirty_sectors_wrong.
	KindWrongDirty = "wrong_dirty_sectors"
	// KindMissingNodeBP drops the backpointer of one btree node pointer:
	// ptr_to_missing_backpointer at level ≥ 1.
	KindMissingNodeBP = "missing_node_bp"
	// KindDupBadCsum adds a second extent (a file of its own) that points
	// at the same sectors as the last extent of a file but carries a bad
	// data checksum: dup_backpointer_to_bad_csum_extent, once per replica.
	KindDupBadCsum = "dup_bad_csum"
	// KindWrongStripeSectors stores a stripe_sectors one block off in
	// the alloc key of a stripe data block's bucket:
	// alloc_key_stripe_sectors_wrong.
	KindWrongStripeSectors = "wrong_stripe_sectors"
	// KindWrongParitySectors stores a dirty_sectors one block off in the
	// alloc key of a stripe parity block's bucket:
	// alloc_key_dirty_sectors_wrong.
	KindWrongParitySectors = "wrong_parity_sectors"
	// KindMissingStripeBP drops the backpointer of one stripe block:
	// ptr_to_missing_backpointer (btree stripes, level 0).
	KindMissingStripeBP = "missing_stripe_bp"
	// KindWrongStripeBlockCount stores a block sector count one block off
	// in a stripe key, for one of its data blocks:
	// stripe_sector_count_wrong.
	KindWrongStripeBlockCount = "wrong_stripe_blockcount"
	// KindMissingLRU drops the fragmentation lru entry of a partly
	// filled bucket: alloc_key_to_missing_lru_entry.
	KindMissingLRU = "missing_lru"
	// KindFreespaceHole leaves the first bucket of a device's free run
	// out of its freespace key (at most one per device):
	// freespace_hole_missing.
	KindFreespaceHole = "freespace_hole"
	// KindWrongAccounting stores the largest replicas counter of user
	// data one block (8 sectors) too large (at most one):
	// accounting_mismatch.
	KindWrongAccounting = "wrong_accounting"
	// KindBPPastEnd adds a backpointer in a bucket 4096 or more past its
	// device's last bucket, which has no alloc key:
	// backpointer_to_missing_alloc.
	KindBPPastEnd = "bp_past_end"
	// KindAllocPastEnd adds the alloc key of a free bucket past its
	// device's last bucket: alloc_key_to_missing_dev_bucket.
	KindAllocPastEnd = "alloc_past_end"
)

// Kinds lists the fault kinds in the order they are documented.
var Kinds = []string{KindMissingBP, KindDanglingBP, KindWrongBP, KindMissingAlloc, KindMissingDevice,
	KindWrongDirty, KindMissingNodeBP, KindDupBadCsum, KindWrongStripeSectors, KindWrongParitySectors, KindMissingStripeBP, KindWrongStripeBlockCount,
	KindMissingLRU, KindFreespaceHole, KindWrongAccounting, KindBPPastEnd, KindAllocPastEnd}

// Shapes that Params.Shape takes.
const (
	// ShapeDefault is the generator's own shape.
	ShapeDefault = ""
	// ShapeReal is the shape of a filesystem made by bcachefs format
	// --source from a real tree (see Params.Shape).
	ShapeReal = "real"
)

// Shapes lists the named shapes (ShapeDefault has no name).
var Shapes = []string{ShapeReal}

// Fixed facts of the generated filesystems.
const (
	sectorSize     = 512
	blockSectors   = 8 // 4 KiB blocks, as on the real images
	sbMaxSizeBits  = 11
	sbSectors      = 1 << sbMaxSizeBits
	journalMin     = 8 // BCH_JOURNAL_BUCKETS_MIN
	defaultNodeMax = 256 << 10
)

// WithDefaults returns p with every zero field set to its default.
func (p Params) WithDefaults() Params {
	if p.Shape == ShapeReal {
		p = p.realDefaults()
	}
	if p.Devices == 0 {
		p.Devices = 1
	}
	if p.DeviceSize == 0 {
		p.DeviceSize = defaultDeviceSize(p)
	}
	if p.Replicas == 0 {
		p.Replicas = 1
	}
	if p.ExtentMin == 0 {
		p.ExtentMin = blockSectors
	}
	if p.ExtentsPerFile == 0 {
		p.ExtentsPerFile = 4
	}
	if p.BucketSize == 0 {
		p.BucketSize = pickBucketSize(p)
	}
	if p.ExtentMax == 0 {
		// 128 sectors, or the bucket size if smaller (1.39 picks 32 KiB
		// buckets for 64 MiB devices).
		p.ExtentMax = max(min(128, uint32(p.BucketSize/sectorSize)), p.ExtentMin)
	}
	if p.BtreeNodeSize == 0 {
		p.BtreeNodeSize = min(defaultNodeMax, p.BucketSize)
		if f := formatFor(&p); f != nil && p.BtreeNodeSize < f.minNodeSize {
			p.BtreeNodeSize = f.minNodeSize
		}
	}
	return p
}

// defaultDeviceSize is 1 GiB, or, for more extents than that holds, the
// power of two that holds twice their data (the images are sparse: the
// size costs nothing).
func defaultDeviceSize(p Params) int64 {
	lo, hi := int64(p.ExtentMin), int64(p.ExtentMax)
	if lo == 0 {
		lo = blockSectors
	}
	if hi == 0 {
		hi = 128 // ExtentMax's default on devices of a GiB and more
	}
	hi = max(hi, lo)
	data := int64(p.Extents) * (lo + hi) / 2 * sectorSize * max(int64(p.Replicas), 1) / max(int64(p.Devices), 1)
	return max(1<<30, roundUpPow2(2*data))
}

func roundUpPow2(v int64) int64 {
	if v <= 1 {
		return 1
	}
	return 1 << (64 - bits.LeadingZeros64(uint64(v-1)))
}

func roundDownPow2(v int64) int64 {
	if v <= 0 {
		return 0
	}
	return 1 << (63 - bits.LeadingZeros64(uint64(v)))
}

// pickBucketSize is the bucket size bcachefs format of p's version
// picks (see the versions' pickBucket functions).
func pickBucketSize(p Params) int64 {
	f := formatFor(&p)
	if f == nil {
		f = formatOf("")
	}
	return f.pickBucket(p, f)
}

// Validate checks p (after WithDefaults).
func (p *Params) Validate() error {
	if err := checkVersion(p.MetadataVersion); err != nil {
		return err
	}
	if p.Shape != ShapeDefault && p.Shape != ShapeReal {
		return fmt.Errorf("shape %q: must be empty (the default) or one of %s", p.Shape, strings.Join(Shapes, ", "))
	}
	f := mustFormat(p)
	switch {
	case p.Devices < 1 || p.Devices > 64:
		return fmt.Errorf("devices %d: must be 1..64", p.Devices)
	case p.Replicas < 1 || p.Replicas > p.Devices || p.Replicas > 4:
		return fmt.Errorf("replicas %d: must be 1..min(4, devices %d)", p.Replicas, p.Devices)
	case p.BucketSize%(blockSectors*sectorSize) != 0 || p.BucketSize/sectorSize > 65535 || p.BucketSize <= 0:
		return fmt.Errorf("bucket size %d: must be a multiple of 4096 and at most 65535 sectors", p.BucketSize)
	case p.BtreeNodeSize < f.minNodeSize || p.BtreeNodeSize > f.maxNodeSize || p.BtreeNodeSize&(p.BtreeNodeSize-1) != 0:
		return fmt.Errorf("btree node size %d: must be a power of two in %d KiB..%d KiB (metadata %s)", p.BtreeNodeSize,
			f.minNodeSize>>10, f.maxNodeSize>>10, f.name)
	case p.BtreeNodeSize > p.BucketSize:
		return fmt.Errorf("btree node size %d is larger than the bucket size %d", p.BtreeNodeSize, p.BucketSize)
	case p.DeviceSize%sectorSize != 0 || p.DeviceSize/p.BucketSize < f.minNBuckets:
		return fmt.Errorf("device size %d: must be a multiple of 512 bytes holding at least %d buckets of %d bytes", p.DeviceSize, f.minNBuckets, p.BucketSize)
	case p.Extents < 0:
		return fmt.Errorf("extents %d: must not be negative", p.Extents)
	case p.ExtentsPerFile < 1:
		return fmt.Errorf("extents per file %d: must be at least 1", p.ExtentsPerFile)
	case p.ECStripes < 0:
		return fmt.Errorf("ec stripes %d: must not be negative", p.ECStripes)
	case p.ECStripes > 0 && (p.Devices < 3 || p.Devices > maxECDevices):
		return fmt.Errorf("ec stripes need 3..%d devices (one block per device, one of them parity), not %d", maxECDevices, p.Devices)
	case p.ECStripes > 0 && p.Replicas != 1:
		return fmt.Errorf("ec stripes need replicas 1 (erasure-coded extents have one pointer), not %d", p.Replicas)
	case p.Passphrase != "" && !p.Encrypted:
		return errors.New("a passphrase is for an encrypted filesystem (Encrypted)")
	}
	lo, hi := roundUp(uint64(p.ExtentMin), blockSectors), p.ExtentMax/blockSectors*blockSectors
	maxExt := min(uint32(p.BucketSize/sectorSize), uint32(f.encodedExtMax/sectorSize))
	if lo > uint64(hi) || hi == 0 || hi > maxExt {
		return fmt.Errorf("extent size %d-%d sectors: must hold a whole 4 KiB block and stay within %d sectors (bucket size and encoded_extent_max)", p.ExtentMin, p.ExtentMax, maxExt)
	}
	for k, n := range p.Inject {
		known := false
		for _, kk := range Kinds {
			known = known || kk == k
		}
		if !known {
			return fmt.Errorf("unknown fault kind %q (known: %s)", k, strings.Join(Kinds, ", "))
		}
		if n < 0 {
			return fmt.Errorf("fault %s: negative count %d", k, n)
		}
		if n > 0 && p.ECStripes == 0 && NeedsEC(k) {
			return fmt.Errorf("fault %s needs ec stripes", k)
		}
	}
	if n := p.Inject[KindWrongAccounting]; n > 1 {
		return fmt.Errorf("fault %s: at most 1 (%d asked)", KindWrongAccounting, n)
	}
	if n := p.Inject[KindFreespaceHole]; n > p.Devices {
		return fmt.Errorf("fault %s: at most one per device (%d asked, %d devices)", KindFreespaceHole, n, p.Devices)
	}
	return nil
}

// NeedsEC reports whether fault kind k is placed in stripes (it needs
// ECStripes > 0).
func NeedsEC(k string) bool {
	for _, e := range ecKinds {
		if e == k {
			return true
		}
	}
	return false
}

func roundUp(v, m uint64) uint64 { return (v + m - 1) / m * m }

// ParseSize parses a byte size with an optional K/M/G/T suffix (powers of
// 1024, an optional trailing "iB"/"B" ignored).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

// ParseInject parses "KIND=COUNT,KIND=COUNT".
func ParseInject(s string) (map[string]int, error) {
	out := map[string]int{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("bad fault %q: want KIND=COUNT", part)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad fault count in %q", part)
		}
		out[k] += n
	}
	return out, nil
}

// InjectString formats an Inject map as ParseInject reads it, in a
// stable order.
func InjectString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// ErrDeviceFull is the error of parameters whose extents or metadata do
// not fit the devices.
var ErrDeviceFull = errors.New("device too small")
