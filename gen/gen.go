// Package gen writes synthetic bcachefs filesystems: sparse device images
// in the on-disk format of bcachefs-tools v1.36.1 (metadata version 1.36,
// backpointer format B, extent_bp_shift 16; Params.MetadataVersion also
// offers 1.28 as v1.25.3 writes it and 1.39 as v1.39.2 writes it) holding
// only metadata, with optional injected faults, and a manifest that lists
// the findings `bpcheck check` must report for them.
//
// Data regions are never written: they are holes that read as zeros, and
// every extent carries the crc32c checksum of those zeros. With
// Params.Encrypted the filesystem is written as `bcachefs format
// --encrypted` sets it up: btree nodes and the journal entry encrypted
// and MAC'd, and extents carrying the chacha20_poly1305_80 MAC of the
// zeros under their nonce (see crypt.go). Keys are made in
// key order and streamed into btree nodes (packed with the format bcachefs
// would compute for each node), so memory stays bounded by the number of
// nodes, not of keys. The same parameters give byte-identical images.
package gen

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"

	"bpcheck/bp"
	"bpcheck/csum"
	"bpcheck/report"
)

const dataCsumType = uint8(csum.CRC32C)

// journalSeq is the sequence number of the one journal entry, equal to the
// clean section's journal_seq.
const journalSeq = 1

type generator struct {
	p           Params
	f           *format
	dir         string
	devs        []*device
	files       []*os.File
	uuid        [16]byte
	userUUID    [16]byte
	memberUUID  [][16]byte
	bsetMagic   uint64
	jsetMagic   uint64
	nodeSectors uint64
	nodeBytes   int
	journalSeq  uint64
	writeClock  uint64
	jsetBytes   []byte
	replicaSets map[string][]byte
	seenSets    map[int]bool
	devNodes    [][][2]uint64
	roots       []root
	// crypt is the key of an encrypted filesystem (nil: not encrypted);
	// keyVersion the last key version given to an extent (the journal's
	// key_version).
	crypt      *cryptState
	cryptField []byte // the crypt field, key sealed
	keyVersion uint64

	src *extentSource
	ns  *namespace
	// userByFirst sums the extent sizes by the first device of their
	// replicas (which gives the replica set).
	userByFirst []uint64
	ext         *btreeWriter
	bps         []*btreeWriter
	alloc       []*btreeWriter
	nodes       []*nodeInfo // nodes placed during the data phase

	zeroCsum []uint64 // by sectors; 0 = not computed yet (a crc32c of zeros is 0, computed once)
	zeroDone []bool

	// injection state
	inj       *injector
	ec        *ecState // nil without stripes
	ecPhase   bool     // files made now are erasure coded
	wrongDirt []bool   // per device: the open data bucket gets a wrong dirty count
	findings  []report.Finding
	injected  map[string]int
	extents   int64
	inodes    int64
	// snapKeys counts the keys and their unpacked bytes in the btrees
	// with snapshots (extents, inodes, dirents), for 1.39's per-btree
	// snapshot accounting.
	snapKeys [3]keyCount

	// node writing
	jobs    chan *nodeJob
	wg      sync.WaitGroup
	errMu   sync.Mutex
	err     error
	freeBuf chan *nodeBuf
	scratch []byte
	bpScr   [bp.BackpointerBytes]byte
}

// keyCount is the number of keys of a btree and their bytes unpacked
// (bkey_bytes: header and value).
type keyCount struct{ keys, bytes uint64 }

func (c *keyCount) add(valBytes int) {
	c.keys++
	c.bytes += uint64(bp.KeyBytes + valBytes)
}

type nodeJob struct {
	nb   *nodeBuf
	h    nodeHeader
	f    bp.Format
	ptrs []bp.Ptr
}

