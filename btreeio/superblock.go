package btreeio

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"bpcheck/bp"
	"bpcheck/csum"
)

// SectorSize is the bcachefs sector size in bytes.
const SectorSize = 512

// Superblock locations and sizes.
const (
	SBSector       = 8
	LayoutSector   = 7
	sbHeaderBytes  = 752
	layoutBytes    = 512
	maxSBSizeBits  = 16
	maxSBFieldsU64 = (SectorSize<<maxSBSizeBits - sbHeaderBytes) / 8
)

// Magic values of a bcachefs superblock (BCHFS_MAGIC and the legacy
// BCACHE_MAGIC).
var (
	MagicBCHFS  = [16]byte{0xc6, 0x85, 0x73, 0xf6, 0x66, 0xce, 0x90, 0xa9, 0xd9, 0x6a, 0x60, 0xcf, 0x80, 0x3d, 0xf7, 0xef}
	MagicBCACHE = [16]byte{0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d, 0x81}
)

// Superblock field types (enum bch_sb_field_type).
const (
	FieldJournal             = 0
	FieldMembersV1           = 1
	FieldCrypt               = 2
	FieldReplicasV0          = 3
	FieldClean               = 6
	FieldReplicas            = 7
	FieldJournalSeqBlacklist = 8
	FieldJournalV2           = 9
	FieldMembersV2           = 11
	FieldErrors              = 12
	FieldExt                 = 13
	FieldExtentTypeU64s      = 16
)

var sbFieldNames = [...]string{"journal", "members_v1", "crypt", "replicas_v0", "quota",
	"disk_groups", "clean", "replicas", "journal_seq_blacklist", "journal_v2", "counters",
	"members_v2", "errors", "ext", "downgrade", "recovery_passes", "extent_type_u64s", "errors_v2"}

// FieldName returns the name of a superblock field type.
func FieldName(t uint32) string {
	if int(t) < len(sbFieldNames) {
		return sbFieldNames[t]
	}
	return fmt.Sprintf("(unknown field %d)", t)
}

// Layout is struct bch_sb_layout: where the superblock copies are.
type Layout struct {
	Magic         [16]byte
	Type          uint8
	SBMaxSizeBits uint8
	NrSuperblocks uint8
	SBOffset      []uint64 // sectors
}

// SBField is one variable-length superblock field.
type SBField struct {
	Type   uint32
	Offset int    // byte offset within the superblock
	Data   []byte // the whole field including its 8-byte header
}

// Member is one entry of the member array (struct bch_member).
type Member struct {
	Index       int
	UUID        [16]byte
	NBuckets    uint64
	FirstBucket uint16
	BucketSize  uint16 // sectors
	Flags       uint64
	Seq         uint64
}

// BucketOf returns the bucket that holds a sector of the device. Bucket
// sizes are powers of two in practice; those take a shift instead of a
// 64-bit division (tens of cycles, once per pointer on the hot path). A
// zero bucket size gives bucket 0.
func (m *Member) BucketOf(sector uint64) uint64 {
	bs := uint64(m.BucketSize)
	if bs&(bs-1) == 0 {
		return sector >> bits.TrailingZeros64(bs) // bs 0: shift 64, 0
	}
	return sector / bs
}

// Exists reports whether the member slot is in use.
func (m *Member) Exists() bool {
	var zero [16]byte
	return m.UUID != zero && m.UUID != deletedMemberUUID
}

var deletedMemberUUID = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xd9, 0x6a, 0x60, 0xcf, 0x80, 0x3d, 0xf7, 0xef}

// State returns the member state (0 rw, 1 ro, 2 failed/evacuating, 3 spare).
func (m *Member) State() uint8 { return uint8(m.Flags & 0xf) }

// Durability returns the member's durability (stored +1; 0 means 1).
func (m *Member) Durability() uint {
	d := uint(m.Flags >> 28 & 3)
	if d == 0 {
		return 1
	}
	return d - 1
}

// FreespaceInitialized reports BCH_MEMBER_FREESPACE_INITIALIZED: the
// member's freespace and need_discard btrees were built from its alloc
// keys (fsck compares them only then).
func (m *Member) FreespaceInitialized() bool { return m.Flags>>30&1 != 0 }

