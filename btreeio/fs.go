package btreeio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"bpcheck/aio"
	"bpcheck/bp"
	"bpcheck/csum"
)

// FS is an opened bcachefs filesystem: its member devices and the
// superblock used for filesystem-wide facts.
type FS struct {
	SB      *Superblock
	Devices []*Device // indexed by member index; nil where not present
	Roots   []Root    // btree roots in btree id order
	// Journal is set when the filesystem was not cleanly unmounted: the
	// replayed journal, whose keys are overlaid on every node read.
	Journal *Journal
	// skipJournalKeys: the journal's keys are not overlaid (SkipJournalKeys).
	skipJournalKeys bool

	// Prefetch is how many leaves a walk reads ahead of the one it
	// visits (0: none). Set it before walking.
	Prefetch int
	// Async reads the prefetched leaves through package aio (io_uring
	// where the kernel allows, AsyncBackend chooses) instead of one
	// goroutine per read.
	Async        bool
	AsyncBackend aio.Backend

	nodePool sync.Pool
	readers  readerPool
	live     liveState
	// cacheCold says whether the last leaf a read-ahead walk read missed
	// the page cache: a walk starts from it (asyncLeaves). The first
	// walks start warm: on a cold cache that costs each of them one read
	// that would block (RWF_NOWAIT), on a warm one it saves them reading
	// their first leaves into fresh buffers.
	cacheCold atomic.Bool
	// problems: what Assemble met that a check reports as errors
	// (Problems).
	problems []error
}

// Problems returns what opening the filesystem met that a check must
// report as errors: members shorter than their superblock's buckets (the
// kernel refuses to bring such a device online: nodes and data past the
// end cannot be read), and, of an unclean filesystem, the journal's
// Problems.
func (fs *FS) Problems() []error {
	out := append([]error(nil), fs.problems...)
	if fs.Journal != nil {
		out = append(out, fs.Journal.Problems()...)
	}
	return out
}

// loadJournalRoots reads the journal of an unclean filesystem, takes the
// roots from it and arms the key overlay.
func (fs *FS) loadJournalRoots() error {
	j := fs.readJournalForReplay()
	if j.replaysPruned() {
		// last_seq did not grow with seq (a damaged journal): the
		// floor was wrong; read it all.
		j = fs.ReadJournal()
	}
	if len(j.Replay) == 0 {
		why := j.Summary()
		for i, e := range j.Errors {
			if i == 3 {
				why += fmt.Sprintf("; and %d more errors", len(j.Errors)-3)
				break
			}
			why += "; " + e.Error()
		}
		return fmt.Errorf("%w; no journal entry can be replayed (%s)", ErrUnclean, why)
	}
	if err := j.rewound(); err != nil {
		return err
	}
	roots, err := j.Roots()
	if err != nil {
		return err
	}
	fs.Journal = j
	fs.Roots = roots
	return nil
}

// Root is a btree root: the btree_ptr key that points at the root node and
// the root node's level.
type Root struct {
	Btree bp.BtreeID
	Level uint8
	Key   bp.Key
	Val   []byte
}

// SplitDevices accepts device arguments the way bcachefs does: several
// arguments, or one argument with paths separated by ':'. A single
// argument that names an existing file is that file (udev's
// /dev/disk/by-path names hold ':'); arguments are never split when
// there are several.
func SplitDevices(args []string) []string {
	if len(args) != 1 {
		return args
	}
	if _, err := os.Stat(args[0]); err == nil {
		return args
	}
	var out []string
	for _, p := range strings.Split(args[0], ":") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ErrDeviceSet marks problems with the set of devices given: a device of
// another filesystem, a member given twice, a member missing.
var ErrDeviceSet = errors.New("device set")

// Open opens the devices of one filesystem read-only and checks that they
// form a complete member set. Devices are matched by the superblock's
// internal uuid and dev_idx.
func Open(paths []string) (*FS, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no devices given", ErrDeviceSet)
	}
	var devs []*Device
	closeAll := func() {
		for _, d := range devs {
			d.Close()
		}
	}
	for _, p := range paths {
		d, err := OpenDevice(p)
		if err != nil {
			closeAll()
			return nil, err
		}
		devs = append(devs, d)
	}
	fs, err := Assemble(devs)
	if err != nil {
		closeAll()
		return nil, err
	}
	return fs, nil
}

