// Package listfmt prints bcachefs keys in the text form of `bcachefs list`,
// in the dialect of the tools that match the filesystem's metadata version
// (see Dialect): metadata up to 1.12 as bcachefs-tools v1.9 prints it,
// 1.13 as v1.13 does, 1.14 to 1.24 as v1.20 does, 1.25 to 1.28 as v1.25
// does, 1.29 to 1.31 as v1.31 does, 1.32 to 1.34 as v1.33 does, 1.35 as
// v1.35 does, 1.38 as v1.38 does, the others from 1.36 as v1.36 (and
// v1.37, v1.39) do. The dialects are ordered by release, and the printer
// compares them (a change a release made holds for the later ones unless
// a dialect says otherwise). Values are printed in full for extents,
// btree pointers, alloc_v4, backpointers and reflink_v; other key types
// print their header only.
package listfmt

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strconv"

	"bpcheck/bp"
	"bpcheck/btreeio"
)

// Dialect is the text of one era of the bcachefs tools.
type Dialect uint8

// The dialects, by the tools whose `bcachefs list` they reproduce.
const (
	// DialectV19 is bcachefs-tools v1.9 (metadata up to 1.12, format A):
	// key and value on one line after ": ", extent entries on that line.
	DialectV19 Dialect = iota
	// DialectV113 is bcachefs-tools v1.13 (metadata 1.13, format A): the
	// v1.9 text, except that alloc keys print the fragmentation LRU index
	// computed from the sector counts (the stored field is obsolete), and
	// only for a bucket of an existing device.
	DialectV113
	// DialectV120 is bcachefs-tools v1.20 (metadata 1.14 to 1.24): the
	// v1.25 text, except that backpointers print no data type.
	DialectV120
	// DialectV125 is bcachefs-tools v1.25 (metadata 1.25 to 1.28): the
	// one-line layout of v1.9 with format B backpointers, and alloc keys
	// with the stripe index and redundancy of that era.
	DialectV125
	// DialectV131 is bcachefs-tools v1.31 (metadata 1.29 to 1.31): ": "
	// after the header as v1.25, but one extent entry per line with
	// device names as v1.36, "durability: N" followed by three spaces
	// (the entries' indent is added on that line), and alloc keys with
	// the stripe index and redundancy of v1.25.
	DialectV131
	// DialectV133 is bcachefs-tools v1.33 (metadata 1.32 to 1.34): the
	// v1.36 text, except that alloc keys print the bytes of
	// stripe_refcount as "stripe" (without the redundancy line of v1.25)
	// and backpointers carry no " phys" suffix.
	DialectV133
	// DialectV135 is bcachefs-tools v1.35 (metadata 1.35): the v1.36
	// text, except that backpointers carry no " phys" suffix.
	DialectV135
	// DialectV136 is bcachefs-tools v1.36, v1.37 and v1.39 (metadata
	// 1.36, 1.37 and from 1.39): "  : " after the header, one extent
	// entry per line with device names, stripe_refcount in alloc keys.
	DialectV136
	// DialectV138 is bcachefs-tools v1.38 (metadata 1.38): the v1.36
	// text, except that an extent's durability counts a pointer to a
	// device the filesystem lacks (the BCH_SB_MEMBER_INVALID placeholder
	// 255 too) as 1 and does not zero an evacuating member's pointers.
	DialectV138
)