// Generate writes the filesystem described by p into dir: dev0.img …
// (sparse files of p.DeviceSize bytes) and manifest.json. It returns the
// manifest.
func Generate(dir string, p Params) (*Manifest, error) {
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	g, err := newGenerator(dir, p)
	if err != nil {
		return nil, err
	}
	m, err := g.run()
	if cerr := g.closeFiles(); err == nil {
		err = cerr
	}
	if g.crypt != nil {
		g.crypt.wait() // no sealing goroutine outlives Generate
	}
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return m, nil
}

func newGenerator(dir string, p Params) (*generator, error) {
	g := &generator{p: p, f: mustFormat(&p), dir: dir, journalSeq: journalSeq, replicaSets: map[string][]byte{}, seenSets: map[int]bool{},
		injected: map[string]int{}}
	r := newRNG(p.Seed, 0)
	g.uuid, g.userUUID = r.uuid(), r.uuid()
	g.bsetMagic = binary.LittleEndian.Uint64(g.uuid[:8]) ^ 0x90135c78b99e07f5
	g.jsetMagic = binary.LittleEndian.Uint64(g.uuid[:8]) ^ 0x245235c1a3625032
	g.nodeSectors = uint64(p.BtreeNodeSize) / sectorSize
	g.nodeBytes = int(p.BtreeNodeSize)
	for i := 0; i < p.Devices; i++ {
		g.devs = append(g.devs, newDevice(i, &p))
		g.memberUUID = append(g.memberUUID, r.uuid())
	}
	if p.Encrypted {
		g.crypt = newCrypt(&p, g.uuid)
	}
	g.devNodes = make([][][2]uint64, p.Devices)
	g.wrongDirt = make([]bool, p.Devices)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for i := range g.devs {
		// Never through a symlink: its target would be truncated.
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("dev%d.img", i)), os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o644)
		if err != nil {
			g.closeFiles()
			return nil, err
		}
		g.files = append(g.files, f)
		if err := f.Truncate(p.DeviceSize); err != nil {
			g.closeFiles()
			return nil, err
		}
	}
	g.freeBuf = make(chan *nodeBuf, 256)
	return g, nil
}

func (g *generator) closeFiles() error {
	var first error
	for _, f := range g.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	g.files = nil
	return first
}

func (g *generator) setErr(err error) {
	g.errMu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.errMu.Unlock()
}

func (g *generator) getErr() error {
	g.errMu.Lock()
	defer g.errMu.Unlock()
	return g.err
}

// startWriters starts the goroutines that pack, checksum and write nodes.
func (g *generator) startWriters() {
	n := max(1, runtime.GOMAXPROCS(0)-1)
	g.jobs = make(chan *nodeJob, 4*n)
	for i := 0; i < n; i++ {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			buf := make([]byte, g.nodeBytes)
			for j := range g.jobs {
				if g.getErr() == nil {
					g.writeNode(buf, j)
				}
				g.putBuf(j.nb)
			}
		}()
	}
}

func (g *generator) writeNode(buf []byte, j *nodeJob) {
	n, err := encodeNode(buf, &j.h, j.nb, &j.f)
	if err != nil {
		g.setErr(fmt.Errorf("btree %s level %d node %s: %w", j.h.btree, j.h.level, j.h.max, err))
		return
	}
	for _, p := range j.ptrs {
		if _, err := g.files[p.Dev].WriteAt(buf[:n], int64(p.Offset)*sectorSize); err != nil {
			g.setErr(err)
			return
		}
	}
}

func (g *generator) stopWriters() error {
	close(g.jobs)
	g.wg.Wait()
	return g.getErr()
}

func (g *generator) newBuf() *nodeBuf {
	select {
	case b := <-g.freeBuf:
		return b
	default:
		num, den := fill(&g.p)
		return newNodeBuf(g.nodeBytes, num, den)
	}
}

func (g *generator) putBuf(b *nodeBuf) {
	select {
	case g.freeBuf <- b:
	default:
	}
}

