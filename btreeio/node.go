package btreeio

import (
	"encoding/binary"
	"fmt"

	"bpcheck/aio"
	"bpcheck/bp"
	"bpcheck/csum"
)

// Sizes of the node header and of a later bset's header.
const (
	NodeHeaderBytes  = 160
	EntryHeaderBytes = 40
)

// NodeKey is one key of a node after the bsets are merged: its unpacked
// header and its value, which points into the node's buffer.
type NodeKey struct {
	Key bp.Key
	Val []byte
}

// Node is a btree node read from disk, verified and merged.
type Node struct {
	Dev     string
	Offset  int64 // byte offset on the device
	BtreeID bp.BtreeID
	Level   uint8
	Flags   uint64
	Min     bp.Pos
	Max     bp.Pos
	Format  bp.Format
	Seq     uint64
	// SectorsWritten is how many sectors hold this node's bsets.
	SectorsWritten uint32
	// Bsets is the number of bsets merged.
	Bsets int
	// Keys are the live keys in position order: newest version per
	// position, deleted keys dropped.
	Keys []NodeKey
	// raw, merged and bsetStart are scratch slices kept for reuse when the
	// node returns to its filesystem's pool.
	raw, merged []NodeKey
	bsetStart   []int
	// JournalKeys counts the journal keys overlaid on this node.
	JournalKeys int
	// BtreeKeys are the node's own keys before the journal overlay, set
	// only for the accounting btree when journal keys were overlaid:
	// accounting keys are deltas, and the in-memory counters recovery
	// builds are the btree's value plus the newer journal deltas
	// (Journal.AccountingDeltas). nil: Keys are the node's own.
	BtreeKeys []NodeKey
	// Problems are non-fatal problems found while reading (bad keys
	// skipped, bsets dropped); the node's other keys are still good.
	Problems []error
	buf      []byte
	// A node parsed lazily (a leaf of one bset) keeps its keys packed:
	// packed is the bset's key bytes, unpack its format; Keys is nil
	// until DecodeKeys.
	packed []byte
	unpack bp.Unpacker
	exp    NodeExpect  // what the parent pointer said
	sb     *Superblock // for messages
}

// Packed returns the packed keys of a leaf whose keys were left undecoded
// (see PackedLeafVisitor): the bytes of its one bset's keys, one key
// after another, and the node's unpacker. ok is false once the keys are
// decoded (Keys holds them) or when the node was parsed eagerly.
func (n *Node) Packed() (u *bp.Unpacker, keys []byte, ok bool) {
	if n.packed == nil {
		return nil, nil, false
	}
	return &n.unpack, n.packed, true
}

// DecodeKeys decodes the keys of a node whose keys are still packed into
// Keys, exactly as an eager parse does (problems included). It does
// nothing when Keys is already decoded.
func (n *Node) DecodeKeys() {
	if n.packed == nil {
		return
	}
	d := keyDecoder{n: n, keys: n.raw[:0], bsetStart: n.bsetStart[:0]}
	d.bset(&n.unpack, n.packed, NodeHeaderBytes, 0) // the first bset starts after the header
	n.packed = nil
	n.finishKeys(&d)
}

// keyDecoder decodes the bsets of a node into NodeKeys.
type keyDecoder struct {
	n         *Node
	keys      []NodeKey
	bsetStart []int
	deleted   bool // a deleted key was decoded (whiteouts to drop)
}

// fail builds the error of a problem in node n.
func (n *Node) fail(format string, args ...any) error {
	return &Error{Dev: n.Dev, Offset: n.Offset, What: "btree node", Btree: n.exp.Btree.Name(n.sb.Version), Level: int(n.exp.Level),
		Err: fmt.Errorf(format, args...)}
}

