package gen

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"bpcheck/bp"
	"bpcheck/csum"
)

// Node layout constants (struct btree_node).
const (
	nodeHeaderBytes = 160
	bsetMaxU64s     = 65535 // bset.u64s is 16 bits
	// Leaves and interior nodes are filled to 3/4 of their size (2/5 in
	// the real shape, see fill); the last node of a btree gets the rest
	// (its max_key, SPOS_MAX, can widen the key format).
	fillNum, fillDen = 3, 4
)

// gkey is one key of a node being built, unpacked; its value lives in the
// node's vals buffer.
type gkey struct {
	pos  bp.Pos
	size uint32
	typ  bp.KeyType
	ver  uint64 // version.lo
	voff uint32
	vlen uint32 // bytes, a multiple of 8
}

// nodeBuf collects the keys of one node and the range of their fields,
// which gives the node's packed key format.
type nodeBuf struct {
	keys     []gkey
	vals     []byte
	fs       bp.FormatState
	min      bp.Pos
	valU64s  int
	keyU64s  int // key_u64s of the current format
	capU64s  int // hard limit of the bset
	goalU64s int // fill target
}

// newNodeBuf returns an empty node of nodeBytes that is full at num/den
// of its u64s.
func newNodeBuf(nodeBytes, num, den int) *nodeBuf {
	capU64s := min((nodeBytes-nodeHeaderBytes)/8, bsetMaxU64s)
	return &nodeBuf{capU64s: capU64s, goalU64s: capU64s * num / den}
}

func (n *nodeBuf) reset(min bp.Pos) {
	n.keys = n.keys[:0]
	n.vals = n.vals[:0]
	n.fs = bp.NewFormatState()
	n.fs.AddPos(min)
	n.min = min
	n.valU64s = 0
	n.keyU64s = n.fs.KeyU64s()
}

// clone returns a deep copy.
func (n *nodeBuf) clone() *nodeBuf {
	c := *n
	c.keys = append([]gkey(nil), n.keys...)
	c.vals = append([]byte(nil), n.vals...)
	return &c
}

// fieldWidths are the unpacked widths of the packed-key fields.
var fieldWidths = [4]uint64{64, 64, 32, 32}

// keyU64sWith returns the key_u64s of the node's format if it also held
// a key at pos of the given size (bch2_bkey_format_done's sizing: each
// field's range in bits, 4 spare bits for the size field). Only the
// extents of encrypted filesystems have versions (version.lo).
func (n *nodeBuf) keyU64sWith(pos bp.Pos, size uint32, ver uint64) int {
	v := [4]uint64{pos.Inode, pos.Offset, uint64(pos.Snapshot), uint64(size)}
	total := uint64(24)
	for i := range v {
		lo, hi := min(n.fs.Min[i], v[i]), max(n.fs.Max[i], v[i])
		b := min(uint64(bits.Len64(hi-lo)), fieldWidths[i])
		if i == bp.FieldSize && b != 0 {
			b += min(4, 32-b)
		}
		total += b
	}
	// version.lo (0 but for the extents of encrypted filesystems);
	// version.hi is always 0.
	lo, hi := min(n.fs.Min[bp.FieldVersionLo], ver), max(n.fs.Max[bp.FieldVersionLo], ver)
	total += uint64(bits.Len64(hi - lo))
	return int((total + 63) / 64)
}

// fits reports whether the node stays within limit u64s with one more key
// of value length vlen, when the format with that key has key_u64s ku.
func (n *nodeBuf) fits(ku, vlen, limit int) bool {
	return (len(n.keys)+1)*ku+n.valU64s+vlen/8 <= limit
}

// add appends a key; ku is keyU64sWith(pos, size, ver).
func (n *nodeBuf) add(pos bp.Pos, size uint32, ver uint64, typ bp.KeyType, val []byte, ku int) {
	n.keyU64s = ku
	v := [4]uint64{pos.Inode, pos.Offset, uint64(pos.Snapshot), uint64(size)}
	for i := range v {
		n.fs.Min[i] = min(n.fs.Min[i], v[i])
		n.fs.Max[i] = max(n.fs.Max[i], v[i])
	}
	n.fs.Min[bp.FieldVersionLo] = min(n.fs.Min[bp.FieldVersionLo], ver)
	n.fs.Max[bp.FieldVersionLo] = max(n.fs.Max[bp.FieldVersionLo], ver)
	n.keys = append(n.keys, gkey{pos: pos, size: size, typ: typ, ver: ver, voff: uint32(len(n.vals)), vlen: uint32(len(val))})
	n.vals = append(n.vals, val...)
	n.valU64s += len(val) / 8
}

