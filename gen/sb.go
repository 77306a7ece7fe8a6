package gen

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"sort"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/csum"
)

// Superblock and journal encoding, following the superblocks that
// bcachefs-tools v1.36.1 writes (checked byte for byte against the tiny,
// small and two-dev cases of the test data).

const (
	sbHeaderBytes = 752
	memberBytes   = 224 // struct bch_member as v1.36.1 writes it
	cleanU64s     = 468 // size of the clean section on the real images
	countersU64s  = 131
	// baseTime is the fixed "now" of every generated filesystem
	// (2026-01-01T00:00:00Z), so that images do not depend on the clock.
	baseTime = 1767225600
	// sbSeq is the superblock write sequence number.
	sbSeq = 8
)

// memberFlags is the member flags word of the real images: state rw,
// discard, data allowed journal|btree|user, durability 1, freespace
// initialized, rotational (set).
const memberFlags = 0x3600e4000

// downgradeField is the downgrade section bcachefs-tools v1.36.1 writes
// (a fixed table for metadata version 1.36), copied from the real images.
var downgradeField = mustHex("1c0000000e0000000904200000000000000000000000000000000c004c004d004e00440045004600470048004a0049004b0050000a04200000000000000000000000000000000d004c004d004e00440045004600470048004a0049004b00110150000c042000000000000000000000000000000003001001160115010e040040000000000000000000000000000003007d00800093000f042000000000000000000000000000000003001001160115011f0420000000000000000000000000000000020010013301230400840000000000000000000000000000000000000000")

// extentTypeU64sField gives the size of each extent entry type.
var extentTypeU64sField = mustHex("030000001000000001010203010101010100000000000000")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// root is a btree root as the clean section and the journal record it.
type root struct {
	btree bp.BtreeID
	level uint8
	key   []byte // bkey_i: unpacked btree_ptr_v2 key and value
}

func rootKey(n *nodeInfo) []byte {
	val := n.ptrVal(nil)
	b := make([]byte, bp.KeyBytes, bp.KeyBytes+len(val))
	k := bp.Key{U64s: uint16(bp.KeyU64s + len(val)/8), Type: bp.KeyBtreePtrV2, Pos: bp.SPosMax}
	bp.PutUnpacked(b, &k)
	return append(b, val...)
}

func appendJEntry(b []byte, typ uint8, btree bp.BtreeID, level uint8, payload []byte) []byte {
	var h [8]byte
	binary.LittleEndian.PutUint16(h[0:], uint16(len(payload)/8))
	h[2], h[3], h[4] = byte(btree), level, typ
	b = append(b, h[:]...)
	return append(b, payload...)
}

// jset_entry types.
const (
	jeBtreeKeys     = 0
	jeBtreeRoot     = 1
	jeUsage         = 5
	jeClock         = 7
	jeDatetime      = 12
	usageKeyVersion = 2
)

// superEntries are the entries bch2_journal_super_entries_add_common
// writes: key_version usage, the read and write clocks, then the roots.
func superEntries(b []byte, writeClock uint64) []byte {
	b = appendJEntry(b, jeUsage, usageKeyVersion, 0, make([]byte, 8))
	for rw := uint64(0); rw < 2; rw++ {
		var c [16]byte
		c[0] = byte(rw)
		if rw == 1 {
			binary.LittleEndian.PutUint64(c[8:], writeClock)
		}
		b = appendJEntry(b, jeClock, 0, 0, c[:])
	}
	return b
}

func rootEntries(b []byte, roots []root) []byte {
	for _, r := range roots {
		b = appendJEntry(b, jeBtreeRoot, r.btree, r.level, r.key)
	}
	return b
}