// bset decodes the keys of bset bsetIdx, data[0:] being its first key
// (at byte base of the node, for messages). Keys that cannot be decoded
// end the bset, keys out of order or outside the node's range (unless
// the parent pointer updated the range) are dropped, and so is a key at
// the position of the key before it, unless that one is a deleted key
// (then the later key replaces it); each dropped key is a problem of the
// node.
func (d *keyDecoder) bset(unpack *bp.Unpacker, data []byte, base, bsetIdx int) {
	n := d.n
	keys := d.keys
	// Room for the bset's keys at once: grown key by key, a slice of
	// thousands of keys was reallocated a dozen times (1.25× at these
	// sizes), ~5× its final size of fresh memory, whose page faults were
	// 40 % of a warm check's. The slice stays with the pooled node, so
	// this is rare; the keys are counted (their u64s) only when the
	// bset might not fit (a key takes at least min(key_u64s, BKEY_U64s)
	// words), and the slice is grown to them with a quarter to spare
	// (no more: the collector scans the whole of it).
	if kw := int(min(n.Format.KeyU64s, bp.KeyU64s)); kw > 0 && cap(keys)-len(keys) < len(data)/(8*kw) {
		if cnt := countKeys(data); cap(keys)-len(keys) < cnt {
			grown := make([]NodeKey, len(keys), len(keys)+cnt+(len(keys)+cnt)/4)
			aio.Prefault(grown) // fresh memory: populated at once
			copy(grown, keys)
			keys = grown
		}
	}
	d.bsetStart = append(d.bsetStart, len(keys))
	first := len(keys)
	for p := 0; p < len(data); {
		if data[p] == 0 {
			n.Problems = append(n.Problems, n.fail("%w: key at byte %d of bset %d has u64s 0; rest of bset dropped", bp.ErrKey, base+p, bsetIdx))
			break
		}
		// Decoded in place at the end of keys; dropped again on error.
		m := len(keys)
		if m < cap(keys) {
			keys = keys[:m+1]
		} else {
			keys = append(keys, NodeKey{})
		}
		nk := &keys[m]
		val, err := unpack.DecodeKeyInto(&nk.Key, data[p:])
		if err != nil {
			keys = keys[:m]
			n.Problems = append(n.Problems, n.fail("key at byte %d of bset %d: %w; rest of bset dropped", base+p, bsetIdx, err))
			break
		}
		nk.Val = val
		if !n.exp.RangeUpdated && (nk.Key.Pos.Less(n.Min) || n.Max.Less(nk.Key.Pos)) {
			// bch2_bkey_in_btree_node: the kernel drops such a key
			// (bkey_before_start_of_btree_node,
			// bkey_after_end_of_btree_node). Kept, it would also break
			// the key order across the leaves of a walk.
			n.Problems = append(n.Problems, n.fail("%w: key at byte %d of bset %d at %s lies outside the node's range %s to %s; key dropped",
				bp.ErrKey, base+p, bsetIdx, nk.Key.Pos, n.Min, n.Max))
			keys = keys[:m]
			p += int(data[p]) * 8
			continue
		}
		if m > first {
			switch prev := &keys[m-1]; nk.Key.Pos.Cmp(prev.Key.Pos) {
			case -1:
				n.Problems = append(n.Problems, n.fail("%w: key at byte %d of bset %d at %s sorts before the previous key %s; key dropped",
					bp.ErrKey, base+p, bsetIdx, nk.Key.Pos, prev.Key.Pos))
				keys = keys[:m]
				p += int(data[p]) * 8
				continue
			case 0:
				if !RepeatReplaces(prev.Key.Type, nk.Key.Type) {
					n.Problems = append(n.Problems, n.fail("%w: key at byte %d of bset %d at %s repeats the previous key's position; key dropped",
						bp.ErrKey, base+p, bsetIdx, nk.Key.Pos))
					keys = keys[:m]
					p += int(data[p]) * 8
					continue
				}
				// A deleted key and then a key at its position: the
				// key wins, as the merge decides.
				*prev = *nk
				keys = keys[:m]
			}
		}
		if nk.Key.Type == bp.KeyDeleted {
			d.deleted = true
		}
		p += int(data[p]) * 8
	}
	d.keys = keys
}

