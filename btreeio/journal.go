package btreeio

import (
	"bpcheck/aio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"bpcheck/bp"
	"bpcheck/csum"
)

// Journal entry (jset) layout.
const (
	jsetHeaderBytes = 56
	jsetFlagNoFlush = 1 << 5
)

// Jset is one journal entry read from a device.
type Jset struct {
	Dev      string
	Offset   int64 // byte offset on the device
	Seq      uint64
	LastSeq  uint64
	Version  uint32
	Flags    uint32
	CsumGood bool
	CsumErr  error
	// Entries are the jset's entries; nil for a good jset older than
	// the newest flushed entries' last_seq when only the replay was asked
	// for (Pruned).
	Entries []JEntry
	// Pruned says Entries were not kept: the jset lies before every
	// range recovery could replay.
	Pruned bool
	// readable: the entries could be decoded (a jset whose checksum is
	// bad but whose content could be read, decrypted where keyed, is
	// replayed as recovery replays it).
	readable bool
}

// NoFlush reports the NO_FLUSH flag: the entry was written without a
// flush and may be discarded by recovery.
func (j *Jset) NoFlush() bool { return j.Flags&jsetFlagNoFlush != 0 }

// Journal is the result of reading the journal of every member device and
// choosing what recovery would replay.
type Journal struct {
	// All lists every valid-looking jset found, by seq (one per seq).
	All []*Jset
	// Replay lists the jsets recovery replays, in seq order.
	Replay []*Jset
	// Start and End are the replayed seq range (inclusive).
	Start, End uint64
	// Notes are statements about choices made (torn entries skipped,
	// holes, blacklisted entries).
	Notes []string
	// Errors are problems reading the journal.
	Errors []error
	// tagged are Errors with what each bears on (Problems).
	tagged []journalErr
	// Keys are the overlay keys: the newest version of each btree key in
	// the replayed entries, sorted by btree, level and position.
	Keys []JournalKey
	// KeysRead counts btree keys in the replayed entries before
	// deduplication.
	KeysRead int
	// version is the filesystem's metadata version (the overlay of
	// accounting keys depends on the tools' era).
	version uint16
	// prune (a read for the replay only): the entries of good jsets
	// older than floor are not kept; floor is the largest last_seq of a
	// good flushed jset read so far, at or below where any replay can
	// start (last_seq grows with seq, and the entry recovery starts from
	// is the newest flushed one or a newer one). kept are the jsets
	// whose entries are kept, to drop when floor rises.
	prune bool
	floor uint64
	kept  []*Jset
	// blacklist is the superblock's journal_seq_blacklist: entries of
	// these seqs are never replayed, so damage to them is no problem.
	blacklist []JournalBucketRange
	// live: read from a mounted filesystem while the kernel writes it,
	// where a damaged or missing entry is most likely a moment's state
	// (Problems keeps unreadable buckets only).
	live bool
}

// JournalKey is one key from a btree_keys journal entry.
type JournalKey struct {
	Btree  bp.BtreeID
	Level  uint8
	Key    bp.Key
	Val    []byte
	Seq    uint64
	offset int
}

// ReadJournal reads the journal buckets of every member device and
// selects the entries to replay (format.md §8.2, §8.5). Every jset keeps
// its entries (a listing); a check reads the journal for its replay only
// (readJournalForReplay).
func (fs *FS) ReadJournal() *Journal { return fs.readJournal(false) }

// readJournalForReplay is ReadJournal keeping the entries of the jsets a
// replay may need only (Jset.Pruned): the memory of the dirty part of
// the journal, not of all of it (up to 8 GiB a member).
func (fs *FS) readJournalForReplay() *Journal { return fs.readJournal(true) }