// jset builds the journal entry seq that a clean shutdown leaves: every
// root, the time, the key version and the clocks, as on the real images.
func (g *generator) jset(roots []root) []byte {
	var e []byte
	e = appendJEntry(e, jeBtreeKeys, 0, 0, nil)
	e = rootEntries(e, roots)
	var t [8]byte
	binary.LittleEndian.PutUint64(t[:], baseTime)
	e = appendJEntry(e, jeDatetime, 0, 0, t[:])
	e = superEntries(e, g.writeClock)
	n := 56 + len(e)
	size := int(roundUp(uint64(n), blockSectors*sectorSize))
	b := make([]byte, size)
	le := binary.LittleEndian
	le.PutUint64(b[16:], g.jsetMagic)
	le.PutUint64(b[24:], g.journalSeq)
	le.PutUint32(b[32:], metadataVersion)
	le.PutUint32(b[36:], uint32(csum.CRC32CNonzero))
	le.PutUint32(b[40:], uint32(len(e)/8))
	le.PutUint64(b[48:], g.journalSeq) // last_seq
	copy(b[56:], e)
	sum, _ := csum.Compute(csum.CRC32CNonzero, b[16:n])
	le.PutUint64(b[0:], sum.Lo)
	le.PutUint64(b[8:], sum.Hi)
	return b
}

func appendField(b []byte, typ uint32, payload []byte) []byte {
	n := 8 + len(payload)
	pad := int(roundUp(uint64(n), 8)) - n
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:], uint32((n+pad)/8))
	binary.LittleEndian.PutUint32(h[4:], typ)
	b = append(b, h[:]...)
	b = append(b, payload...)
	return append(b, make([]byte, pad)...)
}

// btreeBitmap is the member's btree_bitmap_shift and
// btree_allocated_bitmap: one bit per 2^shift sectors holding btree nodes,
// the shift just large enough for 64 bits to reach the last node.
func btreeBitmap(nodes [][2]uint64) (uint8, uint64) {
	var end uint64
	for _, n := range nodes {
		end = max(end, n[1])
	}
	shift := 0
	if end > 1 {
		if s := bits.Len64(end-1) - 6; s > 0 {
			shift = s
		}
	}
	var bm uint64
	for _, n := range nodes {
		for b := n[0] >> shift; b<<shift < n[1]; b++ {
			bm |= 1 << b
		}
	}
	return uint8(shift), bm
}

// replicaEntries is the replicas_v0 payload: one entry per set of devices
// holding user data or btree nodes, sorted and laid out in eytzinger order
// as bcachefs keeps them.
func replicaEntries(sets map[string][]byte) []byte {
	keys := make([]string, 0, len(sets))
	for k := range sets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e := make([]string, len(keys))
	i := 0
	var walk func(n int)
	walk = func(n int) {
		if n >= len(keys) {
			return
		}
		walk(2*n + 1)
		e[n] = keys[i]
		i++
		walk(2*n + 2)
	}
	walk(0)
	var b []byte
	for _, k := range e {
		b = append(b, sets[k]...)
	}
	return b
}