// nodeSeq is the random instance id (bset seq) of node number global.
func (g *generator) nodeSeq(global int) uint64 {
	return mix64(g.p.Seed^mix64(uint64(global)+0x1d8e4e27c47d124f)) | 1
}

// placeNode gives node number global its replicas: consecutive devices
// starting at global modulo the device count, each a slot from the top.
func (g *generator) placeNode(global int, allocs []nodeAlloc) ([]bp.Ptr, error) {
	ptrs := make([]bp.Ptr, g.p.Replicas)
	for j := range ptrs {
		d := g.devs[(global+j)%len(g.devs)]
		off, err := d.allocNode(&allocs[d.idx], g.nodeSectors)
		if err != nil {
			return nil, err
		}
		ptrs[j] = bp.Ptr{Offset: off, Dev: uint8(d.idx)}
	}
	return ptrs, nil
}

// makeNode fills in a node's info and, if write is set, queues it for
// writing (taking n); otherwise n is recycled.
func (g *generator) makeNode(btree bp.BtreeID, level uint8, n *nodeBuf, max bp.Pos, global int, ptrs []bp.Ptr, write bool) *nodeInfo {
	fs, u64s := n.withMax(max)
	info := &nodeInfo{btree: btree, level: level, min: n.min, max: max, seq: g.nodeSeq(global),
		sectorsWritten: uint16(sectorsFor(u64s)), ptrs: ptrs, global: global, keys: len(n.keys)}
	if !write {
		g.putBuf(n)
		return info
	}
	j := &nodeJob{nb: n, f: fs.Done(), ptrs: ptrs,
		h: nodeHeader{magic: g.bsetMagic, btree: btree, level: level, min: n.min, max: max, seq: info.seq, journalSeq: g.journalSeq,
			version: g.f.version, key: g.cryptKey()}}
	g.jobs <- j
	return info
}

// emit is the data-phase sink: nodes get their slots as they fill.
func (g *generator) emit(btree bp.BtreeID, level uint8, n *nodeBuf, max bp.Pos) (*nodeInfo, error) {
	global := len(g.nodes)
	allocs := make([]nodeAlloc, len(g.devs))
	for i, d := range g.devs {
		allocs[i] = d.nodes
	}
	ptrs, err := g.placeNode(global, allocs)
	if err != nil {
		return nil, err
	}
	for i, d := range g.devs {
		d.nodes = allocs[i]
	}
	info := g.makeNode(btree, level, n, max, global, ptrs, true)
	g.nodes = append(g.nodes, info)
	return info, nil
}

// devStart is the first position of device d's part of the per-device
// btrees (backpointers, alloc).
func devStart(d int) bp.Pos { return bp.Pos{Inode: uint64(d)} }

func (g *generator) run() (*Manifest, error) {
	g.startWriters()
	m, err := g.generate()
	if werr := g.stopWriters(); err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	return m, g.writeMetadata(m)
}