func (fs *FS) readJournal(prune bool) *Journal {
	j := &Journal{version: fs.SB.Version, prune: prune, blacklist: fs.SB.Blacklist, live: fs.Live()}
	bySeq := map[uint64]*Jset{}
	for idx, d := range fs.Devices {
		if d == nil {
			continue
		}
		m := &fs.SB.Members[idx]
		if m.State() > 1 {
			continue
		}
		bucketBytes := int64(m.BucketSize) * SectorSize
		nb := fs.DevBuckets(idx)
		// One buffer for the device's buckets: the jsets whose entries
		// are kept are copied out of it.
		var buf []byte
		for _, r := range d.SB.Journal {
			if r.Start >= nb || r.Nr > nb-r.Start {
				j.addErr(0, errAlways, &Error{Dev: d.Path, Offset: -1, What: "journal", Level: -1,
					Err: fmt.Errorf("%w: journal buckets %d+%d past the last bucket %d on the device", ErrCorrupt, r.Start, r.Nr, nb)})
				continue
			}
			for b := r.Start; b < r.Start+r.Nr; b++ {
				off := int64(b) * bucketBytes
				var err error
				if fs.Live() {
					// The running kernel writes the journal around the
					// page cache: read it as the nodes are read
					// (O_DIRECT when enabled).
					if buf == nil {
						buf = aio.AlignedBuf(int(bucketBytes), nodeAlign)
					}
					_, err = d.readNodeAt(buf, off)
				} else {
					if buf == nil {
						buf = make([]byte, bucketBytes)
					}
					_, err = d.ReadAt(buf, off)
				}
				if err != nil {
					j.addErr(0, errAlways, err)
					continue
				}
				fs.scanJournalBucket(d, off, buf, j, bySeq)
				j.pruneKept()
			}
		}
	}
	for _, js := range bySeq {
		j.All = append(j.All, js)
	}
	sort.Slice(j.All, func(a, b int) bool { return j.All[a].Seq < j.All[b].Seq })
	fs.selectReplay(j)
	return j
}

func (fs *FS) scanJournalBucket(d *Device, base int64, buf []byte, j *Journal, bySeq map[uint64]*Jset) {
	sb := fs.SB
	le := binary.LittleEndian
	block := int(sb.BlockSize) * SectorSize
	var maxSeq uint64
	sawBad := false
	for off := 0; off+jsetHeaderBytes <= len(buf); {
		if le.Uint64(buf[off+16:]) != sb.JsetMagic() {
			if !sawBad {
				return
			}
			off += block
			continue
		}
		seq := le.Uint64(buf[off+24:])
		u64s := int(le.Uint32(buf[off+40:]))
		end := off + jsetHeaderBytes + u64s*8
		at := base + int64(off)
		if end > len(buf) || u64s > len(buf)/8 {
			j.addErr(seq, errBadCopy, &Error{Dev: d.Path, Offset: at, What: "journal entry", Level: -1,
				Err: fmt.Errorf("%w: jset seq %d with %d u64s runs past its bucket", ErrTruncated, seq, u64s)})
			sawBad = true
			off += block
			continue
		}
		if seq < maxSeq {
			return
		}
		maxSeq = seq
		js := &Jset{Dev: d.Path, Offset: at, Seq: seq, Version: le.Uint32(buf[off+32:]), Flags: le.Uint32(buf[off+36:])}
		ct := csum.Type(js.Flags & 0xf)
		nonce := csum.Nonce{0, uint32(seq), uint32(seq >> 32), csum.NonceJournal}
		stored := csum.SumFromBytes(buf[off:])
		got, err := csum.ComputeKeyed(ct, sb.CryptKey, nonce, buf[off+16:end])
		if err == nil && ct.Keyed() {
			// Everything from byte 44 on is encrypted, last_seq (byte
			// 48) too: decrypted whatever the checksum says, as the
			// kernel's journal read does (a torn newest entry's
			// last_seq is not used; a second bad one's is).
			csum.Crypt(sb.CryptKey, nonce, buf[off+44:end])
		}
		if err == nil || !ct.Keyed() {
			js.LastSeq = le.Uint64(buf[off+48:]) // else ciphertext: 0, unknown
		}
		switch {
		case err != nil:
			js.CsumErr = err
		case got != stored:
			js.CsumErr = fmt.Errorf("%w: jset seq %d %s checksum: stored %016x:%016x, computed %016x:%016x", ErrBadChecksum, seq, ct, stored.Hi, stored.Lo, got.Hi, got.Lo)
		default:
			js.CsumGood = true
		}
		if js.CsumGood && (js.Version < uint32(bp.VersionMin) || js.Version>>10 > 1) {
			js.CsumGood = false
			js.CsumErr = fmt.Errorf("%w: jset seq %d has metadata version %d", ErrUnsupported, seq, js.Version)
		}
		prev, seen := bySeq[seq]
		store := !seen || (!prev.CsumGood && js.CsumGood)
		// Decodable: good, or a checksum mismatch only (decrypted with
		// the key where keyed, of a version bpcheck reads).
		js.readable = js.CsumGood || err == nil && errors.Is(js.CsumErr, ErrBadChecksum)
		if !js.CsumGood {
			sawBad = true
			j.addErr(seq, errBadCopy, &Error{Dev: d.Path, Offset: at, What: "journal entry", Level: -1, Err: js.CsumErr})
		}
		switch {
		case !js.readable:
		case !store:
			// A copy of a jset already read good (another device's).
		case j.prune && seq < j.floor:
			js.Pruned = true
		default:
			// Copied out of the bucket's buffer, which the next bucket
			// reuses.
			entries, err := ParseJEntries(bytes.Clone(buf[off+jsetHeaderBytes : end]))
			if err != nil {
				j.addErr(seq, errInRange, &Error{Dev: d.Path, Offset: at, What: "journal entry", Level: -1,
					Err: fmt.Errorf("seq %d: entries from byte %d of the jset: %w", seq, jsetHeaderBytes, err)})
			}
			js.Entries = entries
			if j.prune {
				j.kept = append(j.kept, js)
			}
		}
		if js.CsumGood && !js.NoFlush() && js.LastSeq <= seq {
			j.floor = max(j.floor, js.LastSeq)
		}
		if store {
			bySeq[seq] = js
		}
		off += (end - off + block - 1) / block * block
	}
}