// RepeatReplaces reports whether a key of type next at the position of
// the key before it in one bset (of type prev) replaces it: only a key
// after a deleted one. Otherwise the kernel's read drops the later key
// (btree_node_bkey_out_of_order, which orders a deleted key before a
// live one at a position), and so does ParseNode, as a problem of the
// node.
func RepeatReplaces(prev, next bp.KeyType) bool {
	return prev == bp.KeyDeleted && next != bp.KeyDeleted
}

// countKeys counts the keys of a bset's key bytes by their u64s, up to one
// of u64s 0 (the decoder's rule for the end of a bset).
func countKeys(data []byte) int {
	n := 0
	for p := 0; p < len(data) && data[p] != 0; p += int(data[p]) * 8 {
		n++
	}
	return n
}

// finishKeys merges the decoded bsets into Keys and applies a range
// update of the parent pointer.
func (n *Node) finishKeys(d *keyDecoder) {
	keys, bsetStart := d.keys, d.bsetStart
	var inPlace bool
	if len(bsetStart) == 1 && !d.deleted {
		// One bset, no repeats (dropped while decoding), nothing
		// deleted: the keys as decoded are the node's keys.
		n.Keys, inPlace = keys[bsetStart[0]:], true
	} else {
		if len(bsetStart) > 1 && cap(n.merged) < len(keys) {
			// At most every key: grown once (see keyDecoder.bset).
			n.merged = make([]NodeKey, 0, len(keys)+len(keys)/4)
			aio.Prefault(n.merged)
		}
		n.Keys, inPlace = mergeKeys(keys, bsetStart, n.merged)
	}
	n.raw, n.bsetStart = keys, bsetStart
	if !inPlace {
		n.merged = n.Keys
	}
	if n.exp.RangeUpdated {
		n.Min, n.Max = n.exp.Min, n.exp.Max
		out := n.Keys[:0]
		for _, k := range n.Keys {
			if k.Key.Pos.Cmp(n.Min) >= 0 && k.Key.Pos.Cmp(n.Max) <= 0 {
				out = append(out, k)
			}
		}
		n.Keys = out
	}
}

// NodeExpect is what the parent pointer says about a node.
type NodeExpect struct {
	Btree          bp.BtreeID
	Level          uint8
	Min            bp.Pos // only checked for btree_ptr_v2
	Max            bp.Pos
	Seq            uint64 // 0 = unknown (btree_ptr v1)
	SectorsWritten uint16 // 0 = unknown
	RangeUpdated   bool
	V2             bool
	// MaxJournalSeq, when non-zero, drops later bsets whose journal_seq is
	// above it: their updates never became durable (journal blacklist).
	MaxJournalSeq uint64
}

// ExpectFromKey derives what a node must look like from the btree pointer
// key k (value val) that points at it; level is the child's level.
func ExpectFromKey(btree bp.BtreeID, level uint8, k *bp.Key, val []byte) (NodeExpect, error) {
	e := NodeExpect{Btree: btree, Level: level, Max: k.Pos}
	if k.Type == bp.KeyBtreePtrV2 {
		v, err := bp.DecodeBtreePtrV2(val)
		if err != nil {
			return e, err
		}
		e.V2 = true
		e.Seq = v.Seq
		e.SectorsWritten = v.SectorsWritten
		e.Min = v.MinKey
		e.RangeUpdated = v.Flags&bp.BtreePtrRangeUpdated != 0
	} else if k.Type != bp.KeyBtreePtr {
		return e, fmt.Errorf("%w: key type %s is not a btree pointer", bp.ErrKey, k.Type)
	}
	return e, nil
}

// ParseNode verifies and parses the node held in buf (the whole node, its
// on-disk size), read from dev at byte offset off. The filesystem's
// superblock gives the magic and block size. Errors that make the node
// unusable are returned as *Error; lesser problems land in Node.Problems.
func ParseNode(sb *Superblock, dev string, off int64, buf []byte, exp NodeExpect) (*Node, error) {
	return parseNodeInto(&Node{}, sb, dev, off, buf, exp, false)
}