// DialectFor returns the dialect of the tools that wrote metadata version
// v. The v1.31, v1.33 and v1.35 texts are proved on dumps of
// bcachefs-tools v1.31.13 (metadata 1.31), v1.33.4 (1.33) and v1.35.2
// (1.35); v1.32 and v1.34 print alloc keys and backpointers with the v1.33
// code, so metadata 1.32 and 1.34 get that text; the tools v1.31 also
// wrote 1.29 and 1.30. The v1.13 text is proved on dumps of
// bcachefs-tools v1.13.0; the sources that brought metadata 1.13 made the
// alloc key's stored fragmentation index obsolete (v1.11.0 still prints it).
// The v1.20 text is proved on dumps of bcachefs-tools v1.20.0; backpointers
// print their data type from bcachefs-tools commit 8af5c93e4 (March 2025,
// between v1.25.0 and v1.25.1, both writing 1.25), so 1.25 gets the v1.25
// text of the newest tools that write it. The v1.38 text is proved on dumps
// of bcachefs-tools v1.38.8: its durability printer
// (bch2_bkey_durability_safe) took that rule in upstream commit 0f3e53f64
// (December 2025, first in v1.38.7); v1.37.5 still prints the v1.36 sum.
func DialectFor(v uint16) Dialect {
	switch {
	case v < bp.VersionInodeHasChildSnapshots:
		return DialectV19
	case v < bp.VersionBackpointerBucketGen:
		return DialectV113
	case v < bp.VersionExtentFlags:
		return DialectV120
	case v <= bp.VersionInodeHasCaseInsensitive:
		return DialectV125
	case v <= bp.VersionBtreeNodeAccounting:
		return DialectV131
	case v < bp.VersionBucketStripeIndex:
		return DialectV133
	case v == bp.VersionBucketStripeIndex:
		return DialectV135
	case v == bp.VersionNeedDiscardByJournalSeq:
		return DialectV138
	}
	return DialectV136
}

// ListsJournalKeys reports whether the tools that wrote metadata version v
// show an unclean filesystem in `list` with the journal's keys overlaid.
// `list` opens it without journal replay, and until bcachefs-tools commit
// 4613023c1 (May 2025, after v1.25.2, when tools wrote 1.28) the end of
// that recovery dropped the journal's keys (bch2_fs_recovery put them
// unconditionally; later only after a replay), so the tools up to 1.27
// list the btree nodes as written (proved on the v1.13.0 and v1.20.0 dumps
// of v113-unclean and v120-unclean; v1.25.3, writing 1.28, overlays them:
// v128-unclean).
func ListsJournalKeys(v uint16) bool { return v >= bp.VersionInodeHasCaseInsensitive }

// String names the tools of the dialect.
func (d Dialect) String() string {
	switch d {
	case DialectV19:
		return "bcachefs-tools v1.9"
	case DialectV113:
		return "bcachefs-tools v1.13"
	case DialectV120:
		return "bcachefs-tools v1.20"
	case DialectV125:
		return "bcachefs-tools v1.25"
	case DialectV131:
		return "bcachefs-tools v1.31"
	case DialectV133:
		return "bcachefs-tools v1.33"
	case DialectV135:
		return "bcachefs-tools v1.35"
	case DialectV138:
		return "bcachefs-tools v1.38"
	}
	return "bcachefs-tools v1.36"
}

// Printer formats keys of one filesystem.
type Printer struct {
	sb       *btreeio.Superblock
	formatB  bool    // backpointer values of format B (bucket_gen, flags)
	dialect  Dialect // the tools' text
	shift    uint
	devNames []string
	extra    []uint8
}

// Dialect returns the dialect the printer writes.
func (p *Printer) Dialect() Dialect { return p.dialect }

// NewPrinter returns a printer for the keys of fs.
func NewPrinter(fs *btreeio.FS) *Printer {
	p := &Printer{sb: fs.SB, formatB: fs.SB.FormatB(), dialect: DialectFor(fs.SB.Version), shift: fs.SB.ExtentBPShift(), extra: fs.SB.ExtentTypeU64s}
	p.devNames = make([]string, len(fs.Devices))
	for i, d := range fs.Devices {
		if d != nil {
			p.devNames[i] = filepath.Base(d.Path)
		}
	}
	return p
}