// replaysPruned reports whether a jset the replay takes was pruned.
func (j *Journal) replaysPruned() bool {
	for _, js := range j.Replay {
		if js.Pruned {
			return true
		}
	}
	return false
}

// pruneKept drops the entries of the kept jsets that now lie below the
// floor (a read for the replay only).
func (j *Journal) pruneKept() {
	if !j.prune {
		return
	}
	out := j.kept[:0]
	for _, js := range j.kept {
		if js.Seq < j.floor {
			js.Entries, js.Pruned = nil, true
			continue
		}
		out = append(out, js)
	}
	clear(j.kept[len(out):])
	j.kept = out
}

func (fs *FS) blacklisted(seq uint64) bool {
	for _, r := range fs.SB.Blacklist {
		if seq >= r.Start && seq < r.Nr { // Nr holds the exclusive end
			return true
		}
	}
	return false
}

// holes returns the ranges [a, b) of sequence numbers in [from, to) that
// are not blacklisted.
func (fs *FS) holes(from, to uint64) [][2]uint64 {
	var out [][2]uint64
	for from < to {
		next := to
		skipTo := uint64(0)
		for _, r := range fs.SB.Blacklist {
			if from >= r.Start && from < r.Nr {
				skipTo = max(skipTo, r.Nr)
			} else if r.Start > from && r.Start < next {
				next = r.Start
			}
		}
		if skipTo != 0 {
			from = skipTo
			continue
		}
		out = append(out, [2]uint64{from, next})
		from = next
	}
	return out
}