// Rotational reports the format B ROTATIONAL flag.
func (m *Member) Rotational() bool { return m.Flags>>32&1 != 0 }

var memberStates = [...]string{"rw", "ro", "evacuating", "spare"}

// StateName returns the member state's name.
func (m *Member) StateName() string {
	if int(m.State()) < len(memberStates) {
		return memberStates[m.State()]
	}
	return fmt.Sprintf("state %d", m.State())
}

// JournalBucketRange is a run of journal buckets on one device.
type JournalBucketRange struct{ Start, Nr uint64 }

// Superblock is a parsed and verified bcachefs superblock.
type Superblock struct {
	Raw            []byte // the whole superblock, header and fields
	Csum           csum.Sum
	Version        uint16
	VersionMin     uint16
	Magic          [16]byte
	UUID           [16]byte
	UserUUID       [16]byte
	Label          string
	Offset         uint64 // sector this copy was written at
	Seq            uint64
	BlockSize      uint16 // sectors
	DevIdx         uint8
	NrDevices      uint8
	U64s           uint32
	Flags          [7]uint64
	Features       [2]uint64
	Compat         [2]uint64
	Layout         Layout
	Fields         []SBField
	Members        []Member
	Journal        []JournalBucketRange // this device's journal buckets
	Clean          *Clean
	Blacklist      []JournalBucketRange // journal_seq_blacklist ranges {start, end}
	ExtentTypeU64s []uint8
	// CryptKey is the encryption key of an encrypted filesystem: stored
	// unencrypted in the superblock, or unsealed by Unlock.
	CryptKey *csum.Key
	// Crypt is the crypt field of an encrypted filesystem.
	Crypt *CryptField
	// Ext is the ext field, nil when absent.
	Ext *Ext
}

// Clean is the clean section: the btree roots at the last clean shutdown.
type Clean struct {
	Flags      uint32
	JournalSeq uint64
	Entries    []byte // jset_entry list
	Offset     int    // byte offset of the entries within the superblock
}

// Flag accessors.

// CsumType is the checksum type of the superblock itself.
func (sb *Superblock) CsumType() csum.Type { return csum.Type(sb.Flags[0] >> 2 & 0x3f) }

// IsClean reports the CLEAN flag.
func (sb *Superblock) IsClean() bool { return sb.Flags[0]>>1&1 != 0 }

// BtreeNodeSectors is the btree node size in sectors.
func (sb *Superblock) BtreeNodeSectors() uint32 { return uint32(sb.Flags[0] >> 12 & 0xffff) }

// MetaCsumOpt is the metadata_checksum option (0 none, 1 crc32c, 2 crc64, 3 xxhash).
func (sb *Superblock) MetaCsumOpt() uint8 { return uint8(sb.Flags[0] >> 40 & 0xf) }

// DataCsumOpt is the data_checksum option.
func (sb *Superblock) DataCsumOpt() uint8 { return uint8(sb.Flags[0] >> 44 & 0xf) }

// BigEndian reports the BIG_ENDIAN flag.
func (sb *Superblock) BigEndian() bool { return sb.Flags[0]>>62&1 != 0 }

// EncryptionType is the ENCRYPTION_TYPE flag; non-zero means encrypted.
func (sb *Superblock) EncryptionType() uint8 { return uint8(sb.Flags[1] >> 10 & 0xf) }

// EncodedExtentMaxBits is log2 of the maximum encoded extent in sectors.
func (sb *Superblock) EncodedExtentMaxBits() uint8 { return uint8(sb.Flags[1] >> 14 & 0x3f) }

// Ext is the superblock's ext field (type 13): recovery passes a mount
// or fsck must still run, the errors they will fix without reporting, and
// the btrees that lost data.
type Ext struct {
	// RecoveryPassesRequired is a bitmap of stable recovery pass ids.
	RecoveryPassesRequired [2]uint64
	// ErrorsSilent is a bitmap of fsck error ids (bch_sb_error_id) that
	// the pending passes fix silently.
	ErrorsSilent [8]uint64
	// BtreesLostData is a bitmap of btree ids.
	BtreesLostData uint64
}

// Silent reports whether fsck error id id is marked silent.
func (e *Ext) Silent(id int) bool {
	return id >= 0 && id < 512 && e.ErrorsSilent[id/64]>>(id%64)&1 != 0
}