func (g *generator) generate() (*Manifest, error) {
	p := &g.p
	g.ext = newBtreeWriter(g, bp.BtreeExtents, 0, bp.PosMin)
	for i := range g.devs {
		g.bps = append(g.bps, newBtreeWriter(g, bp.BtreeBackpointers, 0, devStart(i)))
		g.alloc = append(g.alloc, newBtreeWriter(g, bp.BtreeAlloc, 0, devStart(i)))
	}
	// Superblock and journal buckets come first in every device's alloc keys.
	for _, d := range g.devs {
		for b := uint64(0); b < d.journalStart; b++ {
			if err := g.addAlloc(d, b, bp.DataSB, d.sbSectorsIn(b), 0, 1); err != nil {
				return nil, err
			}
		}
		for b := d.journalStart; b < d.dataStart; b++ {
			if err := g.addAlloc(d, b, bp.DataJournal, d.bucketSectors, 0, 1); err != nil {
				return nil, err
			}
		}
	}
	// The journal entry is written to the first Replicas devices.
	jdevs := make([]uint8, p.Replicas)
	for i := range jdevs {
		jdevs[i] = uint8(i)
	}
	g.noteReplicasReq(bp.DataJournal, jdevs, 1)
	g.userByFirst = make([]uint64, len(g.devs))
	if err := g.startNamespace(); err != nil {
		return nil, err
	}
	g.src = newExtentSource(p, g.devs)
	g.src.onClose = g.closeDataBucket
	inj, err := newInjector(p)
	if err != nil {
		return nil, err
	}
	g.inj = inj
	var x extent
	for i := int64(0); i < p.Extents; i++ {
		if err := g.src.next(&x); err != nil {
			return nil, err
		}
		if err := g.addExtent(i, &x); err != nil {
			return nil, err
		}
	}
	if err := g.inj.leftover(); err != nil {
		return nil, err
	}
	if s := g.src; s.left > 0 {
		// The last file ends with the last extent.
		if err := g.fileDone(s.ino, s.fileOff); err != nil {
			return nil, err
		}
		s.left = 0
	}
	if p.ECStripes > 0 {
		if g.ec, err = newECState(p); err != nil {
			return nil, err
		}
		g.ecPhase = true
		if err := g.addStripes(); err != nil {
			return nil, err
		}
	}
	if err := g.flushDirents(); err != nil {
		return nil, err
	}
	return g.finish()
}

// cryptKey is the filesystem's key, nil when it is not encrypted.
func (g *generator) cryptKey() *csum.Key {
	if g.crypt == nil {
		return nil
	}
	return &g.crypt.key
}

// appendDataCRC appends the crc entry of an extent of size sectors whose
// data reads as zeros: crc32c of the zeros, or on an encrypted
// filesystem the extent gets the next key version (returned) and the
// chacha20_poly1305_80 MAC of the zeros under its nonce (crc64). bad
// spoils the checksum.
func (g *generator) appendDataCRC(b []byte, size uint32, bad bool) ([]byte, uint64, error) {
	var spoil uint64
	if bad {
		spoil = 0x0bad0c5
	}
	if g.crypt == nil {
		c := bp.CRC{CsumType: dataCsumType, CompressedSize: size, UncompressedSize: size, CsumLo: g.csumOfZeros(size) ^ spoil}
		b, _ = c.AppendCRC(b)
		return b, 0, nil
	}
	g.keyVersion++
	lo, hi, err := zerosMAC(&g.crypt.key, g.keyVersion, size)
	if err != nil {
		return b, 0, err
	}
	return appendCRC64(b, dataCsumEncrypted, size, lo^spoil, hi), g.keyVersion, nil
}

// csumOfZeros is the crc32c (bcachefs data checksum type crc32c) of
// sectors of zeros: what a reader computes over the holes.
func (g *generator) csumOfZeros(sectors uint32) uint64 {
	if int(sectors) < len(g.zeroDone) && g.zeroDone[sectors] {
		return g.zeroCsum[sectors]
	}
	for len(g.zeroDone) <= int(sectors) {
		g.zeroDone = append(g.zeroDone, false)
		g.zeroCsum = append(g.zeroCsum, 0)
	}
	h, _ := csum.New(csum.Type(dataCsumType))
	var z [sectorSize]byte
	for i := uint32(0); i < sectors; i++ {
		h.Write(z[:])
	}
	v := h.Sum().Lo
	g.zeroCsum[sectors], g.zeroDone[sectors] = v, true
	return v
}

// noteReplicas records a replica set of data type dt (for the
// superblock's replicas section): devices devs, one of them required.
func (g *generator) noteReplicas(dt bp.DataType, devs []uint8) {
	// Replica sets follow from the first device (the rotation start).
	k := int(dt)<<8 | int(devs[0])
	if g.seenSets[k] {
		return
	}
	g.seenSets[k] = true
	g.noteReplicasReq(dt, devs, 1)
}