// selectReplay chooses the newest flushed entry and the range recovery
// replays, and collects the overlay keys and roots.
func (fs *FS) selectReplay(j *Journal) {
	var chosen *Jset
	skippedTorn := false
	for i := len(j.All) - 1; i >= 0; i-- {
		js := j.All[i]
		if js.NoFlush() {
			continue
		}
		if !js.CsumGood && !skippedTorn {
			skippedTorn = true
			j.Notes = append(j.Notes, fmt.Sprintf("newest flushed journal entry seq %d has a bad checksum: treated as a torn write and skipped, as bcachefs recovery does", js.Seq))
			continue
		}
		chosen = js
		break
	}
	if chosen == nil {
		j.Notes = append(j.Notes, "no usable flushed journal entry found")
		return
	}
	j.End = chosen.Seq
	j.Start = min(chosen.LastSeq, chosen.Seq)
	if j.Start == 0 {
		j.Start = chosen.Seq
	}
	next := j.Start
	for _, js := range j.All {
		if js.Seq < j.Start || js.Seq > j.End {
			continue
		}
		if fs.blacklisted(js.Seq) {
			if !js.NoFlush() {
				j.Notes = append(j.Notes, fmt.Sprintf("journal entry seq %d is blacklisted but was flushed", js.Seq))
			}
			next = js.Seq + 1
			continue
		}
		for _, h := range fs.holes(next, js.Seq) {
			j.Notes = append(j.Notes, fmt.Sprintf("journal hole: seq %d..%d missing", h[0], h[1]-1))
			// Their keys are missing from the replay: a problem of the
			// check, as journal_entries_missing is one of fsck's (a
			// Problem only: no read of the journal failed). Not of a
			// live check: a mounted filesystem's journal is read while
			// the kernel writes it, members at different moments.
			if !j.live {
				j.tagged = append(j.tagged, journalErr{kind: errAlways, err: &Error{Dev: js.Dev, Offset: -1, What: "journal", Level: -1,
					Err: fmt.Errorf("%w: entries %d to %d of the replayed range %d-%d are missing", ErrCorrupt, h[0], h[1]-1, j.Start, j.End)}})
			}
		}
		next = js.Seq + 1
		if !js.CsumGood {
			if !js.readable {
				j.Notes = append(j.Notes, fmt.Sprintf("journal entry seq %d cannot be read; its keys are not replayed", js.Seq))
				j.tagged = append(j.tagged, journalErr{seq: js.Seq, kind: errInRange, err: &Error{Dev: js.Dev, Offset: js.Offset, What: "journal entry", Level: -1, Err: js.CsumErr}})
				continue
			}
			// Recovery replays it, after logging the bad checksum
			// (journal/read.c: "Don't print checksum errors until we
			// know we're going to use a given journal entry").
			j.Notes = append(j.Notes, fmt.Sprintf("journal entry seq %d has a bad checksum; replayed, as recovery replays it", js.Seq))
		}
		j.Replay = append(j.Replay, js)
	}
	for _, js := range j.Replay {
		for _, e := range js.Entries {
			if e.Type != JEntryBtreeKeys {
				continue
			}
			for off := 0; off < len(e.Payload); {
				k, val, err := bp.DecodeUnpacked(e.Payload[off:])
				if err != nil {
					j.addErr(js.Seq, errInRange, &Error{Dev: js.Dev, Offset: js.Offset, What: "journal key", Btree: e.BtreeID.Name(fs.SB.Version), Level: int(e.Level),
						Err: fmt.Errorf("seq %d: jset_entry at byte %d of the jset: %w", js.Seq, jsetHeaderBytes+e.Offset, err)})
					break
				}
				j.Keys = append(j.Keys, JournalKey{Btree: e.BtreeID, Level: e.Level, Key: k, Val: val, Seq: js.Seq, offset: e.Offset + off})
				off += int(k.U64s) * 8
			}
		}
	}
	j.KeysRead = len(j.Keys)
	sort.SliceStable(j.Keys, func(a, b int) bool {
		x, y := &j.Keys[a], &j.Keys[b]
		if x.Btree != y.Btree {
			return x.Btree < y.Btree
		}
		if x.Level != y.Level {
			return x.Level < y.Level
		}
		return x.Key.Pos.Less(y.Key.Pos)
	})
	out := j.Keys[:0]
	for i := range j.Keys {
		k := &j.Keys[i]
		if i+1 < len(j.Keys) {
			n := &j.Keys[i+1]
			if n.Btree == k.Btree && n.Level == k.Level && n.Key.Pos == k.Key.Pos && k.Key.Type != bp.KeyAccounting {
				continue
			}
		}
		out = append(out, *k)
	}
	j.Keys = out
}