// PassesPending reports whether recovery passes are still required.
func (e *Ext) PassesPending() bool { return e.RecoveryPassesRequired != [2]uint64{} }

// parseExt decodes the ext field into sb.Ext when present (words a short
// field lacks read as zero).
func (sb *Superblock) parseExt() {
	f := sb.Field(FieldExt)
	if f == nil || len(f.Data) <= 8 {
		return
	}
	var raw [8 + 8*11]byte
	copy(raw[:], f.Data)
	le := binary.LittleEndian
	e := &Ext{BtreesLostData: le.Uint64(raw[8+8*10:])}
	for i := range e.RecoveryPassesRequired {
		e.RecoveryPassesRequired[i] = le.Uint64(raw[8+8*i:])
	}
	for i := range e.ErrorsSilent {
		e.ErrorsSilent[i] = le.Uint64(raw[8+16+8*i:])
	}
	sb.Ext = e
}

// VersionUpgradeComplete is the last version whose upgrade completed.
func (sb *Superblock) VersionUpgradeComplete() uint16 {
	v := uint16(sb.Flags[5] & 0xffff)
	if v == 0 {
		return sb.Version
	}
	return v
}

// ExtentBPShift is the backpointer sub-sector shift: the superblock field in
// format B (0 means 10), fixed 10 in format A.
func (sb *Superblock) ExtentBPShift() uint {
	if sb.Version < bp.VersionBackpointerBucketGen {
		return bp.ShiftA
	}
	if s := uint(sb.Flags[6] >> 40 & 0xff); s != 0 {
		return s
	}
	return bp.ShiftA
}

// FormatB reports whether the filesystem uses format B (metadata ≥ 1.14).
func (sb *Superblock) FormatB() bool { return sb.Version >= bp.VersionBackpointerBucketGen }

// HasCrypt reports whether a crypt field is present.
func (sb *Superblock) HasCrypt() bool { return sb.Field(FieldCrypt) != nil }

// Encrypted reports whether the filesystem is encrypted.
func (sb *Superblock) Encrypted() bool { return sb.EncryptionType() != 0 || sb.HasCrypt() }

// Field returns the first field of type t, or nil.
func (sb *Superblock) Field(t uint32) *SBField {
	for i := range sb.Fields {
		if sb.Fields[i].Type == t {
			return &sb.Fields[i]
		}
	}
	return nil
}

// Member returns member dev, or nil if it is out of range or unused.
func (sb *Superblock) Member(dev uint8) *Member {
	if int(dev) >= len(sb.Members) || !sb.Members[dev].Exists() {
		return nil
	}
	return &sb.Members[dev]
}

