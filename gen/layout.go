package gen

import (
	"fmt"
)

// device is the geometry of one member device and the state of its two
// allocators: data buckets are handed out upwards from the first bucket
// after the journal, btree node slots downwards from the bucket below the
// superblock copy at the end of the device.
type device struct {
	idx           int
	sectors       uint64 // device size
	bucketSectors uint64
	nbuckets      uint64
	sbOffsets     [3]uint64 // superblock copies (sectors)
	journalStart  uint64    // first journal bucket
	journalNr     uint64
	dataStart     uint64 // first data bucket
	sbEndBucket   uint64 // first bucket holding the superblock copy at the end
	nodeTop       uint64 // the highest bucket nodes may use

	// data write point: current bucket, sectors used in it (and sectors of
	// duplicate extents pointing into it), whether it is open.
	dataBucket  uint64
	dataUsed    uint64
	dataDup     uint64
	dataOpen    bool
	dataBuckets uint64 // data buckets used so far
	dataSectors uint64 // data sectors written
	dupTotal    uint64 // sectors of duplicate extents (faults)
	dataOver    uint64 // sectors of data buckets beyond their size (duplicate extents)

	// stripe blocks (erasure coding): data block buckets and the sectors
	// of extents in them, parity buckets.
	stripeBuckets uint64
	stripeSectors uint64
	parityBuckets uint64

	nodes nodeAlloc
}

// nodeAlloc hands out btree node slots from the top of a device downwards.
type nodeAlloc struct {
	bucket  uint64 // current node bucket (valid if started)
	slot    uint64 // next free slot in bucket
	started bool
	count   uint64 // node slots handed out
}

func newDevice(idx int, p *Params) *device {
	d := &device{idx: idx, sectors: uint64(p.DeviceSize) / sectorSize, bucketSectors: uint64(p.BucketSize) / sectorSize}
	d.nbuckets = d.sectors / d.bucketSectors
	// Layout as bch2_sb_layout_init writes it: copies at 8 and 8+2048
	// (rounded to the block size), and a backup at the end of the device
	// rounded down to a bucket.
	d.sbOffsets[0] = 8
	d.sbOffsets[1] = roundUp(8+sbSectors, blockSectors)
	d.sbOffsets[2] = (d.sectors - sbSectors) / d.bucketSectors * d.bucketSectors
	startEnd := d.sbOffsets[1] + sbSectors
	d.journalStart = (startEnd + d.bucketSectors - 1) / d.bucketSectors
	nr := d.nbuckets >> 7
	nr = max(nr, journalMin)
	nr = min(nr, 1<<13, (1<<24)/d.bucketSectors)
	d.journalNr = nr
	d.dataStart = d.journalStart + d.journalNr
	d.sbEndBucket = d.sbOffsets[2] / d.bucketSectors
	d.nodeTop = min(d.sbEndBucket, d.nbuckets) - 1
	d.dataBucket = d.dataStart
	return d
}

// sbSectorsIn returns how many sectors of bucket b hold superblock copies
// (sectors 0-7 count with the copy at sector 8), as bcachefs marks them.
func (d *device) sbSectorsIn(b uint64) uint64 {
	lo, hi := b*d.bucketSectors, (b+1)*d.bucketSectors
	var n uint64
	add := func(s, e uint64) {
		s, e = max(s, lo), min(e, hi)
		if e > s {
			n += e - s
		}
	}
	for _, off := range d.sbOffsets {
		if off == 8 {
			add(0, 8)
		}
		add(off, off+sbSectors)
	}
	return n
}

// lowestNodeBucket is the lowest bucket holding btree nodes (nodeTop+1 if
// none).
func (a *nodeAlloc) lowest(d *device) uint64 {
	if !a.started {
		return d.nodeTop + 1
	}
	return a.bucket
}

// allocNode returns the sector offset of a new btree node slot.
func (d *device) allocNode(a *nodeAlloc, nodeSectors uint64) (uint64, error) {
	per := d.bucketSectors / nodeSectors
	if !a.started || a.slot == per {
		next := d.nodeTop
		if a.started {
			next = a.bucket - 1
		}
		if next <= d.dataTop() || next < d.dataStart {
			return 0, fmt.Errorf("%w: device %d: btree nodes reached the data at bucket %d", ErrDeviceFull, d.idx, next)
		}
		a.bucket, a.slot, a.started = next, 0, true
	}
	off := a.bucket*d.bucketSectors + a.slot*nodeSectors
	a.slot++
	a.count++
	return off, nil
}

// dataTop is the highest bucket data has been written to (or the bucket
// below the first data bucket).
func (d *device) dataTop() uint64 {
	if d.dataOpen {
		return d.dataBucket
	}
	return d.dataBucket - 1
}

// nodeBuckets calls fn for every bucket holding node slots, in bucket
// order, with the number of slots used.
func (d *device) nodeBuckets(a *nodeAlloc, nodeSectors uint64, fn func(b, slots uint64)) {
	if !a.started {
		return
	}
	per := d.bucketSectors / nodeSectors
	for b := a.bucket; b <= d.nodeTop; b++ {
		if b == a.bucket {
			fn(b, a.slot)
		} else {
			fn(b, per)
		}
	}
}