// ParseNodePacked is ParseNode for a visitor that takes packed keys
// (PackedLeafVisitor): a leaf whose keys lie in one bset, with no range
// update, keeps them packed (Node.Packed) until DecodeKeys; any other
// node is parsed as ParseNode parses it. Hand the node to VisitLeaf.
func ParseNodePacked(sb *Superblock, dev string, off int64, buf []byte, exp NodeExpect) (*Node, error) {
	return parseNodeInto(&Node{}, sb, dev, off, buf, exp, true)
}

// parseNodeInto is ParseNode reusing n's key slices (a pooled node). With
// lazy, a leaf whose keys lie in one bset (and whose parent pointer does
// not update its range) keeps them packed (Node.Packed); DecodeKeys
// decodes them as an eager parse would have.
func parseNodeInto(n *Node, sb *Superblock, dev string, off int64, buf []byte, exp NodeExpect, lazy bool) (*Node, error) {
	*n = Node{Dev: dev, Offset: off, buf: buf, raw: n.raw[:0], merged: n.merged[:0], bsetStart: n.bsetStart[:0], exp: exp, sb: sb}
	fail := n.fail
	le := binary.LittleEndian
	if len(buf) < SectorSize {
		return nil, fail("%w: node buffer is %d bytes, less than a sector", ErrTruncated, len(buf))
	}
	if m := le.Uint64(buf[16:]); m != sb.BsetMagic() {
		return nil, fail("%w: node magic %016x, want %016x", ErrBadMagic, m, sb.BsetMagic())
	}
	n.Seq = le.Uint64(buf[136:])
	if exp.V2 && n.Seq != exp.Seq {
		return nil, fail("%w: node seq %x, pointer wants %x (stale or overwritten node)", ErrCorrupt, n.Seq, exp.Seq)
	}
	if n.Seq == 0 {
		return nil, fail("%w: node seq is 0", ErrCorrupt)
	}
	blockBytes := int(sb.BlockSize) * SectorSize
	limitSectors := len(buf) / SectorSize
	if exp.SectorsWritten != 0 {
		if int(exp.SectorsWritten) > limitSectors {
			return nil, fail("%w: pointer says %d sectors written, node is %d sectors", ErrCorrupt, exp.SectorsWritten, limitSectors)
		}
		limitSectors = int(exp.SectorsWritten)
	}
	d := keyDecoder{n: n, keys: n.raw, bsetStart: n.bsetStart}
	// The first bset's keys, not decoded yet (lazy): decoded when a
	// second bset or anything else needs them.
	var deferred []byte
	// laterProblem records a problem of a bset after the first: the first
	// bset's keys, if still packed, are decoded first, so that their
	// problems come before it as in an eager parse.
	laterProblem := func(err error) {
		if deferred != nil {
			d.bset(&n.unpack, deferred, NodeHeaderBytes, 0)
			deferred = nil
		}
		n.Problems = append(n.Problems, err)
	}
	written := 0
	for written < limitSectors {
		boff := written * SectorSize
		var hdr, ks int
		if written == 0 {
			hdr, ks = 136, NodeHeaderBytes
		} else {
			if boff+EntryHeaderBytes > len(buf) {
				break
			}
			if le.Uint64(buf[boff+16:]) != n.Seq {
				break
			}
			hdr, ks = boff+16, boff+EntryHeaderBytes
		}
		bflags := le.Uint32(buf[hdr+16:])
		u64s := int(le.Uint16(buf[hdr+22:]))
		end := ks + u64s*8
		if end > limitSectors*SectorSize {
			err := fail("%w: bset at sector %d with %d u64s runs past the written data (%d sectors)", ErrCorrupt, written, u64s, limitSectors)
			if written == 0 {
				return nil, err
			}
			laterProblem(err)
			break
		}
		ct := csum.Type(bflags & 0xf)
		if !ct.Valid() {
			err := fail("%w: bset at sector %d has checksum type %d", ErrCorrupt, written, ct)
			if written == 0 {
				return nil, err
			}
			laterProblem(err)
			break
		}
		if ct.Keyed() && sb.CryptKey == nil {
			return nil, fail("%w: bset at sector %d is encrypted", ErrEncrypted, written)
		}
		nonce := csum.Nonce{uint32(boff), uint32(le.Uint64(buf[hdr:])), uint32(le.Uint64(buf[hdr:]) >> 32),
			uint32(le.Uint64(buf[hdr+8:])) ^ csum.NonceBtree}
		stored := csum.SumFromBytes(buf[boff:])
		got, err := csum.ComputeKeyed(ct, sb.CryptKey, nonce, buf[boff+16:end])
		if err != nil {
			return nil, fail("bset checksum: %w", err)
		}
		if got != stored {
			err := fail("%w: bset at sector %d: %s stored %016x:%016x, computed %016x:%016x",
				ErrBadChecksum, written, ct, stored.Hi, stored.Lo, got.Hi, got.Lo)
			if written == 0 {
				return nil, err
			}
			// A later bset with a bad checksum ends the node's usable data,
			// as the kernel drops it and what follows.
			laterProblem(err)
			break
		}
		if bflags>>4&1 != 0 {
			return nil, fail("%w: bset at sector %d is big-endian", ErrUnsupported, written)
		}
		if ct.Keyed() {
			decryptBset(sb.CryptKey, nonce, buf, boff, ks, end)
		}
		if written == 0 {
			n.Flags = le.Uint64(buf[24:])
			n.BtreeID = bp.BtreeID(n.Flags&0xf | (n.Flags>>9&0xffff)<<4)
			n.Level = uint8(n.Flags >> 4 & 0xf)
			n.Min = bp.DecodePos(buf[32:])
			n.Max = bp.DecodePos(buf[52:])
			f, err := bp.DecodeFormat(buf[80:])
			if err != nil {
				return nil, fail("node key format: %w", err)
			}
			n.Format = f
			n.unpack = f.Unpacker()
		}
		if written != 0 && exp.MaxJournalSeq != 0 && le.Uint64(buf[hdr+8:]) > exp.MaxJournalSeq {
			// Blacklisted: written after the last journal flush.
			written += (end - boff + blockBytes - 1) / blockBytes * (blockBytes / SectorSize)
			continue
		}
		bsetIdx := n.Bsets
		n.Bsets++
		if lazy && bsetIdx == 0 {
			deferred = buf[ks:end]
		} else {
			if deferred != nil {
				d.bset(&n.unpack, deferred, NodeHeaderBytes, 0)
				deferred = nil
			}
			d.bset(&n.unpack, buf[ks:end], ks, bsetIdx)
		}
		written += (end - boff + blockBytes - 1) / blockBytes * (blockBytes / SectorSize)
	}
	if written > limitSectors {
		written = limitSectors
	}
	n.SectorsWritten = uint32(written)
	if deferred != nil && (n.Level != 0 || exp.RangeUpdated || exp.SectorsWritten != 0 && written < int(exp.SectorsWritten)) {
		// Not a plain leaf: decoded now, its problems before the next.
		d.bset(&n.unpack, deferred, NodeHeaderBytes, 0)
		deferred = nil
	}
	if exp.SectorsWritten != 0 && written < int(exp.SectorsWritten) {
		n.Problems = append(n.Problems, fail("%w: node has %d sectors of bsets, pointer says %d written", ErrCorrupt, written, exp.SectorsWritten))
	}
	// Check the node against its parent pointer.
	if id := n.Flags&0xf | (n.Flags>>9&0xffff)<<4; id != uint64(exp.Btree) || n.Level != exp.Level {
		return nil, fail("%w: node is btree %d level %d, pointer wants btree %s level %d",
			ErrCorrupt, id, n.Level, exp.Btree.Name(sb.Version), exp.Level)
	}
	// A pointer whose range was updated (topology repair, node scan)
	// sets the node's range, both ends; the node keeps its old one on
	// disk (bch2_validate_bset overwrites both before comparing).
	if !exp.RangeUpdated && n.Max != exp.Max {
		return nil, fail("%w: node max_key %s, pointer wants %s", ErrCorrupt, n.Max, exp.Max)
	}
	if exp.V2 && !exp.RangeUpdated && n.Min != exp.Min {
		return nil, fail("%w: node min_key %s, pointer wants %s", ErrCorrupt, n.Min, exp.Min)
	}
	if deferred != nil {
		n.packed = deferred
		n.raw, n.bsetStart = d.keys, d.bsetStart
		return n, nil
	}
	n.finishKeys(&d)
	return n, nil
}