// noteReplicasReq records a replica set with nr_required given, as
// struct bch_replicas_entry_v1 (data type, nr_devs, nr_required, sorted
// devices).
func (g *generator) noteReplicasReq(dt bp.DataType, devs []uint8, required uint8) {
	s := append([]uint8(nil), devs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	e := append([]byte{byte(dt), byte(len(s)), required}, s...)
	g.replicaSets[string(e)] = e
}

// bpVal encodes a backpointer value into the generator's scratch.
func (g *generator) bpVal(v *bp.Backpointer) []byte {
	v.Encode(g.bpScr[:], true)
	return g.bpScr[:]
}

// dataBP is the backpointer of replica j of extent x.
func (g *generator) dataBP(x *extent, j int) (bp.Pos, bp.Backpointer) {
	return bp.Pos{Inode: uint64(x.dev[j]), Offset: x.off[j] << g.f.shift},
		bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataUser, BucketLen: x.size, Pos: x.pos}
}

func (g *generator) addExtent(i int64, x *extent) error {
	kind, j := g.inj.at(i, x, g)
	g.noteReplicas(bp.DataUser, x.dev[:x.n])
	var ver uint64
	var err error
	if g.scratch, ver, err = g.extentVal(g.scratch[:0], x, false); err != nil {
		return err
	}
	g.snapKeys[0].add(len(g.scratch))
	if err := g.ext.addVer(x.pos, x.size, ver, bp.KeyExtent, g.scratch); err != nil {
		return err
	}
	g.extents++
	if x.pos.Offset == uint64(x.size) {
		g.inodes++
	}
	g.userByFirst[x.dev[0]] += uint64(x.size)
	if x.last {
		if err := g.fileDone(x.pos.Inode, x.pos.Offset); err != nil {
			return err
		}
	}
	for r := 0; r < x.n; r++ {
		d := int(x.dev[r])
		pos, v := g.dataBP(x, r)
		bucket := x.off[r] / g.devs[d].bucketSectors
		if r == j {
			switch kind {
			case KindMissingBP:
				g.findings = append(g.findings, g.finding(report.PtrToMissingBackpointer, d, bucket, &pos, bp.BtreeExtents, 0, &x.pos, "backpointer dropped"))
				continue
			case KindWrongBP:
				want := v
				v.BucketLen += blockSectors
				g.findings = append(g.findings,
					g.finding(report.PtrToMissingBackpointer, d, bucket, &pos, bp.BtreeExtents, 0, &x.pos,
						fmt.Sprintf("stored bucket_len %d, want %d", v.BucketLen, want.BucketLen)),
					g.finding(report.BackpointerToMissingPtr, d, bucket, &pos, bp.BtreeExtents, 0, &x.pos, "stored backpointer has a wrong bucket_len"))
			}
		}
		if err := g.bps[d].add(pos, 0, bp.KeyBackpointer, g.bpVal(&v)); err != nil {
			return err
		}
		if r == j && kind == KindDanglingBP {
			dpos := bp.Pos{Inode: pos.Inode, Offset: pos.Offset + 1}
			target := bp.Pos{Inode: x.pos.Inode, Offset: x.pos.Offset - 1, Snapshot: math.MaxUint32}
			dv := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataUser, BucketLen: blockSectors, Pos: target}
			if err := g.bps[d].add(dpos, 0, bp.KeyBackpointer, g.bpVal(&dv)); err != nil {
				return err
			}
			g.findings = append(g.findings, g.finding(report.BackpointerToMissingPtr, d, bucket, &dpos, bp.BtreeExtents, 0, &target, "backpointer without an extent"))
		}
	}
	switch kind {
	case KindWrongDirty:
		g.wrongDirt[x.dev[0]] = true
	case KindDupBadCsum:
		return g.addDup(x)
	}
	return nil
}

