package shard

import (
	"encoding/binary"
	"math/bits"

	"bpcheck/bp"
)

// A backpointer value is 32 bytes on disk: btree id, level, data type, then
// bucket_gen and flags (format B) or the 40-bit bucket_offset (format A),
// bucket_len, and the position of the key it names (snapshot, offset,
// inode). A shard keeps it in three words instead, losslessly, whenever its
// fields fit the widths below, so that an entry is 32 bytes with its
// position (it was 40). Values that do not fit are kept whole, in a slice:
// file offsets of 2^40 sectors (512 TiB) or more, as at the last node of a
// btree (POS_MAX), and corrupt values. Format A's bucket_offset is left
// out: it is what the entry's position implies (inBucketA), and a value
// that says otherwise is kept whole. A format B filesystem upgraded from
// format A keeps format A values until they are rewritten (bp.OldLayoutB):
// their bytes 3–7 hold a bucket_offset, which reads as flags of 64 or
// more; those are packed as format A's are, marked (packALayout).
//
// The words:
//
//	w[0]: the position's inode
//	w[1]: the position's offset (bits 0-39) | bucket_len (40-63)
//	w[2]: snapshot (0-31) | btree id (32-39) | level (40-42) | data type (43-47)
//	      | format B: bucket_gen (48-55) | flags (56-61)
//	      | bit 62 (format B): format A's layout, bytes 3-7 implied
//	      | bit 63: not packed, the value is kept whole (Shard.whole; w[0]
//	        is then its index there)
//
// Packing is a function of the value (and, in format A, of its position),
// and unpacking gives back the value: two values that pack are equal
// exactly when their words are, and a value that packs is never equal to
// one that does not. So comparing an expected value with a stored one
// compares words (sameAt).
type packedBP [3]uint64

// notPacked marks an entry whose value is kept whole.
const notPacked = 1 << 63

// packALayout marks, in format B, a value packed in format A's layout.
const packALayout = 1 << 62

// Field limits of a packed value.
const (
	packOffsetBits = 40
	packLenBits    = 24
	packLevels     = 8
	packDataTypes  = 32
	packFlags      = 1 << 6
)

// packBP packs value v into w and reports true, or reports false (w
// untouched) when v does not fit. inBucket is the bucket_offset the
// backpointer's position implies (inBucketA; in format B only where
// format A values may remain), or noInBucket. The
// words are written one by one into the caller's memory: returned as an
// array, they were copied through the stack with wide loads that stall on
// the narrow stores that wrote them (once per backpointer and pointer).
func packBP(w *packedBP, v *[bp.BackpointerBytes]byte, formatB bool, inBucket uint64) bool {
	le := binary.LittleEndian
	level, dataType := v[1], v[2]
	bucketLen := le.Uint32(v[8:])
	off := le.Uint64(v[16:])
	if level >= packLevels || dataType >= packDataTypes || bucketLen >= 1<<packLenBits || off >= 1<<packOffsetBits {
		return false
	}
	var hi uint64
	if formatB {
		if flags := le.Uint32(v[4:]); flags < packFlags {
			hi = uint64(v[3]) | uint64(flags)<<8
		} else if bp.BackpointerBucketOffsetA(v[:]) == inBucket {
			hi = packALayout >> 48
		} else {
			return false
		}
	} else if bp.BackpointerBucketOffsetA(v[:]) != inBucket {
		return false
	}
	w[0] = le.Uint64(v[24:])
	w[1] = off | uint64(bucketLen)<<packOffsetBits
	w[2] = uint64(le.Uint32(v[12:])) | uint64(v[0])<<32 | uint64(level)<<40 | uint64(dataType)<<43 | hi<<48
	return true
}

// unpackBP returns the value packBP packed into w.
func unpackBP(w *packedBP, formatB bool, inBucket uint64) (v [bp.BackpointerBytes]byte) {
	le := binary.LittleEndian
	v[0] = byte(w[2] >> 32)
	v[1] = byte(w[2]>>40) & (packLevels - 1)
	v[2] = byte(w[2]>>43) & (packDataTypes - 1)
	if formatB && w[2]&packALayout == 0 {
		v[3] = byte(w[2] >> 48)
		le.PutUint32(v[4:], uint32(w[2]>>56)&(packFlags-1))
	} else {
		v[3] = byte(inBucket)
		le.PutUint32(v[4:], uint32(inBucket>>8))
	}
	le.PutUint32(v[8:], uint32(w[1]>>packOffsetBits))
	le.PutUint32(v[12:], uint32(w[2]))
	le.PutUint64(v[16:], w[1]&(1<<packOffsetBits-1))
	le.PutUint64(v[24:], w[0])
	return v
}