// AppendPos appends a position as bcachefs prints it: POS_MIN, SPOS_MAX,
// POS_MAX as words, U64_MAX/U32_MAX for all-ones fields.
func AppendPos(b []byte, p bp.Pos) []byte {
	switch p {
	case bp.PosMin:
		return append(b, "POS_MIN"...)
	case bp.SPosMax:
		return append(b, "SPOS_MAX"...)
	case bp.PosMax:
		return append(b, "POS_MAX"...)
	}
	b = appendU64Max(b, p.Inode)
	b = append(b, ':')
	b = appendU64Max(b, p.Offset)
	b = append(b, ':')
	if p.Snapshot == math.MaxUint32 {
		return append(b, "U32_MAX"...)
	}
	return strconv.AppendUint(b, uint64(p.Snapshot), 10)
}

func appendU64Max(b []byte, v uint64) []byte {
	if v == math.MaxUint64 {
		return append(b, "U64_MAX"...)
	}
	return strconv.AppendUint(b, v, 10)
}

func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }

func appendHex(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 16) }

// AppendHeader appends the key header: "u64s N type T POS len L ver V".
func (p *Printer) AppendHeader(b []byte, k *bp.Key) []byte {
	b = append(b, "u64s "...)
	b = appendUint(b, uint64(k.U64s))
	b = append(b, " type "...)
	b = append(b, k.Type.String()...)
	b = append(b, ' ')
	b = AppendPos(b, k.Pos)
	b = append(b, " len "...)
	b = appendUint(b, uint64(k.Size))
	b = append(b, " ver "...)
	if k.Version.Hi != 0 {
		b = appendUint(b, uint64(k.Version.Hi))
		b = append(b, ':')
	}
	b = appendUint(b, k.Version.Lo)
	return b
}

// AppendKey appends a whole key: header, separator and value text.
func (p *Printer) AppendKey(b []byte, btree bp.BtreeID, k *bp.Key, val []byte) []byte {
	b = p.AppendHeader(b, k)
	if len(val) == 0 {
		return b
	}
	if p.dialect >= DialectV133 {
		b = append(b, "  : "...)
	} else {
		b = append(b, ": "...)
	}
	return p.AppendValue(b, btree, k, val)
}

// AppendValue appends the value text of a key.
func (p *Printer) AppendValue(b []byte, btree bp.BtreeID, k *bp.Key, val []byte) []byte {
	switch k.Type {
	case bp.KeyExtent, bp.KeyBtreePtr, bp.KeyBtreePtrV2, bp.KeyReflinkV:
		return p.appendPtrsValue(b, k, val)
	case bp.KeyAllocV4:
		return p.appendAllocV4(b, k, val)
	case bp.KeyBackpointer:
		return p.appendBackpointer(b, k, val)
	case bp.KeyReflinkP:
		if len(val) < 16 {
			return b
		}
		idx := binary.LittleEndian.Uint64(val)
		if p.formatB {
			idx &= 1<<56 - 1
		}
		b = append(b, "idx "...)
		b = appendUint(b, idx)
		b = append(b, " front_pad "...)
		b = appendUint(b, uint64(binary.LittleEndian.Uint32(val[8:])))
		b = append(b, " back_pad "...)
		b = appendUint(b, uint64(binary.LittleEndian.Uint32(val[12:])))
		if p.formatB && binary.LittleEndian.Uint64(val)>>56&1 != 0 {
			b = append(b, " error"...)
		}
		return b
	case bp.KeyReservation:
		if len(val) < 5 {
			return b
		}
		b = append(b, "generation "...)
		b = appendUint(b, uint64(binary.LittleEndian.Uint32(val)))
		b = append(b, " replicas "...)
		return appendUint(b, uint64(val[4]))
	}
	return b
}

// Listed reports whether `bcachefs list` of the dialect matching version
// shows key k of btree id: deleted keys never (the walk drops them);
// whiteouts always in the v1.36 tools, and in the v1.9 tools only in
// btrees with a snapshot field (extents, inodes, dirents, xattrs,
// deleted_inodes, rebalance_work, accounting).
func Listed(version uint16, id bp.BtreeID, k *bp.Key) bool {
	if k.Type != bp.KeyWhiteout || version >= bp.VersionBackpointerBucketGen {
		return true
	}
	switch id {
	case 0, 1, 2, 3, 16, 18, 20:
		return true
	}
	return false
}
