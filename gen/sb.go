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
// small and two-dev cases of the test data), and those of v1.25.3 and
// v1.39.2 for the other versions (the versions/ cases): what differs is
// in the version's format (version.go).

const (
	sbHeaderBytes = 752
	// memberV1Bytes is BCH_MEMBER_V1_BYTES: the part of a member that
	// the members_v1 field keeps.
	memberV1Bytes = 56
	// baseTime is the fixed "now" of every generated filesystem
	// (2026-01-01T00:00:00Z), so that images do not depend on the clock.
	baseTime = 1767225600
	// sbSeq is the superblock write sequence number.
	sbSeq = 8
)

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
	jeRewindLimit   = 14
	usageKeyVersion = 2
)

// superEntries are the entries bch2_journal_super_entries_add_common
// writes: key_version usage, the read and write clocks, then the roots.
func superEntries(b []byte, keyVersion, writeClock uint64) []byte {
	var kv [8]byte
	binary.LittleEndian.PutUint64(kv[:], keyVersion)
	b = appendJEntry(b, jeUsage, usageKeyVersion, 0, kv[:])
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
// root, the time, the key version and the clocks, as on the real images;
// encrypted and MAC'd on an encrypted filesystem.
func (g *generator) jset(roots []root) ([]byte, error) {
	var e []byte
	e = appendJEntry(e, jeBtreeKeys, 0, 0, nil)
	if g.f.rewindLimit {
		// The oldest seq a rewind may go back to: this entry.
		var r [8]byte
		binary.LittleEndian.PutUint64(r[:], g.journalSeq)
		e = appendJEntry(e, jeRewindLimit, 0, 0, r[:])
	}
	e = rootEntries(e, roots)
	var t [8]byte
	binary.LittleEndian.PutUint64(t[:], baseTime)
	e = appendJEntry(e, jeDatetime, 0, 0, t[:])
	e = superEntries(e, g.keyVersion, g.writeClock)
	n := 56 + len(e)
	size := int(roundUp(uint64(n), blockSectors*sectorSize))
	b := make([]byte, size)
	le := binary.LittleEndian
	le.PutUint64(b[16:], g.jsetMagic)
	le.PutUint64(b[24:], g.journalSeq)
	le.PutUint32(b[32:], uint32(g.f.version))
	flags := g.f.jsetFlags
	if g.crypt != nil {
		flags = flags&^0xf | uint32(metaCsumEncrypted)
	}
	le.PutUint32(b[36:], flags)
	le.PutUint32(b[40:], uint32(len(e)/8))
	le.PutUint64(b[48:], g.journalSeq) // last_seq
	copy(b[56:], e)
	if g.crypt != nil {
		if err := sealJset(&g.crypt.key, b, n, g.journalSeq); err != nil {
			return nil, err
		}
		return b, nil
	}
	sum, _ := csum.Compute(csum.CRC32CNonzero, b[16:n])
	le.PutUint64(b[0:], sum.Lo)
	le.PutUint64(b[8:], sum.Hi)
	return b, nil
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

// replicasField is the superblock's replicas section: one entry per set
// of devices holding data of a type the version keeps there, sorted (as
// struct bch_replicas_entry_v1, whose nr_required follows nr_devs) and
// laid out in eytzinger order as bcachefs keeps them. sets holds the
// entries in v1 form. All entries requiring one device give replicas_v0
// (no nr_required); otherwise the v1 replicas field.
func replicasField(sets map[string][]byte, keep func(bp.DataType, uint8) bool) (uint32, []byte) {
	keys := make([]string, 0, len(sets))
	v1 := false
	for k, e := range sets {
		if keep(bp.DataType(e[0]), e[2]) {
			keys = append(keys, k)
			v1 = v1 || e[2] != 1
		}
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
		ent := sets[k]
		if !v1 {
			b = append(append(b, ent[:2]...), ent[3:]...)
		} else {
			b = append(b, ent...)
		}
	}
	if v1 {
		return btreeio.FieldReplicas, b
	}
	return btreeio.FieldReplicasV0, b
}

// superblock builds the superblock of device d (header and fields) for the
// copy at sector offset.
func (g *generator) superblock(d *device, roots []root, offset uint64) []byte {
	le := binary.LittleEndian
	f := g.f
	var fields []byte

	mb := f.memberBytes
	members := make([]byte, len(g.devs)*mb)
	for i, m := range g.devs {
		b := members[i*mb:]
		copy(b[0:16], g.memberUUID[i][:])
		le.PutUint64(b[16:], m.nbuckets)
		le.PutUint16(b[24:], 0)
		le.PutUint16(b[26:], uint16(m.bucketSectors))
		shift, bm := btreeBitmap(g.devNodes[i])
		b[28] = shift
		le.PutUint64(b[32:], baseTime)
		le.PutUint64(b[40:], f.memberFlags)
		le.PutUint64(b[120:], sbSeq)
		le.PutUint64(b[128:], bm)
		if g.journalOn(i) {
			le.PutUint32(b[136:], 0)
			le.PutUint32(b[140:], uint32(len(g.jsetBytes)/sectorSize))
		}
		if f.memberName {
			copy(b[144:160], fmt.Sprintf("dev%d.img", i))
		}
	}

	for _, kind := range f.fields {
		switch kind {
		case sfMembersV2:
			mem := make([]byte, 8, 8+len(members))
			le.PutUint16(mem[0:], uint16(mb))
			fields = appendField(fields, btreeio.FieldMembersV2, append(mem, members...))
			if g.crypt != nil {
				// bch_sb_crypt_init adds the crypt field right after
				// members_v2 (in the images of all three eras).
				fields = append(fields, g.cryptField...)
			}
		case sfMembersV1:
			var mem []byte
			for i := range g.devs {
				mem = append(mem, members[i*mb:i*mb+memberV1Bytes]...)
			}
			fields = appendField(fields, btreeio.FieldMembersV1, mem)
		case sfClean:
			clean := make([]byte, 16)
			le.PutUint64(clean[8:], g.journalSeq)
			clean = superEntries(clean, g.keyVersion, g.writeClock)
			clean = rootEntries(clean, roots)
			if want := (f.cleanU64s - 1) * 8; len(clean) < want {
				clean = append(clean, make([]byte, want-len(clean))...)
			}
			fields = appendField(fields, btreeio.FieldClean, clean)
		case sfCounters:
			fields = appendField(fields, 10, make([]byte, (f.countersU64s-1)*8))
		case sfErrors:
			fields = appendField(fields, btreeio.FieldErrors, nil)
		case sfErrorsV2:
			fields = appendField(fields, fieldErrorsV2, nil)
		case sfExt:
			ext := make([]byte, f.extBytes)
			if f.extFlags0 != 0 {
				le.PutUint64(ext[88:], f.extFlags0)
			}
			fields = appendField(fields, btreeio.FieldExt, ext)
		case sfExtentTypeU64s:
			fields = append(fields, extentTypeU64sField...)
		case sfJournalV2:
			var j [16]byte
			le.PutUint64(j[0:], d.journalStart)
			le.PutUint64(j[8:], d.journalNr)
			fields = appendField(fields, btreeio.FieldJournalV2, j[:])
		case sfDowngrade:
			fields = append(fields, f.downgrade...)
		case sfReplicas:
			typ, b := replicasField(g.replicaSets, f.sbReplicas)
			fields = appendField(fields, typ, b)
		}
	}

	sb := make([]byte, sbHeaderBytes+len(fields))
	le.PutUint16(sb[16:], f.version)
	le.PutUint16(sb[18:], f.version)
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
	flags := f.flags(g)
	// encoded_extent_max (flags[1] bits 14..19, log2 of it in sectors):
	// the version's default, 4 KiB in the real shape.
	flags[1] = flags[1]&^(0x3f<<sbEncodedExtentMaxShift) | uint64(bits.Len64(uint64(f.encodedExtMax)>>9)-1)<<sbEncodedExtentMaxShift
	if g.crypt != nil {
		flags[1] |= 1 << sbEncryptionTypeShift
	}
	for i, fl := range flags {
		le.PutUint64(sb[144+8*i:], fl)
	}
	le.PutUint64(sb[200:], baseTime)
	le.PutUint64(sb[208:], f.features)
	le.PutUint64(sb[224:], f.compat)
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
