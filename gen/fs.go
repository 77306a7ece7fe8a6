package gen

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"bpcheck/bp"
)

// The namespace: the root directory (inode 4096 of subvolume 1, snapshot
// U32_MAX), lost+found (the first inode bcachefs allocates, as
// `bcachefs format` makes it: 2^31, or 4097 in 1.28, where inodes_32bit
// is on by default), then nrDirs directories d00000, d00001, …
// in the root and the files f000000000, … in them, filesPerDir to a
// directory in inode order. Inode numbers are dense: lost+found, the
// directories, then the files. The directories are made before the files
// (their number is a bound on the files, so the last ones may be empty):
// the root's dirents and every directory inode come first in their
// btrees, and each directory's dirents, sorted by hash, are written when
// its last file is done, so memory is bounded by one directory.

// filesPerDir is the most files a directory gets.
const filesPerDir = 1 << 16

// lostFoundIno is lost+found's inode number in p's version.
func lostFoundIno(p *Params) uint64 { return mustFormat(p).lostFound }

// firstDirIno is the inode number of the first directory.
func firstDirIno(p *Params) uint64 { return lostFoundIno(p) + 1 }

// pendingDirent is a dirent of the open directory.
type pendingDirent struct {
	off uint64
	ino uint64
	idx uint64 // file index (its name)
}

// namespace is the state of the inode and dirent streams.
type namespace struct {
	nrDirs    uint64
	firstFile uint64
	inodes    *btreeWriter
	dirents   *btreeWriter
	curDir    uint64 // index of the directory the pending dirents belong to
	pending   []pendingDirent
	used      offsetSet // dirent offsets taken in the open directory
	nrInodes  uint64
	nextIno   uint64 // inode number after the last one made
	name      []byte
	val       []byte
}

// maxFiles bounds the files of a filesystem: one per extent at most,
// plus the duplicate extents' files.
func maxFiles(p *Params) uint64 {
	return uint64(p.Extents) + uint64(p.Inject[KindDupBadCsum]) + maxECExtents(p)
}

func nrDirsFor(p *Params) uint64 {
	return max(1, (maxFiles(p)+filesPerDir-1)/filesPerDir)
}

// firstFileIno is the inode number of the first file.
func firstFileIno(p *Params) uint64 { return firstDirIno(p) + nrDirsFor(p) }

// hashSeed is the str_hash seed of inode ino (random in bcachefs; here a
// function of the seed).
func (g *generator) hashSeed(ino uint64) uint64 {
	return mix64(g.p.Seed ^ mix64(ino^0x5eed5eed5eed5eed))
}

func dirName(b []byte, i uint64) []byte  { return appendName(b[:0], 'd', i, 5) }
func fileName(b []byte, i uint64) []byte { return appendName(b[:0], 'f', i, 9) }

// appendName appends prefix and i in decimal, zero-padded to width digits.
func appendName(b []byte, prefix byte, i uint64, width int) []byte {
	var d [20]byte
	n := len(d)
	for i > 0 || n > len(d)-width {
		n--
		d[n] = byte('0' + i%10)
		i /= 10
	}
	return append(append(b, prefix), d[n:]...)
}

var lostFoundName = []byte("lost+found")

// newInode is an inode as bcachefs creates it: siphash dirents, the
// filesystem's journal seq, time 0 (the filesystem's time base).
func (g *generator) newInode(ino uint64, mode uint16) inode {
	return inode{journalSeq: g.journalSeq, hashSeed: g.hashSeed(ino), flags: strHashSiphash << 20, mode: mode}
}

func (g *generator) addInode(ns *namespace, ino uint64, in *inode) error {
	ns.val = appendInodeV3(ns.val[:0], in)
	ns.nrInodes++
	ns.nextIno = max(ns.nextIno, ino+1)
	g.snapKeys[1].add(len(ns.val))
	return ns.inodes.add(bp.Pos{Inode: 0, Offset: ino, Snapshot: math.MaxUint32}, 0, keyInodeV3, ns.val)
}