// noInBucket stands for a bucket_offset no format A value can hold (it is
// 40 bits): values whose position does not give one are kept whole.
const noInBucket = ^uint64(0)

// inBucketA returns the bucket_offset a format A backpointer at offset off
// of device dev must hold: the offset's distance from its bucket's start
// (in sectors << shift, plus the crc offset the low bits keep), or
// noInBucket for a device without a bucket size.
func (s *Shard) inBucketA(dev uint32, off uint64) uint64 {
	bs, shift := s.devBucketSize(dev), s.cfg.Shift
	if bs == 0 || shift >= 64 {
		return noInBucket
	}
	if bs&(bs-1) == 0 {
		if m := bs << shift; m>>shift == bs && m != 0 {
			return off & (m - 1)
		}
	}
	start := (off >> shift) / bs * bs
	if start<<shift>>shift != start {
		return noInBucket
	}
	return off - start<<shift
}

// devBucketSize returns the bucket size of device dev (0: none), through a
// one-device cache (entries and records come device by device).
func (s *Shard) devBucketSize(dev uint32) uint64 {
	if !s.aOK || s.aDev != dev {
		bs, ok := s.cfg.BucketSize(uint64(dev))
		s.aDev, s.aOK, s.aBS = dev, true, uint64(bs)
		if !ok {
			s.aBS = 0
		}
	}
	return s.aBS
}

// bucketOffsets returns the backpointer offsets of bucket b, [lo, hi), for
// buckets of bs sectors and the given shift; ok is false when they do not
// fit 64 bits.
func bucketOffsets(b, bs uint64, shift uint) (lo, hi uint64, ok bool) {
	if bs == 0 || shift >= 64 {
		return 0, 0, false
	}
	over, top := bits.Mul64(b+1, bs)
	if over != 0 || b+1 == 0 || top>>(64-shift) != 0 {
		return 0, 0, false
	}
	return b * bs << shift, top << shift, true
}

// inBucket is inBucketA where format A values may be stored: in format A,
// and in format B with format A's shift (upgraded filesystems); elsewhere
// noInBucket.
func (s *Shard) inBucket(dev uint32, off uint64) uint64 {
	if s.cfg.FormatB && s.cfg.Shift != bp.ShiftA {
		return noInBucket
	}
	return s.inBucketA(dev, off)
}

// value returns the stored value of backpointer i on device dev.
func (s *Shard) value(i int, dev uint32) [bp.BackpointerBytes]byte {
	e := &s.bps[i]
	if e.w[2]&notPacked != 0 {
		return s.whole[e.w[0]]
	}
	return unpackBP(&e.w, s.cfg.FormatB, s.inBucket(dev, e.Off))
}

// sameAt reports whether backpointer i (on device dev) holds value want.
// A value kept whole is compared whole; a packed one holds want exactly
// when want packs to its words, which is checked word by word as want's
// fields are read (in registers: packing want into memory and reading it
// back cost more than the comparison, once per pointer).
func (s *Shard) sameAt(i int, dev uint32, want *[bp.BackpointerBytes]byte) bool {
	e := &s.bps[i]
	if e.w[2]&notPacked != 0 {
		return s.whole[e.w[0]] == *want
	}
	le := binary.LittleEndian
	if le.Uint64(want[24:]) != e.w[0] {
		return false
	}
	off, bucketLen := le.Uint64(want[16:]), le.Uint32(want[8:])
	if off >= 1<<packOffsetBits || bucketLen >= 1<<packLenBits || off|uint64(bucketLen)<<packOffsetBits != e.w[1] {
		return false
	}
	level, dataType := want[1], want[2]
	if level >= packLevels || dataType >= packDataTypes {
		return false
	}
	var hi uint64
	if s.cfg.FormatB {
		if flags := le.Uint32(want[4:]); flags < packFlags {
			hi = uint64(want[3]) | uint64(flags)<<8
		} else if bp.BackpointerBucketOffsetA(want[:]) == s.inBucket(dev, e.Off) {
			hi = packALayout >> 48
		} else {
			return false
		}
	} else if bp.BackpointerBucketOffsetA(want[:]) != s.inBucketA(dev, e.Off) {
		return false
	}
	return uint64(le.Uint32(want[12:]))|uint64(want[0])<<32|uint64(level)<<40|uint64(dataType)<<43|hi<<48 == e.w[2]
}
