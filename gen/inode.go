package gen

import (
	"encoding/binary"
	"math/bits"
)

// Key types and btree ids of the filesystem btrees (bcachefs_format.h of
// v1.36.1).
const (
	keyDirent           = 10
	keySubvolume        = 21
	keySnapshot         = 22
	keyInodeV3          = 29
	keySnapshotTree     = 31
	keyAccounting       = 34
	keyInodeAllocCursor = 35

	btreeDirents       = 2
	btreeSubvolumes    = 8
	btreeSnapshots     = 9
	btreeSnapshotTrees = 15
	btreeLoggedOps     = 17
	btreeAccounting    = 20
)

// Inode facts.
const (
	rootIno        = 4096 // BCACHEFS_ROOT_INO
	rootSubvol     = 1    // BCACHEFS_ROOT_SUBVOL
	strHashSiphash = 3    // BCH_STR_HASH_siphash
	// inodeFieldsStart is INODEv3_FIELDS_START_CUR: the u64s of struct
	// bch_inode_v3 before its varint fields.
	inodeFieldsStart = 6
	inodeV3Bytes     = inodeFieldsStart * 8

	// inodeHasInodeOpts is BCH_INODE_has_inode_opts (1.39): some
	// inode option field is set.
	inodeHasInodeOpts = 1 << 12

	modeDir = 0o40000
	modeReg = 0o100000
)

// The varint fields of inode_v3, in their on-disk order (BCH_INODE_FIELDS_v3).
const (
	fAtime = iota
	fCtime
	fMtime
	fOtime
	fUID
	fGID
	fNlink
	fGeneration
	fDev
	fDataChecksum
	fCompression
	fProject
	fBackgroundCompression
	fDataReplicas
	fPromoteTarget
	fForegroundTarget
	fBackgroundTarget
	fErasureCode
	fFieldsSet
	fDir
	fDirOffset
	fSubvol
	fParentSubvol
	fNocow
	fDepth
	fInodes32bit
	fCasefold
	nInodeFields
)

// inodeFieldWide marks the 96-bit fields (the times): their varint is
// followed by a byte for the high bits, always 0 here.
const inodeFieldWide = 1<<fAtime | 1<<fCtime | 1<<fMtime | 1<<fOtime

// inode is an unpacked inode (struct bch_inode_unpacked) as far as gen
// sets it.
type inode struct {
	journalSeq uint64
	hashSeed   uint64
	flags      uint64 // bi_flags below bit 20 plus the str_hash type
	sectors    uint64
	size       uint64
	version    uint64
	mode       uint16
	f          [nInodeFields]uint64
}

// appendVarint appends v in bcachefs' varint encoding (varint.c): the
// number of bytes, up to 8, is the count of low one bits plus one in the
// first byte; 9 bytes are 0xff and the value.
func appendVarint(b []byte, v uint64) []byte {
	nbits := bits.Len64(v | 1)
	n := (nbits + 6) / 7
	if n >= 9 {
		b = append(b, 0xff)
		return binary.LittleEndian.AppendUint64(b, v)
	}
	v = v<<n | (1<<(n-1) - 1)
	for i := 0; i < n; i++ {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// appendInodeV3 appends the inode_v3 value of in, as bch2_inode_pack
// writes it: the fixed fields, then every varint field up to the last
// non-zero one, padded with zeros to whole u64s.
func appendInodeV3(b []byte, in *inode) []byte {
	start := len(b)
	nr := 0
	for i := range in.f {
		if in.f[i] != 0 {
			nr = i + 1
		}
	}
	flags := in.flags&(1<<31-1)&^(0x7f<<24) | uint64(nr)<<24 | inodeFieldsStart<<31 | uint64(in.mode)<<36
	b = binary.LittleEndian.AppendUint64(b, in.journalSeq)
	b = binary.LittleEndian.AppendUint64(b, in.hashSeed)
	b = binary.LittleEndian.AppendUint64(b, flags)
	b = binary.LittleEndian.AppendUint64(b, in.sectors)
	b = binary.LittleEndian.AppendUint64(b, in.size)
	b = binary.LittleEndian.AppendUint64(b, in.version)
	for i := 0; i < nr; i++ {
		if in.f[i] == 0 {
			b = append(b, 0)
		} else {
			b = appendVarint(b, in.f[i])
		}
		if inodeFieldWide&(1<<i) != 0 {
			b = append(b, 0)
		}
	}
	for (len(b)-start)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// setNlink stores a link count with bcachefs' bias: bi_nlink is the
// count minus 2 for directories, minus 1 for other inodes.
func (in *inode) setNlink(n uint64) {
	bias := uint64(1)
	if in.mode&0o170000 == modeDir {
		bias = 2
	}
	in.f[fNlink] = n - bias
}