// mergeKeys merges the keys of the node's bsets, each sorted, given as one
// slice with the start index of each bset: at equal positions the newest
// bset's key wins, and deleted keys are dropped. out is reused. A node of
// one bset (the common case) is compacted within keys, without copying
// the keys that stay where they are; inPlace says the result aliases keys.
func mergeKeys(keys []NodeKey, bsetStart []int, out []NodeKey) (merged []NodeKey, inPlace bool) {
	out = out[:0]
	type cursor struct{ i, end int }
	var cur [16]cursor
	cs := cur[:0]
	for b, st := range bsetStart {
		end := len(keys)
		if b+1 < len(bsetStart) {
			end = bsetStart[b+1]
		}
		if st < end {
			cs = append(cs, cursor{st, end})
		}
	}
	if len(cs) == 0 {
		return out, false
	}
	if len(cs) == 1 {
		// One bset: drop repeats (the last wins) and deleted keys.
		st, end := cs[0].i, cs[0].end
		w := st
		for i := st; i < end; i++ {
			if i+1 < end && keys[i+1].Key.Pos == keys[i].Key.Pos {
				continue
			}
			if keys[i].Key.Type == bp.KeyDeleted {
				continue
			}
			if w != i {
				keys[w] = keys[i]
			}
			w++
		}
		return keys[st:w], true
	}
	// Several bsets: runs of keys that sort before every other bset's next
	// key are taken from one bset without comparing each key with every
	// bset; only positions held by several bsets are resolved key by key.
	for {
		best := -1
		for c := range cs {
			if cs[c].i < cs[c].end && (best < 0 || keys[cs[c].i].Key.Pos.Less(keys[cs[best].i].Key.Pos)) {
				best = c
			}
		}
		if best < 0 {
			return out, false
		}
		// lim: the smallest next position of the other bsets.
		var lim bp.Pos
		hasLim := false
		for c := range cs {
			if c != best && cs[c].i < cs[c].end && (!hasLim || keys[cs[c].i].Key.Pos.Less(lim)) {
				lim, hasLim = keys[cs[c].i].Key.Pos, true
			}
		}
		b := &cs[best]
		for b.i < b.end && (!hasLim || keys[b.i].Key.Pos.Less(lim)) {
			// Within a bset a repeated position: the last one wins.
			if b.i+1 < b.end && keys[b.i+1].Key.Pos == keys[b.i].Key.Pos {
				b.i++
				continue
			}
			if keys[b.i].Key.Type != bp.KeyDeleted {
				out = append(out, keys[b.i])
			}
			b.i++
		}
		if !hasLim || b.i < b.end && lim.Less(keys[b.i].Key.Pos) {
			continue
		}
		// Several bsets hold lim: bsets are in age order, the last key at
		// lim in the newest bset that has one wins.
		win := -1
		for c := range cs {
			for cs[c].i < cs[c].end && keys[cs[c].i].Key.Pos == lim {
				win = cs[c].i
				cs[c].i++
			}
		}
		if keys[win].Key.Type != bp.KeyDeleted {
			out = append(out, keys[win])
		}
	}
}

// decryptBset decrypts one bset in place: for the first bset (at byte 0)
// the node header fields from flags to the key format, then the keys.
func decryptBset(key *csum.Key, nonce csum.Nonce, buf []byte, boff, keysStart, end int) {
	if boff == 0 {
		const hdr = 136 - 24 // flags .. format
		csum.Crypt(key, nonce, buf[24:136])
		nonce = nonce.Add((hdr + 63) / 64 * 64)
	}
	csum.Crypt(key, nonce, buf[keysStart:end])
}