// UUIDString formats a 16-byte uuid.
func UUIDString(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// BsetMagic is the btree node magic of this filesystem.
func (sb *Superblock) BsetMagic() uint64 {
	return binary.LittleEndian.Uint64(sb.UUID[:8]) ^ 0x90135c78b99e07f5
}

// JsetMagic is the journal entry magic of this filesystem.
func (sb *Superblock) JsetMagic() uint64 {
	return binary.LittleEndian.Uint64(sb.UUID[:8]) ^ 0x245235c1a3625032
}

// ReadSuperblock reads the superblock of a device: the primary copy at
// sector 8, or when that fails the layout at sector 7 and each copy it
// lists. It returns the superblock and which copy was used. The error of
// the primary copy is returned when no copy is good.
func ReadSuperblock(r io.ReaderAt, dev string, size int64) (*Superblock, string, error) {
	sb, err := readSBAt(r, dev, size, SBSector)
	if err == nil {
		return sb, "primary at sector 8", nil
	}
	if errors.Is(err, ErrEncrypted) {
		return nil, "", err
	}
	primaryErr := err
	// Too small to hold the primary superblock: bcachefs only if a
	// layout says where the copies are (one too small for the layout
	// too may be a truncated bcachefs device: ErrTruncated).
	tooSmall := size < SBSector*SectorSize+sbHeaderBytes
	lbuf := make([]byte, layoutBytes)
	if _, lerr := readFull(r, lbuf, LayoutSector*SectorSize, size); lerr != nil {
		return nil, "", primaryErr
	}
	layout, lerr := parseLayout(lbuf)
	if lerr != nil {
		if (errors.Is(primaryErr, ErrBadMagic) || tooSmall) && errors.Is(lerr, ErrBadMagic) {
			return nil, "", &NotBcachefsError{Dev: dev, Size: size}
		}
		return nil, "", fmt.Errorf("%w (layout at sector 7: %v)", primaryErr, lerr)
	}
	for _, off := range layout.SBOffset {
		if off == SBSector {
			continue
		}
		sb, err := readSBAt(r, dev, size, off)
		if err == nil {
			return sb, fmt.Sprintf("backup at sector %d (primary: %v)", off, primaryErr), nil
		}
		if errors.Is(err, ErrEncrypted) {
			return nil, "", err
		}
	}
	return nil, "", primaryErr
}

// NotBcachefsError says that a device holds neither a bcachefs superblock
// nor a superblock layout. It matches ErrBadMagic.
type NotBcachefsError struct {
	Dev  string
	Size int64 // the device's size in bytes
}

// Error implements error.
func (e *NotBcachefsError) Error() string {
	if e.Size < SBSector*SectorSize+sbHeaderBytes {
		return fmt.Sprintf("%s is not a bcachefs device (%d bytes: too small for the superblock at byte 4096, no layout at byte 3584)", e.Dev, e.Size)
	}
	return e.Dev + " is not a bcachefs device (no superblock magic at byte 4096, no layout at byte 3584)"
}

// Unwrap returns ErrBadMagic.
func (e *NotBcachefsError) Unwrap() error { return ErrBadMagic }

func readFull(r io.ReaderAt, p []byte, off, size int64) (int, error) {
	if off+int64(len(p)) > size {
		return 0, fmt.Errorf("%w: %d bytes at byte %d past the device end (%d bytes)", ErrTruncated, len(p), off, size)
	}
	n, err := r.ReadAt(p, off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

func parseLayout(b []byte) (Layout, error) {
	var l Layout
	if len(b) < layoutBytes {
		return l, fmt.Errorf("%w: layout is %d bytes", ErrTruncated, len(b))
	}
	copy(l.Magic[:], b[0:16])
	if l.Magic != MagicBCHFS && l.Magic != MagicBCACHE {
		return l, fmt.Errorf("%w: layout magic %x", ErrBadMagic, l.Magic[:])
	}
	l.Type, l.SBMaxSizeBits, l.NrSuperblocks = b[16], b[17], b[18]
	if l.Type != 0 {
		return l, fmt.Errorf("%w: layout type %d", ErrCorrupt, l.Type)
	}
	if l.SBMaxSizeBits > maxSBSizeBits {
		return l, fmt.Errorf("%w: layout sb_max_size_bits %d", ErrCorrupt, l.SBMaxSizeBits)
	}
	if l.NrSuperblocks == 0 || l.NrSuperblocks > 61 {
		return l, fmt.Errorf("%w: layout nr_superblocks %d", ErrCorrupt, l.NrSuperblocks)
	}
	for i := 0; i < int(l.NrSuperblocks); i++ {
		l.SBOffset = append(l.SBOffset, binary.LittleEndian.Uint64(b[24+8*i:]))
	}
	return l, nil
}

func readSBAt(r io.ReaderAt, dev string, size int64, sector uint64) (*Superblock, error) {
	off := int64(sector) * SectorSize
	fail := func(err error) error {
		return &Error{Dev: dev, Offset: off, What: "superblock", Level: -1, Err: err}
	}
	if sector > uint64(size)/SectorSize {
		return nil, fail(fmt.Errorf("%w: superblock sector %d past the device end", ErrTruncated, sector))
	}
	hdr := make([]byte, sbHeaderBytes)
	if _, err := readFull(r, hdr, off, size); err != nil {
		return nil, fail(err)
	}
	if !bytes.Equal(hdr[24:40], MagicBCHFS[:]) && !bytes.Equal(hdr[24:40], MagicBCACHE[:]) {
		return nil, fail(fmt.Errorf("%w: not a bcachefs superblock (magic %x)", ErrBadMagic, hdr[24:40]))
	}
	u64s := binary.LittleEndian.Uint32(hdr[124:])
	if u64s > maxSBFieldsU64 {
		return nil, fail(fmt.Errorf("%w: superblock u64s %d exceeds the maximum superblock size", ErrCorrupt, u64s))
	}
	raw := make([]byte, sbHeaderBytes+int(u64s)*8)
	copy(raw, hdr)
	if _, err := readFull(r, raw[sbHeaderBytes:], off+sbHeaderBytes, size); err != nil {
		return nil, fail(err)
	}
	sb, err := ParseSuperblock(raw)
	if err != nil {
		return nil, fail(err)
	}
	return sb, nil
}

// ParseSuperblock parses and verifies a superblock held in raw (header plus
// fields, as long as its u64s says).
func ParseSuperblock(raw []byte) (*Superblock, error) {
	if len(raw) < sbHeaderBytes {
		return nil, fmt.Errorf("%w: superblock is %d bytes, header needs %d", ErrTruncated, len(raw), sbHeaderBytes)
	}
	le := binary.LittleEndian
	sb := &Superblock{Raw: raw}
	sb.Csum = csum.SumFromBytes(raw[0:16])
	sb.Version = le.Uint16(raw[16:])
	sb.VersionMin = le.Uint16(raw[18:])
	copy(sb.Magic[:], raw[24:40])
	copy(sb.UUID[:], raw[40:56])
	copy(sb.UserUUID[:], raw[56:72])
	sb.Label = string(bytes.TrimRight(raw[72:104], "\x00"))
	sb.Offset = le.Uint64(raw[104:])
	sb.Seq = le.Uint64(raw[112:])
	sb.BlockSize = le.Uint16(raw[120:])
	sb.DevIdx = raw[122]
	sb.NrDevices = raw[123]
	sb.U64s = le.Uint32(raw[124:])
	for i := range sb.Flags {
		sb.Flags[i] = le.Uint64(raw[144+8*i:])
	}
	sb.Features = [2]uint64{le.Uint64(raw[208:]), le.Uint64(raw[216:])}
	sb.Compat = [2]uint64{le.Uint64(raw[224:]), le.Uint64(raw[232:])}
	if sb.Magic != MagicBCHFS && sb.Magic != MagicBCACHE {
		return nil, fmt.Errorf("%w: not a bcachefs superblock (magic %x)", ErrBadMagic, sb.Magic[:])
	}
	end := sbHeaderBytes + int(sb.U64s)*8
	if end > len(raw) {
		return nil, fmt.Errorf("%w: superblock u64s %d needs %d bytes, have %d", ErrTruncated, sb.U64s, end, len(raw))
	}
	sb.Raw = raw[:end]
	layout, err := parseLayout(raw[240:sbHeaderBytes])
	if err != nil {
		return nil, fmt.Errorf("embedded layout: %w", err)
	}
	sb.Layout = layout
	if max := SectorSize << layout.SBMaxSizeBits; end > max {
		return nil, fmt.Errorf("%w: superblock is %d bytes, layout allows %d", ErrCorrupt, end, max)
	}
	ct := sb.CsumType()
	if !ct.Valid() || ct.Keyed() {
		return nil, fmt.Errorf("%w: superblock checksum type %d", ErrCorrupt, ct)
	}
	got, err := csum.Compute(ct, sb.Raw[16:end])
	if err != nil {
		return nil, fmt.Errorf("superblock checksum: %w", err)
	}
	if got != sb.Csum {
		return nil, fmt.Errorf("%w: superblock %s checksum: stored %016x:%016x, computed %016x:%016x",
			ErrBadChecksum, ct, sb.Csum.Hi, sb.Csum.Lo, got.Hi, got.Lo)
	}
	if sb.Version < bp.VersionMin {
		return nil, fmt.Errorf("%w: metadata version %s is older than the oldest supported (0.9)", ErrUnsupported, bp.VersionString(sb.Version))
	}
	if sb.VersionMin > sb.Version {
		return nil, fmt.Errorf("%w: version_min %s newer than version %s", ErrCorrupt, bp.VersionString(sb.VersionMin), bp.VersionString(sb.Version))
	}
	if sb.BigEndian() {
		return nil, fmt.Errorf("%w: filesystem was written big-endian", ErrUnsupported)
	}
	if sb.NrDevices == 0 || sb.DevIdx >= sb.NrDevices {
		return nil, fmt.Errorf("%w: dev_idx %d with nr_devices %d", ErrCorrupt, sb.DevIdx, sb.NrDevices)
	}
	if sb.BlockSize == 0 || sb.BlockSize&(sb.BlockSize-1) != 0 {
		return nil, fmt.Errorf("%w: block_size %d sectors is not a power of two", ErrCorrupt, sb.BlockSize)
	}
	if err := sb.parseFields(); err != nil {
		return nil, err
	}
	sb.parseExt()
	if sb.Encrypted() {
		if err := sb.loadKey(); err != nil {
			return sb, err
		}
	}
	if n := sb.BtreeNodeSectors(); n == 0 || n&(n-1) != 0 || n < uint32(sb.BlockSize) {
		return nil, fmt.Errorf("%w: btree node size %d sectors", ErrCorrupt, n)
	}
	return sb, nil
}

func (sb *Superblock) parseFields() error {
	le := binary.LittleEndian
	end := len(sb.Raw)
	for off := sbHeaderBytes; off < end; {
		if end-off < 8 {
			return fmt.Errorf("%w: superblock field at byte %d: header runs past the field area", ErrCorrupt, off)
		}
		u64s := le.Uint32(sb.Raw[off:])
		typ := le.Uint32(sb.Raw[off+4:])
		if u64s == 0 {
			return fmt.Errorf("%w: superblock field at byte %d (%s) has u64s 0", ErrCorrupt, off, FieldName(typ))
		}
		n := int(u64s) * 8
		if n > end-off {
			return fmt.Errorf("%w: superblock field at byte %d (%s) of %d bytes runs past the field area", ErrCorrupt, off, FieldName(typ), n)
		}
		sb.Fields = append(sb.Fields, SBField{Type: typ, Offset: off, Data: sb.Raw[off : off+n]})
		off += n
	}
	if f := sb.Field(FieldMembersV2); f != nil {
		if len(f.Data) < 16 {
			return fmt.Errorf("%w: members_v2 field at byte %d is %d bytes", ErrCorrupt, f.Offset, len(f.Data))
		}
		mb := int(le.Uint16(f.Data[8:]))
		if mb < 56 {
			return fmt.Errorf("%w: members_v2 member_bytes %d", ErrCorrupt, mb)
		}
		if err := sb.parseMembers(f, 16, mb); err != nil {
			return err
		}
	} else if f := sb.Field(FieldMembersV1); f != nil {
		if err := sb.parseMembers(f, 8, 56); err != nil {
			return err
		}
	} else {
		return fmt.Errorf("%w: superblock has no members field", ErrCorrupt)
	}
	if f := sb.Field(FieldJournalV2); f != nil {
		for o := 8; o+16 <= len(f.Data); o += 16 {
			sb.Journal = append(sb.Journal, JournalBucketRange{Start: le.Uint64(f.Data[o:]), Nr: le.Uint64(f.Data[o+8:])})
		}
	} else if f := sb.Field(FieldJournal); f != nil {
		for o := 8; o+8 <= len(f.Data); o += 8 {
			sb.Journal = append(sb.Journal, JournalBucketRange{Start: le.Uint64(f.Data[o:]), Nr: 1})
		}
	}
	if f := sb.Field(FieldJournalSeqBlacklist); f != nil {
		for o := 8; o+16 <= len(f.Data); o += 16 {
			sb.Blacklist = append(sb.Blacklist, JournalBucketRange{Start: le.Uint64(f.Data[o:]), Nr: le.Uint64(f.Data[o+8:])})
		}
	}
	if f := sb.Field(FieldClean); f != nil {
		if len(f.Data) < 24 {
			return fmt.Errorf("%w: clean field at byte %d is %d bytes", ErrCorrupt, f.Offset, len(f.Data))
		}
		sb.Clean = &Clean{
			Flags:      le.Uint32(f.Data[8:]),
			JournalSeq: le.Uint64(f.Data[16:]),
			Entries:    f.Data[24:],
			Offset:     f.Offset + 24,
		}
	}
	if f := sb.Field(FieldExtentTypeU64s); f != nil {
		for _, b := range f.Data[8:] {
			if b == 0 {
				break
			}
			sb.ExtentTypeU64s = append(sb.ExtentTypeU64s, b)
		}
	}
	return nil
}

func (sb *Superblock) parseMembers(f *SBField, start, size int) error {
	le := binary.LittleEndian
	n := int(sb.NrDevices)
	if start+n*size > len(f.Data) {
		return fmt.Errorf("%w: %s field at byte %d holds fewer than nr_devices %d members", ErrCorrupt, FieldName(f.Type), f.Offset, n)
	}
	var buf [144]byte
	for i := 0; i < n; i++ {
		clear(buf[:])
		copy(buf[:], f.Data[start+i*size:start+(i+1)*size])
		m := Member{Index: i}
		copy(m.UUID[:], buf[0:16])
		m.NBuckets = le.Uint64(buf[16:])
		m.FirstBucket = le.Uint16(buf[24:])
		m.BucketSize = le.Uint16(buf[26:])
		m.Flags = le.Uint64(buf[40:])
		m.Seq = le.Uint64(buf[120:])
		if m.Exists() && (m.BucketSize == 0 || m.NBuckets > 1<<48) {
			return fmt.Errorf("%w: member %d has bucket size %d and %d buckets", ErrCorrupt, i, m.BucketSize, m.NBuckets)
		}
		sb.Members = append(sb.Members, m)
	}
	return nil
}

// keyMagicPlain is bch_key.magic when the key is stored unencrypted
// ("bch**key" as a little-endian u64).
const keyMagicPlain = 0x79656b2a2a686362

// loadKey decodes the crypt field and takes the encryption key from it
// when it is stored in plain text; a key sealed with a passphrase waits
// for Unlock.
func (sb *Superblock) loadKey() error {
	f := sb.Field(FieldCrypt)
	if f == nil {
		return fmt.Errorf("%w: encryption type %d but no crypt field", ErrCorrupt, sb.EncryptionType())
	}
	c, err := ParseCryptField(f.Data)
	if err != nil {
		return err
	}
	sb.Crypt = &c
	if !c.Sealed() {
		k, err := c.Unseal(nil, sb.UUID) // a plain key needs no passphrase
		if err != nil {
			return err
		}
		sb.CryptKey = &k
	}
	return nil
}

// KeySealed reports whether the filesystem is encrypted with a key that
// needs the passphrase (Unlock) before any node or journal entry reads.
func (sb *Superblock) KeySealed() bool { return sb.Crypt != nil && sb.CryptKey == nil }

// Unlock unseals the filesystem key with the passphrase's key (see
// CryptField.PassphraseKey, or the key `bcachefs unlock` put in the
// kernel keyring). A key that does not unseal it is ErrWrongPassphrase,
// naming the filesystem by its external uuid.
func (sb *Superblock) Unlock(passphraseKey *csum.Key) error {
	if sb.Crypt == nil {
		return fmt.Errorf("filesystem %s is not encrypted", UUIDString(sb.UserUUID))
	}
	k, err := sb.Crypt.Unseal(passphraseKey, sb.UUID)
	if errors.Is(err, ErrWrongPassphrase) {
		return fmt.Errorf("%w for %s", ErrWrongPassphrase, UUIDString(sb.UserUUID))
	}
	if err != nil {
		return err
	}
	sb.CryptKey = &k
	return nil
}

// SealSuperblock recomputes and stores the checksum of the superblock in
// raw (header and fields, as long as its u64s says), with the checksum type
// its flags name. bpcheck never writes a device; tests and the generator
// use this to make edited superblocks that verify.
func SealSuperblock(raw []byte) error {
	if len(raw) < sbHeaderBytes {
		return fmt.Errorf("%w: superblock is %d bytes", ErrTruncated, len(raw))
	}
	end := sbHeaderBytes + 8*int(binary.LittleEndian.Uint32(raw[124:]))
	if end > len(raw) {
		return fmt.Errorf("%w: superblock needs %d bytes, have %d", ErrTruncated, end, len(raw))
	}
	s, err := csum.Compute(csum.Type(binary.LittleEndian.Uint64(raw[144:])>>2&0x3f), raw[16:end])
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(raw[0:], s.Lo)
	binary.LittleEndian.PutUint64(raw[8:], s.Hi)
	return nil
}