// Assemble builds a filesystem from already opened devices.
func Assemble(devs []*Device) (*FS, error) {
	if len(devs) == 0 {
		return nil, fmt.Errorf("%w: no devices given", ErrDeviceSet)
	}
	// The newest superblock (highest seq) speaks for the filesystem.
	best := devs[0]
	for _, d := range devs[1:] {
		if d.SB.UUID != devs[0].SB.UUID {
			return nil, fmt.Errorf("%w: %s belongs to filesystem %s, but %s belongs to %s",
				ErrDeviceSet, d.Path, UUIDString(d.SB.UUID), devs[0].Path, UUIDString(devs[0].SB.UUID))
		}
		if d.SB.Seq > best.SB.Seq {
			best = d
		}
	}
	sb := best.SB
	fs := &FS{SB: sb, Devices: make([]*Device, len(sb.Members))}
	for _, d := range devs {
		idx := int(d.SB.DevIdx)
		if idx >= len(fs.Devices) || !sb.Members[idx].Exists() {
			return nil, fmt.Errorf("%w: %s claims member index %d, which the superblock does not list", ErrDeviceSet, d.Path, idx)
		}
		if sb.Members[idx].UUID != d.SB.Members[idx].UUID {
			return nil, fmt.Errorf("%w: %s has member uuid %s for index %d, superblock says %s",
				ErrDeviceSet, d.Path, UUIDString(d.SB.Members[idx].UUID), idx, UUIDString(sb.Members[idx].UUID))
		}
		if prev := fs.Devices[idx]; prev != nil {
			return nil, fmt.Errorf("%w: member %d given twice (%s and %s)", ErrDeviceSet, idx, prev.Path, d.Path)
		}
		fs.Devices[idx] = d
		m := &sb.Members[idx]
		hi, need := bits.Mul64(m.NBuckets, uint64(m.BucketSize)*SectorSize)
		if hi != 0 || uint64(d.Size) < need {
			fs.problems = append(fs.problems, &Error{Dev: d.Path, Offset: d.Size, What: "device", Level: -1,
				Err: fmt.Errorf("%w: the device is %d bytes, its %d buckets of %d sectors need %d (the kernel refuses it: device too small)",
					ErrTruncated, d.Size, m.NBuckets, m.BucketSize, need)})
		}
	}
	var missing []string
	for i := range sb.Members {
		m := &sb.Members[i]
		if m.Exists() && fs.Devices[i] == nil {
			missing = append(missing, fmt.Sprintf("member %d (uuid %s)", i, UUIDString(m.UUID)))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: filesystem %s is incomplete: missing %s", ErrDeviceSet, UUIDString(sb.UUID), strings.Join(missing, ", "))
	}
	return fs, nil
}

// KeySealed reports whether the filesystem's key is sealed with a
// passphrase and not unlocked yet: nodes and journal entries cannot be
// read before Unlock.
func (fs *FS) KeySealed() bool { return fs.SB.KeySealed() }

// Unlock unseals the key of an encrypted filesystem with the passphrase's
// key, in every member's superblock (they hold the same key). A key that
// does not unseal it is ErrWrongPassphrase.
func (fs *FS) Unlock(passphraseKey *csum.Key) error {
	if err := fs.SB.Unlock(passphraseKey); err != nil {
		return err
	}
	for _, d := range fs.Devices {
		if d == nil || d.SB == fs.SB || d.SB.Crypt == nil {
			continue
		}
		if err := d.SB.Unlock(passphraseKey); err != nil {
			return fmt.Errorf("%s: %w", d.Path, err)
		}
	}
	return nil
}

// CheckVersion refuses a filesystem whose metadata version is newer than
// bp.VersionKnown: its keys may carry what bpcheck does not know, so its
// findings could be wrong. The error wraps ErrNewerVersion.
func (fs *FS) CheckVersion() error {
	if fs.SB.Version <= bp.VersionKnown {
		return nil
	}
	dev := ""
	for _, d := range fs.Devices {
		if d != nil {
			dev = d.Path + " "
			break
		}
	}
	return fmt.Errorf("%w: %shas metadata version %s, newer than %s, the newest bpcheck knows (%s)",
		ErrNewerVersion, dev, bp.VersionString(fs.SB.Version), bp.VersionString(bp.VersionKnown), bp.EraOf(bp.VersionKnown).Tools)
}

// Close closes every device.
func (fs *FS) Close() error {
	fs.closeReaders()
	var first error
	for _, d := range fs.Devices {
		if d != nil {
			if err := d.Close(); err != nil && first == nil {
				first = err
			}
			if k := d.SB.CryptKey; k != nil && d.SB.Crypt != nil && d.SB.Crypt.Sealed() {
				clear(k[:]) // an unsealed key does not outlive the filesystem
			}
		}
	}
	return first
}

// DevBuckets returns the number of buckets of member dev that lie on its
// device: nbuckets, capped by the device's size, so that a damaged member
// field cannot make a reader loop or allocate for buckets that do not
// exist. It is 0 for absent members.
func (fs *FS) DevBuckets(dev int) uint64 {
	if dev < 0 || dev >= len(fs.SB.Members) || fs.Devices[dev] == nil {
		return 0
	}
	m := &fs.SB.Members[dev]
	if m.BucketSize == 0 {
		return 0
	}
	return min(m.NBuckets, uint64(fs.Devices[dev].Size)/(uint64(m.BucketSize)*SectorSize))
}

// Geometry returns what the backpointer math needs about this filesystem.
func (fs *FS) Geometry() *bp.Geometry {
	sb := fs.SB
	return &bp.Geometry{
		Version:          sb.Version,
		Shift:            sb.ExtentBPShift(),
		BtreeNodeSectors: sb.BtreeNodeSectors(),
		BucketSize: func(dev uint8) (uint32, bool) {
			m := sb.Member(dev)
			if m == nil {
				return 0, false
			}
			return uint32(m.BucketSize), true
		},
		Rotational: func(dev uint8) bool {
			m := sb.Member(dev)
			return m != nil && m.Rotational()
		},
	}
}

// ErrUnclean is returned when the filesystem was not cleanly unmounted and
// its btree roots live in the journal.
var ErrUnclean = errors.New("filesystem was not cleanly unmounted: its btree roots and newest keys are in the journal")

// jset_entry types that bpcheck reads.
const (
	JEntryBtreeKeys = 0
	JEntryBtreeRoot = 1
	// JEntryRewind (1.39) records a range of seqs whose btree updates a
	// journal rewind undoes (from the overwrite entries).
	JEntryRewind = 15
)

// JEntry is one jset_entry.
type JEntry struct {
	Type    uint8
	BtreeID bp.BtreeID
	Level   uint8
	Payload []byte
	Offset  int // byte offset of the entry within its container
}

// ParseJEntries splits a jset_entry list.
func ParseJEntries(b []byte) ([]JEntry, error) {
	var out []JEntry
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return out, fmt.Errorf("%w: jset_entry at byte %d: header runs past the end", ErrCorrupt, off)
		}
		u64s := int(binary.LittleEndian.Uint16(b[off:]))
		end := off + 8 + u64s*8
		if end > len(b) {
			return out, fmt.Errorf("%w: jset_entry at byte %d with u64s %d runs past the end", ErrCorrupt, off, u64s)
		}
		out = append(out, JEntry{Type: b[off+4], BtreeID: bp.BtreeID(b[off+2]), Level: b[off+3], Payload: b[off+8 : end], Offset: off})
		off = end
	}
	return out, nil
}