func (g *generator) addDirent(ns *namespace, dir, off, target uint64, dtype uint8, name []byte) error {
	ns.val = appendDirent(ns.val[:0], target, dtype, name)
	g.snapKeys[2].add(len(ns.val))
	return ns.dirents.add(bp.Pos{Inode: dir, Offset: off, Snapshot: math.MaxUint32}, 0, keyDirent, ns.val)
}

// startNamespace writes the root directory, lost+found and the
// directories (inodes and the root's dirents).
func (g *generator) startNamespace() error {
	ns := &namespace{nrDirs: nrDirsFor(&g.p), firstFile: firstFileIno(&g.p), used: newOffsetSet(filesPerDir)}
	lostFoundIno, firstDirIno := lostFoundIno(&g.p), firstDirIno(&g.p)
	ns.inodes = newBtreeWriter(g, bp.BtreeInodes, 0, bp.PosMin)
	ns.dirents = newBtreeWriter(g, btreeDirents, 0, bp.PosMin)
	g.ns = ns
	rootSeed := g.hashSeed(rootIno)

	// The root's dirents: lost+found and the directories, by offset.
	type ent struct {
		off, ino uint64
		dt       uint8
		name     []byte
	}
	lfOff := direntHash(rootSeed, lostFoundName)
	ents := []ent{{off: lfOff, ino: lostFoundIno, dt: dtDir, name: lostFoundName}}
	used := newOffsetSet(int(ns.nrDirs) + 1)
	used.take(lfOff)
	dirOff := make([]uint64, ns.nrDirs)
	for i := uint64(0); i < ns.nrDirs; i++ {
		name := dirName(nil, i)
		off := used.probe(direntHash(rootSeed, name))
		dirOff[i] = off
		ents = append(ents, ent{off: off, ino: firstDirIno + i, dt: dtDir, name: name})
	}
	sort.Slice(ents, func(a, b int) bool { return ents[a].off < ents[b].off })

	root := g.newInode(rootIno, modeDir|0o755)
	root.hashSeed = rootSeed
	root.setNlink(2 + 1 + ns.nrDirs)
	root.f[fSubvol] = rootSubvol
	if err := g.addInode(ns, rootIno, &root); err != nil {
		return err
	}
	lf := g.newInode(lostFoundIno, modeDir|0o700)
	lf.setNlink(2)
	lf.f[fDir], lf.f[fDirOffset], lf.f[fDepth] = rootIno, lfOff, 1
	if err := g.addInode(ns, lostFoundIno, &lf); err != nil {
		return err
	}
	for i := uint64(0); i < ns.nrDirs; i++ {
		d := g.newInode(firstDirIno+i, modeDir|0o755)
		d.setNlink(2)
		d.f[fDir], d.f[fDirOffset], d.f[fDepth] = rootIno, dirOff[i], 1
		if err := g.addInode(ns, firstDirIno+i, &d); err != nil {
			return err
		}
	}
	for _, e := range ents {
		if err := g.addDirent(ns, rootIno, e.off, e.ino, e.dt, e.name); err != nil {
			return err
		}
	}
	return nil
}

// offsetSet is a set of dirent offsets (never 0: offsets start at 2), an
// open-addressing table sized for a number of entries.
type offsetSet struct {
	slots []uint64
	mask  uint64
}

func newOffsetSet(n int) offsetSet {
	size := uint64(16)
	for size < 2*uint64(n) {
		size *= 2
	}
	return offsetSet{slots: make([]uint64, size), mask: size - 1}
}

// take adds off and reports whether it was free.
func (s *offsetSet) take(off uint64) bool {
	for i := mix64(off) & s.mask; ; i = (i + 1) & s.mask {
		switch s.slots[i] {
		case off:
			return false
		case 0:
			s.slots[i] = off
			return true
		}
	}
}

// probe returns the first free offset from off (linear probing, as
// bch2_hash_set places a key whose slot is taken) and takes it. The set
// must have room (at most n entries).
func (s *offsetSet) probe(off uint64) uint64 {
	for !s.take(off) {
		off++
	}
	return off
}

func (s *offsetSet) clear() { clear(s.slots) }