// Roots returns the btree roots of the replayed entries: for each btree
// the newest btree_root entry.
func (j *Journal) Roots() ([]Root, error) {
	roots := map[bp.BtreeID]Root{}
	unreadable := map[bp.BtreeID]error{} // up to 1.13: the last entry decides
	for _, js := range j.Replay {
		for _, e := range js.Entries {
			if e.Type != JEntryBtreeRoot {
				continue
			}
			if len(e.Payload) == 0 {
				// An entry with no key: recovery from the tools of
				// 1.14 on skips it (the root stays as it was); those of
				// 1.13 and before mark the root unreadable.
				if j.version < bp.VersionBackpointerBucketGen {
					unreadable[e.BtreeID] = &Error{Dev: js.Dev, Offset: js.Offset, What: "journal btree_root entry", Btree: e.BtreeID.String(), Level: int(e.Level),
						Err: fmt.Errorf("%w: seq %d holds no key: the root of btree %s is unreadable, as recovery of metadata up to 1.13 takes it", ErrCorrupt, js.Seq, e.BtreeID)}
				}
				continue
			}
			delete(unreadable, e.BtreeID)
			k, val, err := bp.DecodeUnpacked(e.Payload)
			if err != nil {
				return nil, &Error{Dev: js.Dev, Offset: js.Offset, What: "journal btree_root entry", Btree: e.BtreeID.String(), Level: int(e.Level), Err: err}
			}
			roots[e.BtreeID] = Root{Btree: e.BtreeID, Level: e.Level, Key: k, Val: val}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(unreadable)) {
		return nil, unreadable[id]
	}
	out := make([]Root, 0, len(roots))
	for _, r := range roots {
		out = append(out, r)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Btree < out[b].Btree })
	return out, nil
}

// keysFor returns the overlay keys of btree id at level within [lo, hi].
func (j *Journal) keysFor(id bp.BtreeID, level uint8, lo, hi bp.Pos) []JournalKey {
	ks := j.Keys
	i := sort.Search(len(ks), func(i int) bool {
		k := &ks[i]
		if k.Btree != id {
			return k.Btree > id
		}
		if k.Level != level {
			return k.Level > level
		}
		return !k.Key.Pos.Less(lo)
	})
	e := i
	for e < len(ks) && ks[e].Btree == id && ks[e].Level == level && !hi.Less(ks[e].Key.Pos) {
		e++
	}
	return ks[i:e]
}

// overlay merges the journal keys of the node's btree, level and range
// into its keys: at equal positions the (newest) journal key wins, and a deleted
// journal key hides the node's key.
func (j *Journal) overlay(n *Node) {
	jk := j.keysFor(n.BtreeID, n.Level, n.Min, n.Max)
	if len(jk) == 0 {
		return
	}
	out := make([]NodeKey, 0, len(n.Keys)+len(jk))
	if n.BtreeID == BtreeAccounting {
		n.BtreeKeys = n.Keys
	}
	a, b := 0, 0
	for a < len(n.Keys) || b < len(jk) {
		switch {
		case b == len(jk) || a < len(n.Keys) && n.Keys[a].Key.Pos.Less(jk[b].Key.Pos):
			out = append(out, n.Keys[a])
			a++
		default:
			// Accounting keys are deltas and stay apart in the
			// journal (compact keeps them all); a walk of the
			// btree sees the newest of a position, as `bcachefs
			// list` shows it.
			for b+1 < len(jk) && jk[b+1].Key.Pos == jk[b].Key.Pos {
				b++
			}
			if jk[b].Key.Type == bp.KeyAccounting && j.accountingConsumed(&jk[b], n.Keys, a) {
				b++
				continue
			}
			if a < len(n.Keys) && n.Keys[a].Key.Pos == jk[b].Key.Pos {
				a++
			}
			if jk[b].Key.Type != bp.KeyDeleted {
				out = append(out, NodeKey{Key: jk[b].Key, Val: jk[b].Val})
			}
			b++
		}
	}
	n.Keys = out
	n.JournalKeys = len(jk)
}

// BtreeAccounting is the id of the accounting btree.
const BtreeAccounting bp.BtreeID = 20

// AccountingDeltas returns the accounting keys of the replayed journal
// entries (all of them: they are deltas), in position order, oldest
// first within a position.
func (j *Journal) AccountingDeltas() []JournalKey {
	if j == nil {
		return nil
	}
	return j.keysFor(BtreeAccounting, 0, bp.PosMin, bp.SPosMax)
}

// journalErr is an error of reading the journal and what it bears on.
type journalErr struct {
	seq  uint64
	kind journalErrKind
	err  error
}

type journalErrKind uint8