// superblock builds the superblock of device d (header and fields) for the
// copy at sector offset.
func (g *generator) superblock(d *device, roots []root, offset uint64) []byte {
	le := binary.LittleEndian
	var fields []byte

	// members_v2
	mem := make([]byte, 8+len(g.devs)*memberBytes)
	le.PutUint16(mem[0:], memberBytes)
	for i, m := range g.devs {
		b := mem[8+i*memberBytes:]
		copy(b[0:16], g.memberUUID[i][:])
		le.PutUint64(b[16:], m.nbuckets)
		le.PutUint16(b[24:], 0)
		le.PutUint16(b[26:], uint16(m.bucketSectors))
		shift, bm := btreeBitmap(g.devNodes[i])
		b[28] = shift
		le.PutUint64(b[32:], baseTime)
		le.PutUint64(b[40:], memberFlags)
		le.PutUint64(b[120:], sbSeq)
		le.PutUint64(b[128:], bm)
		if g.journalOn(i) {
			le.PutUint32(b[136:], 0)
			le.PutUint32(b[140:], uint32(len(g.jsetBytes)/sectorSize))
		}
		copy(b[144:160], fmt.Sprintf("dev%d.img", i))
	}
	fields = appendField(fields, btreeio.FieldMembersV2, mem)

	// clean
	clean := make([]byte, 16)
	le.PutUint64(clean[8:], g.journalSeq)
	clean = superEntries(clean, g.writeClock)
	clean = rootEntries(clean, roots)
	if want := (cleanU64s - 1) * 8; len(clean) < want {
		clean = append(clean, make([]byte, want-len(clean))...)
	}
	fields = appendField(fields, btreeio.FieldClean, clean)
	fields = appendField(fields, 10, make([]byte, (countersU64s-1)*8)) // counters
	fields = appendField(fields, btreeio.FieldErrors, nil)
	fields = appendField(fields, btreeio.FieldExt, make([]byte, 88))
	fields = append(fields, extentTypeU64sField...)
	var j [16]byte
	le.PutUint64(j[0:], d.journalStart)
	le.PutUint64(j[8:], d.journalNr)
	fields = appendField(fields, btreeio.FieldJournalV2, j[:])
	fields = append(fields, downgradeField...)
	fields = appendField(fields, btreeio.FieldReplicasV0, replicaEntries(g.replicaSets))

	sb := make([]byte, sbHeaderBytes+len(fields))
	le.PutUint16(sb[16:], metadataVersion)
	le.PutUint16(sb[18:], metadataVersion)
	copy(sb[24:40], btreeio.MagicBCHFS[:])
	copy(sb[40:56], g.uuid[:])
	copy(sb[56:72], g.userUUID[:])
	le.PutUint64(sb[104:], offset)
	le.PutUint64(sb[112:], sbSeq)
	le.PutUint16(sb[120:], blockSectors)
	sb[122] = byte(d.idx)
	sb[123] = byte(len(g.devs))
	le.PutUint32(sb[124:], uint32(len(fields)/8))
	le.PutUint64(sb[128:], baseTime*1e9)
	le.PutUint32(sb[140:], 1)
	flags := g.sbFlags()
	for i, f := range flags {
		le.PutUint64(sb[144+8*i:], f)
	}
	le.PutUint64(sb[200:], baseTime)
	le.PutUint64(sb[208:], 0xfba80)
	le.PutUint64(sb[224:], 0x1f)
	copy(sb[240:sbHeaderBytes], g.layout(d))
	copy(sb[sbHeaderBytes:], fields)
	sum, _ := csum.Compute(csum.CRC32CNonzero, sb[16:])
	le.PutUint64(sb[0:], sum.Lo)
	le.PutUint64(sb[8:], sum.Hi)
	return sb
}

// layout is struct bch_sb_layout for device d.
func (g *generator) layout(d *device) []byte {
	b := make([]byte, 512)
	copy(b[0:16], btreeio.MagicBCHFS[:])
	b[16] = 0
	b[17] = sbMaxSizeBits
	b[18] = byte(len(d.sbOffsets))
	for i, o := range d.sbOffsets {
		binary.LittleEndian.PutUint64(b[24+8*i:], o)
	}
	return b
}

// sbFlags are the flag words of the real images, with this filesystem's
// node size and replicas.
func (g *generator) sbFlags() [7]uint64 {
	r := uint64(g.p.Replicas)
	var f [7]uint64
	f[0] = 1 | 1<<1 | uint64(csum.CRC32CNonzero)<<2 | 1<<8 | g.nodeSectors<<12 | 8<<28 |
		1<<40 | 1<<44 | r<<48 | r<<52 | 1<<56 | 1<<63
	f[1] = 0x1124002
	f[3] = 0xfa00000000
	incompat := uint64(1<<10 | 33)
	if len(g.devs) > 1 {
		f[3] |= 1 << 63
		incompat = metadataVersion
	}
	f[4] = 0x100000064
	f[5] = metadataVersion | 30<<16 | incompat<<32 | metadataVersion<<48
	f[6] = 0xc1e0 | extentBPShift<<40
	return f
}
