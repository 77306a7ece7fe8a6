// Package listfmt prints bcachefs keys in the text form of `bcachefs list`,
// in the dialect of the tools that match the filesystem's metadata version:
// format A images as bcachefs-tools v1.9 prints them, format B images as
// v1.36 does. Values are printed in full for extents, btree pointers,
// alloc_v4, backpointers and reflink_v; other key types print their header
// only.
package listfmt

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strconv"

	"bpcheck/bp"
	"bpcheck/btreeio"
)

// Printer formats keys of one filesystem.
type Printer struct {
	sb       *btreeio.Superblock
	formatB  bool
	shift    uint
	devNames []string
	extra    []uint8
}

// NewPrinter returns a printer for the keys of fs.
func NewPrinter(fs *btreeio.FS) *Printer {
	p := &Printer{sb: fs.SB, formatB: fs.SB.FormatB(), shift: fs.SB.ExtentBPShift(), extra: fs.SB.ExtentTypeU64s}
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
	if p.formatB {
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
