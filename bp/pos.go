package bp

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Pos is a bcachefs key position (struct bpos). Keys sort by Inode, then
// Offset, then Snapshot.
type Pos struct {
	Inode    uint64
	Offset   uint64
	Snapshot uint32
}

// PosSize is the on-disk size of a bpos in bytes.
const PosSize = 20

// PosMin is the smallest position, POS_MIN.
var PosMin = Pos{}

// SPosMax is the largest position including the snapshot field, SPOS_MAX.
var SPosMax = Pos{Inode: math.MaxUint64, Offset: math.MaxUint64, Snapshot: math.MaxUint32}

// PosMax is POS_MAX: the largest inode and offset with snapshot 0.
var PosMax = Pos{Inode: math.MaxUint64, Offset: math.MaxUint64}

// DecodePos reads an on-disk bpos (snapshot, offset, inode, little-endian).
// b must hold at least PosSize bytes.
func DecodePos(b []byte) Pos {
	_ = b[19]
	return Pos{
		Snapshot: binary.LittleEndian.Uint32(b[0:]),
		Offset:   binary.LittleEndian.Uint64(b[4:]),
		Inode:    binary.LittleEndian.Uint64(b[12:]),
	}
}

// Put writes p in the on-disk layout into b (at least PosSize bytes).
func (p Pos) Put(b []byte) {
	_ = b[19]
	binary.LittleEndian.PutUint32(b[0:], p.Snapshot)
	binary.LittleEndian.PutUint64(b[4:], p.Offset)
	binary.LittleEndian.PutUint64(b[12:], p.Inode)
}

// Cmp compares p with q: -1 if p < q, 0 if equal, +1 if p > q.
func (p Pos) Cmp(q Pos) int {
	switch {
	case p.Inode != q.Inode:
		if p.Inode < q.Inode {
			return -1
		}
		return 1
	case p.Offset != q.Offset:
		if p.Offset < q.Offset {
			return -1
		}
		return 1
	case p.Snapshot != q.Snapshot:
		if p.Snapshot < q.Snapshot {
			return -1
		}
		return 1
	}
	return 0
}

// Less reports whether p sorts before q.
func (p Pos) Less(q Pos) bool { return p.Cmp(q) < 0 }

// Successor returns the next position (snapshot carries into offset, then
// inode). The successor of SPosMax is SPosMax.
func (p Pos) Successor() Pos {
	if p == SPosMax {
		return p
	}
	p.Snapshot++
	if p.Snapshot == 0 {
		p.Offset++
		if p.Offset == 0 {
			p.Inode++
		}
	}
	return p
}

// String formats p as "inode:offset:snapshot" with plain numbers, the form
// used in bpcheck's reports and JSON.
func (p Pos) String() string {
	b := make([]byte, 0, 48)
	b = strconv.AppendUint(b, p.Inode, 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, p.Offset, 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(p.Snapshot), 10)
	return string(b)
}