// addDup writes a second extent, in a file of its own, over the sectors of
// x with a bad data checksum.
func (g *generator) addDup(x *extent) error {
	y := *x
	y.pos = bp.Pos{Inode: g.src.newInode(), Offset: uint64(x.size), Snapshot: math.MaxUint32}
	var ver uint64
	var err error
	if g.scratch, ver, err = g.extentVal(g.scratch[:0], &y, true); err != nil {
		return err
	}
	g.snapKeys[0].add(len(g.scratch))
	if err := g.ext.addVer(y.pos, y.size, ver, bp.KeyExtent, g.scratch); err != nil {
		return err
	}
	g.extents++
	g.inodes++
	g.userByFirst[y.dev[0]] += uint64(y.size)
	if err := g.fileDone(y.pos.Inode, y.pos.Offset); err != nil {
		return err
	}
	for r := 0; r < y.n; r++ {
		d := g.devs[y.dev[r]]
		d.dataDup += uint64(y.size)
		d.dupTotal += uint64(y.size)
		pos, _ := g.dataBP(&y, r)
		g.findings = append(g.findings, g.finding(report.DupBackpointerToBadCsumExtent, d.idx, y.off[r]/d.bucketSectors, &pos,
			bp.BtreeExtents, 0, &y.pos, "duplicate extent with a bad data checksum"))
	}
	return nil
}

// allocVal encodes an alloc_v4 value as the real images have them: need
// discard and need_inc_gen set, full-size value (bp_start 8).
func allocVal(b []byte, dt bp.DataType, dirty uint64, jseq uint64, wtime uint64) []byte {
	a := bp.AllocV4{JournalSeqNonempty: jseq, Flags: bp.AllocFlags(true, true, 8), DataType: dt,
		DirtySectors: uint32(dirty), IOTime: [2]uint64{1, wtime}}
	var v [bp.AllocV4Bytes]byte
	a.Put(v[:])
	return append(b, v[:]...)
}

func (g *generator) addAlloc(d *device, b uint64, dt bp.DataType, dirty, jseq, wtime uint64) error {
	g.scratch = allocVal(g.scratch[:0], dt, dirty, jseq, wtime)
	return g.alloc[d.idx].add(bp.Pos{Inode: uint64(d.idx), Offset: b}, 0, bp.KeyAllocV4, g.scratch)
}

// dataBucketDirty is the dirty_sectors stored for d's open data bucket:
// its sectors, those of duplicate extents, and an injected error.
func (g *generator) dataBucketDirty(d *device) uint64 {
	dirty := d.dataUsed + d.dataDup
	if g.wrongDirt[d.idx] {
		if dirty > blockSectors {
			dirty -= blockSectors
		} else {
			dirty += blockSectors
		}
	}
	return dirty
}

func (g *generator) noteWrongDirty(d *device, stored uint64) {
	if !g.wrongDirt[d.idx] {
		return
	}
	g.wrongDirt[d.idx] = false
	want := d.dataUsed + d.dataDup
	g.findings = append(g.findings, g.finding(report.AllocKeyDirtySectorsWrong, d.idx, d.dataBucket, nil, 0, 0, nil,
		fmt.Sprintf("dirty_sectors %d, want %d", stored, want)))
}

// closeDataBucket writes the alloc key of d's full data bucket.
func (g *generator) closeDataBucket(d *device) error {
	if t := d.dataUsed + d.dataDup; t > d.bucketSectors {
		// Duplicate extents can fill a bucket past its size; its
		// fragmentation is then 0, not negative
		// (bch2_bucket_sectors_fragmented).
		d.dataOver += t - d.bucketSectors
	}
	dirty := g.dataBucketDirty(d)
	g.noteWrongDirty(d, dirty)
	return g.addAlloc(d, d.dataBucket, bp.DataUser, dirty, g.journalSeq, g.src.clock)
}

var errNoConvergence = errors.New("gen: the btree node layout did not converge")