// LoadRoots reads the btree roots from the clean section. It returns
// ErrUnclean when the filesystem needs journal replay.
func (fs *FS) LoadRoots() error {
	sb := fs.SB
	if !sb.IsClean() || sb.Clean == nil {
		return fs.loadJournalRoots()
	}
	entries, err := ParseJEntries(sb.Clean.Entries)
	if err != nil {
		return &Error{Dev: fs.sbDevPath(), Offset: int64(sb.Offset)*SectorSize + int64(sb.Clean.Offset), What: "superblock clean section", Level: -1, Err: err}
	}
	fs.Roots = fs.Roots[:0]
	for _, e := range entries {
		if e.Type != JEntryBtreeRoot {
			continue
		}
		if len(e.Payload) == 0 {
			continue // root unreadable: no root for this btree
		}
		k, val, err := bp.DecodeUnpacked(e.Payload)
		if err != nil {
			return &Error{Dev: fs.sbDevPath(), Offset: int64(sb.Offset)*SectorSize + int64(sb.Clean.Offset+e.Offset), What: "btree root entry",
				Btree: e.BtreeID.Name(sb.Version), Level: int(e.Level), Err: err}
		}
		fs.Roots = append(fs.Roots, Root{Btree: e.BtreeID, Level: e.Level, Key: k, Val: val})
	}
	sort.SliceStable(fs.Roots, func(i, j int) bool { return fs.Roots[i].Btree < fs.Roots[j].Btree })
	return nil
}