const (
	errAlways  journalErrKind = iota // a journal bucket unread: entries may be missing
	errBadCopy                       // a damaged copy of entry seq: listed, no problem by itself (replayed when readable, else selectReplay tags it)
	errInRange                       // an entry or key of seq that did not decode
)

// addErr records err, of entry seq (0: none), in Errors.
func (j *Journal) addErr(seq uint64, kind journalErrKind, err error) {
	j.Errors = append(j.Errors, err)
	j.tagged = append(j.tagged, journalErr{seq: seq, kind: kind, err: err})
}

// Problems returns the errors of reading the journal that bear on what
// recovery replays: journal buckets that could not be read; entries of
// the replayed range (Start to End) that could not be read at all, or
// whose entries or keys did not decode; and seqs missing from that
// range. A bad checksum alone is not one: recovery replays such an entry
// after logging it, and so does bpcheck (a note says so). Blacklisted
// seqs and the newest flushed entry skipped as a torn write are not
// replayed, so their damage is not one either. A live check keeps the
// unreadable buckets only. A check reports them as errors: the keys
// they hide are missing from its overlay.
func (j *Journal) Problems() []error {
	replayed := len(j.Replay) > 0
	var out []error
	blacklisted := func(seq uint64) bool {
		for _, r := range j.blacklist {
			if seq >= r.Start && seq < r.Nr { // Nr holds the exclusive end
				return true
			}
		}
		return false
	}
	for _, e := range j.tagged {
		inRange := replayed && e.seq >= j.Start && e.seq <= j.End && !blacklisted(e.seq)
		switch {
		case e.kind == errAlways,
			!j.live && e.kind == errInRange && inRange:
			out = append(out, e.err)
		}
	}
	return out
}

// Summary describes the journal choice in one line.
func (j *Journal) Summary() string {
	var b strings.Builder
	if len(j.Replay) == 0 {
		b.WriteString("journal: nothing to replay")
	} else {
		fmt.Fprintf(&b, "journal: replaying entries %d-%d (%d entries), %d keys read, %d after sorting and compacting", j.Start, j.End, len(j.Replay), j.KeysRead, len(j.Keys))
	}
	for _, n := range j.Notes {
		b.WriteString("; ")
		b.WriteString(n)
	}
	return b.String()
}

// rewound refuses a journal with rewind ranges (1.39 rewind entries):
// recovery then replays the keys of the rewound seqs from their overwrite
// entries, newest first, which bpcheck does not do; its overlay would be
// wrong, and so would the findings.
func (j *Journal) rewound() error {
	for _, js := range j.Replay {
		for _, e := range js.Entries {
			if e.Type != JEntryRewind {
				continue
			}
			var from, to uint64
			if len(e.Payload) >= 16 {
				from, to = binary.LittleEndian.Uint64(e.Payload), binary.LittleEndian.Uint64(e.Payload[8:])
			}
			return &Error{Dev: js.Dev, Offset: js.Offset, What: "journal entry", Level: -1,
				Err: fmt.Errorf("%w: seq %d records a journal rewind (seqs %d-%d undone); bpcheck does not replay a rewound journal", ErrUnsupported, js.Seq, to+1, from)}
		}
	}
	return nil
}

// accountingConsumed reports whether the tools of metadata up to 1.28
// (bcachefs-tools v1.25) leave journal accounting key k out of what a
// walk sees: their accounting_read takes the journal's accounting keys
// into memory and drops those of the types not kept in memory (inum) and
// those the btree's key already holds (its version not older), so the
// btree's key shows. Newer tools keep them all. keys and a are the node's
// keys and the merge's place in them.
func (j *Journal) accountingConsumed(k *JournalKey, keys []NodeKey, a int) bool {
	if j.version > bp.VersionInodeHasCaseInsensitive {
		return false
	}
	if t := k.Key.Pos.Inode >> 56; t >= 8 { // inum (8) and unknown types
		return true
	}
	if a < len(keys) && keys[a].Key.Pos == k.Key.Pos {
		bv, jv := keys[a].Key.Version, k.Key.Version
		return bv.Hi > jv.Hi || bv.Hi == jv.Hi && bv.Lo >= jv.Lo
	}
	return false
}