// fileDone writes the inode of file ino, which holds sectors sectors
// from offset 0, and queues its dirent.
func (g *generator) fileDone(ino, sectors uint64) error {
	ns := g.ns
	k := ino - ns.firstFile
	dir := k / filesPerDir
	if dir >= ns.nrDirs {
		return fmt.Errorf("gen: file %d beyond the %d directories", ino, ns.nrDirs)
	}
	if dir != ns.curDir {
		if err := g.flushDirents(); err != nil {
			return err
		}
		ns.curDir = dir
	}
	dirIno := firstDirIno(&g.p) + dir
	ns.name = fileName(ns.name, k)
	off := ns.used.probe(direntHash(g.hashSeed(dirIno), ns.name))
	ns.pending = append(ns.pending, pendingDirent{off: off, ino: ino, idx: k})
	in := g.newInode(ino, modeReg|0o644)
	in.setNlink(1)
	in.size = sectors * sectorSize
	in.sectors = sectors
	in.f[fDir], in.f[fDirOffset] = dirIno, off
	if g.ecPhase {
		// erasure_code=1 set on the file (stored as the option + 1), so
		// that its erasure-coded extents need no reconcile work.
		in.f[fErasureCode] = 1 + 1
		in.f[fFieldsSet] = 1 << inodeOptErasureCode
		if g.f.ecInodeReplicas {
			in.f[fDataReplicas] = 2 + 1
			in.f[fFieldsSet] |= 1 << inodeOptDataReplicas
		}
		if g.f.inodeOptsFlag {
			in.flags |= inodeHasInodeOpts
		}
	}
	return g.addInode(ns, ino, &in)
}

// flushDirents writes the dirents of the open directory.
func (g *generator) flushDirents() error {
	ns := g.ns
	p := ns.pending
	slices.SortFunc(p, func(a, b pendingDirent) int { return cmp.Compare(a.off, b.off) })
	for _, d := range p {
		ns.name = fileName(ns.name, d.idx)
		if err := g.addDirent(ns, firstDirIno(&g.p)+ns.curDir, d.off, d.ino, dtReg, ns.name); err != nil {
			return err
		}
	}
	ns.pending = ns.pending[:0]
	ns.used.clear()
	return nil
}

// Values of the subvolume and snapshot btrees.

// snapshotVal is the root snapshot: a subvolume snapshot (flags SUBVOL)
// of subvolume 1 in tree 1, no parent or children. From 1.39 the value
// also has a state (after btime): live, the SUBVOL flag kept as its
// legacy shadow.
func snapshotVal(f *format) []byte {
	n := 56
	if f.stateCodewords {
		n = 64
	}
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b[0:], 1<<1)
	binary.LittleEndian.PutUint32(b[16:], rootSubvol)
	binary.LittleEndian.PutUint32(b[20:], 1)
	if f.stateCodewords {
		binary.LittleEndian.PutUint32(b[56:], snapshotStateLive)
	}
	return b
}

// subvolumeVal is the root subvolume: snapshot U32_MAX, root inode; from
// 1.39 with state live (after otime).
func subvolumeVal(f *format) []byte {
	n := 40
	if f.stateCodewords {
		n = 48
	}
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b[4:], math.MaxUint32)
	binary.LittleEndian.PutUint64(b[8:], rootIno)
	if f.stateCodewords {
		binary.LittleEndian.PutUint32(b[40:], subvolumeStateLive)
	}
	return b
}

// The live states of snapshots and subvolumes (1.39: BCH_SNAPSHOT_STATES,
// BCH_SUBVOLUME_STATES).
const (
	snapshotStateLive  = 0x757c47a2
	subvolumeStateLive = 0x4ad5447e
)

// snapshotTreeVal is snapshot tree 1: master subvolume 1, root snapshot
// U32_MAX.
func snapshotTreeVal() []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b[0:], rootSubvol)
	binary.LittleEndian.PutUint32(b[4:], math.MaxUint32)
	return b
}

// inodeCursorVal is the inode_alloc_cursor of shard 0: bits 0, gen 0,
// the next inode number to try.
func inodeCursorVal(next uint64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b[8:], next)
	return b
}