// addAll appends keys of node src.
func (n *nodeBuf) addAll(src *nodeBuf, keys []gkey) {
	for _, k := range keys {
		n.add(k.pos, k.size, k.ver, k.typ, src.vals[k.voff:k.voff+k.vlen], n.keyU64sWith(k.pos, k.size, k.ver))
	}
}

// withMax returns the format state and u64s of the node if it ends at max.
func (n *nodeBuf) withMax(max bp.Pos) (bp.FormatState, int) {
	fs := n.fs
	fs.AddPos(max)
	return fs, len(n.keys)*fs.KeyU64s() + n.valU64s
}

// sectorsFor is the sectors a single-bset node of u64s key words occupies,
// padded to the block size.
func sectorsFor(u64s int) uint64 {
	b := uint64(nodeHeaderBytes + u64s*8)
	return (b + blockSectors*sectorSize - 1) / (blockSectors * sectorSize) * blockSectors
}

// nodeHeader is what a node's header says besides its keys.
type nodeHeader struct {
	magic      uint64
	btree      bp.BtreeID
	level      uint8
	min, max   bp.Pos
	seq        uint64
	journalSeq uint64
	version    uint16 // metadata version of the bset
	// key, when set, encrypts the bset and MACs it
	// (chacha20_poly1305_128); else crc32c_nonzero.
	key *csum.Key
}

// encodeNode writes the node (header, one bset of packed keys, crc32c
// checksum, or encrypted and MAC'd with h.key) into buf and returns the
// bytes used, padded to the block size.
func encodeNode(buf []byte, h *nodeHeader, n *nodeBuf, f *bp.Format) (int, error) {
	le := binary.LittleEndian
	clear(buf[:nodeHeaderBytes])
	le.PutUint64(buf[16:], h.magic)
	flags := uint64(h.btree)&0xf | uint64(h.level)<<4 | 1<<8 | (uint64(h.btree)>>4)<<9 | 1<<32
	le.PutUint64(buf[24:], flags)
	h.min.Put(buf[32:])
	h.max.Put(buf[52:])
	f.Put(buf[80:])
	le.PutUint64(buf[136:], h.seq)
	le.PutUint64(buf[144:], h.journalSeq)
	ct := csum.CRC32CNonzero
	if h.key != nil {
		ct = metaCsumEncrypted
	}
	le.PutUint32(buf[152:], uint32(ct))
	le.PutUint16(buf[156:], h.version)
	p := nodeHeaderBytes
	for i := range n.keys {
		k := &n.keys[i]
		key := bp.Key{Type: k.typ, Pos: k.pos, Size: k.size, Version: bp.Version{Lo: k.ver}}
		m, ok := f.PackKey(buf[p:], &key, int(k.vlen/8))
		if !ok {
			return 0, fmt.Errorf("key %s does not fit the node format", k.pos)
		}
		p += m
		p += copy(buf[p:], n.vals[k.voff:k.voff+k.vlen])
	}
	u64s := (p - nodeHeaderBytes) / 8
	if u64s > bsetMaxU64s || p > len(buf) {
		return 0, fmt.Errorf("node of %d u64s overflows", u64s)
	}
	le.PutUint16(buf[158:], uint16(u64s))
	if h.key != nil {
		if err := sealNode(h.key, buf, p, h.seq, h.journalSeq); err != nil {
			return 0, err
		}
	} else {
		sum, err := csum.Compute(csum.CRC32CNonzero, buf[16:p])
		if err != nil {
			return 0, err
		}
		le.PutUint64(buf[0:], sum.Lo)
		le.PutUint64(buf[8:], sum.Hi)
	}
	end := int(sectorsFor(u64s)) * sectorSize
	clear(buf[p:end])
	return end, nil
}
