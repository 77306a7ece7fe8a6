package gen

import (
	"fmt"
	"math"

	"bpcheck/bp"
)

// extent is one generated extent: its key position (the end offset, in the
// U32_MAX snapshot), size and replica pointers.
type extent struct {
	pos  bp.Pos
	size uint32
	n    int
	dev  [4]uint8
	off  [4]uint64 // sectors from the device start
	last bool      // last extent of its file
}

// extentSource makes the extents of the filesystem in key order and
// places their data: each device fills its buckets from the first data
// bucket upwards, an extent is cut short at the end of a bucket (as
// bcachefs cuts writes at bucket ends), and replicas go to consecutive
// devices starting at a device that rotates with every extent (in the
// real shape, when that device's bucket is full: bcachefs fills an open
// bucket before it opens one on the next device). The sequence depends
// only on the parameters.
type extentSource struct {
	p       *Params
	devs    []*device
	r       *rng
	ino     uint64
	fileOff uint64
	left    uint64
	first   int
	nSizes  uint64
	minSize uint64
	clock   uint64 // io write clock: sectors written
	made    int64  // extents made by next
	// onClose is called for a full data bucket before the next one opens.
	onClose func(d *device) error
}

func newExtentSource(p *Params, devs []*device) *extentSource {
	lo := roundUp(uint64(p.ExtentMin), blockSectors)
	hi := uint64(p.ExtentMax) / blockSectors * blockSectors
	return &extentSource{p: p, devs: devs, r: newRNG(p.Seed, 1), ino: firstFileIno(p) - 1,
		nSizes: (hi-lo)/blockSectors + 1, minSize: lo}
}

// remaining is the room left for the next extent on d.
func (d *device) remaining() uint64 {
	if d.dataOpen && d.dataUsed < d.bucketSectors {
		return d.bucketSectors - d.dataUsed
	}
	return d.bucketSectors
}

// place puts size sectors of data on d and returns their offset.
func (s *extentSource) place(d *device, size uint64) (uint64, error) {
	if !d.dataOpen || d.dataUsed == d.bucketSectors {
		if d.dataOpen {
			if s.onClose != nil {
				if err := s.onClose(d); err != nil {
					return 0, err
				}
			}
			d.dataBucket++
		}
		if d.dataBucket >= d.nodes.lowest(d) || d.dataBucket >= d.nodeTop {
			return 0, fmt.Errorf("%w: device %d is full of data at bucket %d", ErrDeviceFull, d.idx, d.dataBucket)
		}
		d.dataOpen, d.dataUsed, d.dataDup = true, 0, 0
		d.dataBuckets++
	}
	off := d.dataBucket*d.bucketSectors + d.dataUsed
	d.dataUsed += size
	d.dataSectors += size
	s.clock += size
	return off, nil
}

// newInode starts a file of its own (for a duplicate extent).
func (s *extentSource) newInode() uint64 {
	s.ino++
	return s.ino
}

func (s *extentSource) next(x *extent) error {
	if s.left == 0 {
		s.ino++
		s.fileOff = 0
		s.left = fileLen(s.p, s.r)
		if s.p.Shape == ShapeReal {
			// The long files of the real shape would often run past
			// the end: the last file ends with the last extent.
			s.left = min(s.left, uint64(s.p.Extents-s.made))
		}
	}
	s.made++
	size := s.minSize + blockSectors*s.r.intn(s.nSizes)
	nd := len(s.devs)
	f := s.first
	if s.p.Shape != ShapeReal {
		s.first = (s.first + 1) % nd
	}
	x.n = s.p.Replicas
	for j := 0; j < x.n; j++ {
		size = min(size, s.devs[(f+j)%nd].remaining())
	}
	for j := 0; j < x.n; j++ {
		d := s.devs[(f+j)%nd]
		off, err := s.place(d, size)
		if err != nil {
			return err
		}
		x.dev[j], x.off[j] = uint8(d.idx), off
	}
	if d := s.devs[f]; s.p.Shape == ShapeReal && d.dataUsed == d.bucketSectors {
		// The real shape: consecutive extents fill a device's open
		// bucket (bcachefs's write point) before the next device's.
		s.first = (f + 1) % nd
	}
	s.fileOff += size
	s.left--
	x.pos = bp.Pos{Inode: s.ino, Offset: s.fileOff, Snapshot: math.MaxUint32}
	x.size = uint32(size)
	x.last = s.left == 0
	return nil
}

// extentVal appends the value of extent x: one crc entry (the checksum
// of the data, which reads as zeros, spoilt if bad; see appendDataCRC)
// and its pointers. It returns the extent's key version.
func (g *generator) extentVal(b []byte, x *extent, bad bool) ([]byte, uint64, error) {
	b, ver, err := g.appendDataCRC(b, x.size, bad)
	if err != nil {
		return b, 0, err
	}
	for j := 0; j < x.n; j++ {
		b = appendU64(b, bp.Ptr{Offset: x.off[j], Dev: x.dev[j]}.Encode())
	}
	return b, ver, nil
}
