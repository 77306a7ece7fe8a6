package gen

import "sync"

// The real shape (Params.Shape = ShapeReal): what `bcachefs format
// --encoded_extent_max=4k --source=/usr` of bcachefs-tools v1.36.1 made
// on a 20 GiB file (1,352,305 extents in 131,766 files); gen/README.md
// ("Real shape") has the measurements.
const (
	// sbEncodedExtentMaxShift is BCH_SB_ENCODED_EXTENT_MAX_BITS in
	// flags[1] (bits 14..19): log2 of encoded_extent_max in sectors.
	sbEncodedExtentMaxShift = 14
	// realEncodedExtMax is the encoded_extent_max of the real images:
	// every extent is at most one 4 KiB block, and format's bucket size
	// starts from 4 × it (64 KiB at 20 GiB).
	realEncodedExtMax = 4 << 10
	// realDeviceSize is the size of the real images' device.
	realDeviceSize = 20 << 30
	// realMaxPerFile bounds the extents of one file (the largest file of
	// the real image has 35,614).
	realMaxPerFile = 1<<16 - 1
	// Nodes are filled to 2/5 of btree_max_u64s: bcachefs splits a node
	// past 2/3 of it (BTREE_SPLIT_THRESHOLD) and keeps 3/5 of its u64s
	// in the first half, which then stays as it is when keys are added in
	// order (format --source, or any sequential writer). The real leaves
	// hold 821 extents (4 u64s each) or 656 backpointers (5 u64s) of
	// 8172 u64s, 56 of 128 sectors written.
	realFillNum, realFillDen = 2, 5
)

// realDefaults fills the zero fields of a real-shape p with the shape's
// defaults (WithDefaults does the rest).
func (p Params) realDefaults() Params {
	if p.DeviceSize == 0 {
		// 20 GiB as the real images, doubled while the data (one block
		// per extent, all replicas on the devices) would take more than
		// half of the space.
		devs := int64(max(p.Devices, 1))
		data := p.Extents * int64(max(p.Replicas, 1)) * blockSectors * sectorSize
		p.DeviceSize = realDeviceSize
		for data > p.DeviceSize*devs/2 && p.DeviceSize < 1<<50 {
			p.DeviceSize *= 2
		}
	}
	if p.ExtentMin == 0 {
		p.ExtentMin = blockSectors
	}
	if p.ExtentMax == 0 {
		p.ExtentMax = blockSectors
	}
	if p.ExtentsPerFile == 0 {
		p.ExtentsPerFile = realMaxPerFile
	}
	return p
}

// formatFor returns the format of p's metadata version, with the
// encoded_extent_max of p's shape (nil for an unknown version).
func formatFor(p *Params) *format {
	f := formatOf(p.MetadataVersion)
	if f == nil || p.Shape != ShapeReal {
		return f
	}
	realFormatsOnce.Do(func() {
		realFormats = map[*format]*format{}
		for _, v := range formats {
			c := *v
			c.encodedExtMax = realEncodedExtMax
			realFormats[v] = &c
		}
	})
	return realFormats[f]
}

var (
	realFormatsOnce sync.Once
	realFormats     map[*format]*format
)

// realPerFile is the distribution of extents per file on the real image:
// the number of files of each length 1..15, then of each length class
// [2^k, 2^(k+1)) for k = 4..15 (a length is drawn uniformly within its
// class).
var (
	realPerFileSmall   = [15]uint64{89723, 13623, 6510, 4562, 2966, 2122, 1481, 1203, 1036, 785, 584, 581, 417, 391, 392}
	realPerFileClasses = [12]uint64{2877, 1261, 583, 302, 128, 108, 46, 40, 18, 17, 9, 1}
)

// realPerFileTotal is the number of files of the real image (131,766).
var realPerFileTotal = func() uint64 {
	var t uint64
	for _, n := range realPerFileSmall {
		t += n
	}
	for _, n := range realPerFileClasses {
		t += n
	}
	return t
}()

// realFileLen draws the extents of a file from realPerFile, at most
// limit.
func realFileLen(r *rng, limit int) uint64 {
	x := r.intn(realPerFileTotal)
	n := uint64(0)
	for i, c := range realPerFileSmall {
		if x < c {
			n = uint64(i + 1)
			break
		}
		x -= c
	}
	if n == 0 {
		for k, c := range realPerFileClasses {
			if x < c || k == len(realPerFileClasses)-1 {
				lo := uint64(16) << k
				n = lo + r.intn(lo)
				break
			}
			x -= c
		}
	}
	return min(n, uint64(limit))
}

// fileLen draws the number of extents of the next file.
func fileLen(p *Params, r *rng) uint64 {
	if p.Shape == ShapeReal {
		return realFileLen(r, p.ExtentsPerFile)
	}
	return 1 + r.intn(uint64(p.ExtentsPerFile))
}

// fill is the fraction of a node's u64s that leaves and interior nodes
// are filled to (the last node of a level gets the rest).
func fill(p *Params) (num, den int) {
	if p.Shape == ShapeReal {
		return realFillNum, realFillDen
	}
	return fillNum, fillDen
}