// Root returns the root of btree id, or nil.
func (fs *FS) Root(id bp.BtreeID) *Root {
	for i := range fs.Roots {
		if fs.Roots[i].Btree == id {
			return &fs.Roots[i]
		}
	}
	return nil
}

// sbDevPath is the path of the member whose superblock speaks for the
// filesystem (fs.SB: the newest; the first given on a tie).
func (fs *FS) sbDevPath() string {
	for _, d := range fs.Devices {
		if d != nil && d.SB == fs.SB {
			return d.Path
		}
	}
	return fs.anyDevPath()
}

func (fs *FS) anyDevPath() string {
	for _, d := range fs.Devices {
		if d != nil {
			return d.Path
		}
	}
	return "?"
}

// DevPath returns the path of member dev, or "dev N" if absent.
func (fs *FS) DevPath(dev uint8) string {
	if int(dev) < len(fs.Devices) && fs.Devices[dev] != nil {
		return fs.Devices[dev].Path
	}
	return fmt.Sprintf("dev %d", dev)
}

// ReadNode reads the node that key k (a btree pointer in btree, pointing
// at a node of the given level) points to, trying each replica in turn.
// When every replica fails it returns the error of each.
//
// In a live check (SetLive) a node that fails to read is read again, each
// time through its pointer as a fresh read of its parent gives it.
func (fs *FS) ReadNode(btree bp.BtreeID, level uint8, k *bp.Key, val []byte) (*Node, error) {
	return fs.readNode(btree, level, k, val, true)
}

func (fs *FS) readNode(btree bp.BtreeID, level uint8, k *bp.Key, val []byte, retry bool) (*Node, error) {
	n, err := fs.readNodeOnce(btree, level, k, val)
	if err != nil && retry && fs.live.retries > 0 {
		return fs.retryNode(btree, level, k, err)
	}
	return n, err
}

// readNodeOnce reads the node k points to, trying each replica once.
func (fs *FS) readNodeOnce(btree bp.BtreeID, level uint8, k *bp.Key, val []byte) (*Node, error) {
	exp, err := ExpectFromKey(btree, level, k, val)
	if err != nil {
		return nil, &Error{Dev: fs.anyDevPath(), Offset: -1, What: "btree pointer", Btree: btree.Name(fs.SB.Version), Level: int(level), Err: err}
	}
	entries, _, err := bp.ValueEntries(k.Type, val)
	if err != nil {
		return nil, err
	}
	it := bp.NewPtrIter(entries, k.Size, nil)
	nodeBytes := int(fs.SB.BtreeNodeSectors()) * SectorSize
	var errs []error
	for {
		d, ok, err := it.Next()
		if err != nil {
			errs = append(errs, &Error{Dev: fs.anyDevPath(), Offset: -1, What: "btree pointer", Btree: btree.Name(fs.SB.Version), Level: int(level), Err: err})
		}
		if !ok {
			break
		}
		dev := fs.deviceOf(d.Ptr.Dev)
		if dev == nil {
			errs = append(errs, &Error{Dev: fs.DevPath(d.Ptr.Dev), Offset: int64(d.Ptr.Offset) * SectorSize, What: "btree node",
				Btree: btree.Name(fs.SB.Version), Level: int(level), Err: fmt.Errorf("%w: pointer to device %d, which is not present", ErrDeviceSet, d.Ptr.Dev)})
			continue
		}
		off := int64(d.Ptr.Offset) * SectorSize
		n := fs.getNode(nodeBytes)
		buf := n.buf[:nodeBytes]
		if _, err := dev.readNodeAt(buf[:readBytes(exp, nodeBytes)], off); err != nil {
			fs.Release(n)
			errs = append(errs, &Error{Dev: dev.Path, Offset: off, What: "btree node", Btree: btree.Name(fs.SB.Version), Level: int(level), Err: err})
			continue
		}
		if fs.Journal != nil {
			exp.MaxJournalSeq = fs.Journal.End
		}
		n, err = parseNodeInto(n, fs.SB, dev.Path, off, buf, exp, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if fs.Journal != nil && !fs.skipJournalKeys {
			fs.Journal.overlay(n)
		}
		return n, nil
	}
	if len(errs) == 0 {
		errs = append(errs, &Error{Dev: fs.anyDevPath(), Offset: -1, What: "btree pointer", Btree: btree.Name(fs.SB.Version), Level: int(level),
			Err: fmt.Errorf("%w: pointer %s has no device pointers", ErrCorrupt, k.Pos)})
	}
	min := bp.PosMin
	if exp.V2 {
		min = exp.Min
	}
	return nil, &NodeRangeError{Min: min, Max: k.Pos, Err: errors.Join(errs...)}
}

// readBytes is how much of a node of nodeBytes is read: the sectors its
// pointer says were written (btree_ptr_v2), rounded up to nodeAlign (a
// multiple of the block size, and aligned for O_DIRECT), or the whole
// node when the pointer does not say. Its parse reads no further
// (parseNodeInto stops at the sectors written that the pointer gives), so
// the rest of the buffer, stale bytes of an earlier node, is never read.
// A real filesystem's nodes are written in part: 28 KiB of 64 KiB on
// average on a 1.35 M-extent image.
func readBytes(exp NodeExpect, nodeBytes int) int {
	w := int(exp.SectorsWritten) * SectorSize
	if w <= 0 || w >= nodeBytes {
		return nodeBytes
	}
	return min(nodeBytes, (w+nodeAlign-1)/nodeAlign*nodeAlign)
}

// getNode returns a node from the pool with a buffer of at least size
// bytes.
func (fs *FS) getNode(size int) *Node {
	if n, ok := fs.nodePool.Get().(*Node); ok && cap(n.buf) >= size {
		return n
	}
	n := &Node{buf: aio.AlignedBuf(size, nodeAlign)}
	aio.Prefault(n.buf) // fresh memory that reads fill: populated at once
	return n
}

// Release returns a node read by ReadNode to the filesystem's pool. The
// node, its keys and their values must not be used afterwards. Releasing
// is optional: an unreleased node is garbage collected.
func (fs *FS) Release(n *Node) {
	if n == nil || n.buf == nil {
		return
	}
	n.buf = n.buf[:cap(n.buf)]
	n.Keys, n.Problems, n.packed, n.BtreeKeys = nil, nil, nil, nil
	fs.nodePool.Put(n)
}

// NodeRangeError is the error of a node that could not be read from any
// replica, with the key range its parent pointer gives it (Min is POS_MIN
// when the pointer does not say).
type NodeRangeError struct {
	Min, Max bp.Pos
	Err      error
}

// Error implements error.
func (e *NodeRangeError) Error() string { return e.Err.Error() }

// Unwrap returns the per-replica errors.
func (e *NodeRangeError) Unwrap() error { return e.Err }

func (fs *FS) deviceOf(dev uint8) *Device {
	if int(dev) < len(fs.Devices) {
		return fs.Devices[dev]
	}
	return nil
}

// Visitor receives the nodes of a walk. Node is called for every node read,
// parents before children, siblings in key order. The node and its keys
// are valid only until the walk leaves the node's subtree: a visitor that
// keeps key values must copy them. NodeError is called for
// a node that could not be read; the walk goes on with the next sibling.
// Returning an error from either stops the walk with that error.
type Visitor interface {
	Node(n *Node) error
	NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error
}

// LeafSharer is a Visitor that shares out the leaves of the level-1 nodes
// its walks meet: instead of visiting all of a level-1 node's leaf
// children itself, the walk hands their pointers (copies, which outlive
// the node) to ShareLeaves and visits, in order and reading ahead as
// usual, only the ones it returns; the visitor has the others walked
// elsewhere (by WalkLeaves), so that several walkers can share one wide
// subtree. The level-1 node itself still goes to Node first.
type LeafSharer interface {
	Visitor
	ShareLeaves(btree bp.BtreeID, kids []NodeKey) []NodeKey
}

// PackedLeafVisitor is a Visitor that can take the keys of a leaf as they
// lie packed in the node, without their being decoded into Node.Keys
// first. Walks that read leaves ahead (the default) offer it the leaves
// whose keys lie in one bset, with no journal key overlaid, no range
// update from the parent pointer and no problem met while reading the
// node (Node.Problems is reported by Node only): PackedLeaf gets the node
// with its keys packed (Node.Packed) and returns whether it took it. A
// leaf not taken (the visitor met a key it leaves to the general rules:
// out of order or outside the node's range, a repeated position, a
// deleted key, one that does not decode) is decoded and handed to Node,
// so the visitor must undo what it did with the node's keys before
// returning false. Every other node goes to Node.
type PackedLeafVisitor interface {
	Visitor
	PackedLeaf(n *Node) (taken bool, err error)
}

// VisitLeaf hands a parsed leaf to v as walks do: to PackedLeaf while its
// keys are packed (and v takes packed keys) and reading it met no
// problem, else, or when PackedLeaf did not take it, decoded to Node.
func VisitLeaf(v Visitor, n *Node) error {
	if n.packed != nil {
		if pv, ok := v.(PackedLeafVisitor); ok && len(n.Problems) == 0 {
			taken, err := pv.PackedLeaf(n)
			if err != nil || taken {
				return err
			}
		}
		n.DecodeKeys()
	}
	return v.Node(n)
}

// overlayJournal overlays the journal's keys on a parsed node; a node
// whose keys are still packed is decoded first when the journal has keys
// for it.
func (fs *FS) overlayJournal(n *Node) {
	if fs.Journal == nil || fs.skipJournalKeys {
		return
	}
	if n.packed != nil {
		if len(fs.Journal.keysFor(n.BtreeID, n.Level, n.Min, n.Max)) == 0 {
			return
		}
		n.DecodeKeys()
	}
	fs.Journal.overlay(n)
}

// SkipJournalKeys stops overlaying the journal's keys on the nodes read
// from now on; the roots stay those the journal gave. The bcachefs-tools
// that write metadata up to 1.27 list an unclean filesystem so: their
// recovery without journal replay (norecovery) drops the journal's keys
// before the listing (listfmt.ListsJournalKeys).
func (fs *FS) SkipJournalKeys() { fs.skipJournalKeys = true }

// Walk reads btree id from its root down to minLevel, depth first in key
// order, and hands every node to v. A btree without a root is empty.
func (fs *FS) Walk(id bp.BtreeID, minLevel uint8, v Visitor) error {
	r := fs.Root(id)
	if r == nil {
		return nil
	}
	return fs.walk(id, r.Level, &r.Key, r.Val, minLevel, v)
}

func (fs *FS) walk(id bp.BtreeID, level uint8, k *bp.Key, val []byte, minLevel uint8, v Visitor) error {
	return fs.walkRange(id, level, k, val, minLevel, bp.PosMin, bp.SPosMax, false, v)
}
