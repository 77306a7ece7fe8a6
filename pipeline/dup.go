package pipeline

import (
	"fmt"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/csum"
	"bpcheck/report"
	"bpcheck/shard"
)

// checkDup judges two keys whose pointers claim the same backpointer
// position, as bcachefs check_bp_dup does: the key named by the stored
// backpointer ("other") and r's key. Data checksums decide which one is
// wrong: a bad checksum on other is dup_backpointer_to_bad_csum_extent
// for other (and r's backpointer is then missing), else a bad checksum
// on r's extent is dup_backpointer_to_bad_csum_extent for r; two good
// extents pointing to overlapping space are dup_extents_to_reflink.
func (c *checker) checkDup(r *shard.Ref, storedPos bp.Pos, stored []byte) []report.Finding {
	sb := c.fs.SB
	ov, err := bp.DecodeBackpointer(stored, c.formatB)
	if err != nil {
		return nil
	}
	rv := r.BP(c.formatB)
	cur := c.refFinding(r)
	missing := func(detail string) []report.Finding {
		f := cur
		f.Code, f.Detail = report.PtrToMissingBackpointer, detail
		f.Got, f.Want = c.describeBP(storedPos, stored), c.describeBP(r.BPPos(), r.BPVal[:])
		return []report.Finding{f}
	}
	o, found, err := c.lookupRef(ov.BtreeID, ov.Level, ov.Pos, storedPos)
	if err != nil {
		return missing(fmt.Sprintf("backpointer names %s, which cannot be read: %v", ov.Pos, err))
	}
	if !found {
		return missing("backpointer does not match the pointer")
	}
	other := &o
	otherF := report.Finding{Dev: cur.Dev, Bucket: cur.Bucket, BP: storedPos, HasBP: true,
		Btree: ov.BtreeID.Name(sb.Version), Level: int(ov.Level), Pos: ov.Pos, KeyType: other.KeyType.String()}
	both := fmt.Sprintf("%s %s and %s %s claim the same space on dev %d", cur.Btree, cur.Pos, otherF.Btree, otherF.Pos, cur.Dev)
	if good, err := c.dataGood(other); err == nil && !good {
		otherF.Code = report.DupBackpointerToBadCsumExtent
		otherF.Detail = "extents pointing to same space, but first extent checksum bad: " + both
		return append([]report.Finding{otherF}, missing("backpointer belongs to an extent with a bad checksum")...)
	}
	mine, found, err := c.lookupRef(rv.BtreeID, rv.Level, rv.Pos, r.BPPos())
	if err != nil || !found {
		return missing("backpointer does not match the pointer")
	}
	if good, err := c.dataGood(&mine); err == nil && !good {
		f := cur
		f.Code = report.DupBackpointerToBadCsumExtent
		f.Detail = "extents pointing to same space, but first extent checksum bad: " + both
		return []report.Finding{f}
	}
	f := cur
	f.Code = report.DupExtentsToReflink
	f.Detail = "duplicate extents pointing to overlapping space, both checksums good: " + both
	if mine.KeyType != bp.KeyExtent || other.KeyType != bp.KeyExtent {
		f.Code = report.PtrToMissingBackpointer
		f.Detail = "duplicate keys pointing to same space (bcachefs cannot repair this): " + both
	}
	return []report.Finding{f}
}

func (c *checker) refFinding(r *shard.Ref) report.Finding {
	v := r.BP(c.formatB)
	return report.Finding{Dev: r.Bucket.Dev(), Bucket: r.Bucket.Bucket(), BP: r.BPPos(), HasBP: true,
		Btree: v.BtreeID.Name(c.fs.SB.Version), Level: int(v.Level), Pos: v.Pos, KeyType: r.KeyType.String()}
}

// keyPtr is a pointer of a key looked up for a duplicate claim.
type keyPtr struct {
	KeyType bp.KeyType
	Level   uint8
	Ptr     bp.Ptr
	CRC     bp.CRC
	Version bp.Version
}

// lookupRef finds the key at pos in btree id and level and returns the
// record of its pointer whose backpointer lands at bpPos.
func (c *checker) lookupRef(id bp.BtreeID, level uint8, pos, bpPos bp.Pos) (keyPtr, bool, error) {
	k, val, found, err := c.fs.Lookup(id, level, pos)
	if err != nil || !found {
		return keyPtr{}, false, err
	}
	entries, ok, err := bp.ValueEntries(k.Type, val)
	if !ok || err != nil {
		return keyPtr{}, false, err
	}
	it := bp.NewPtrIter(entries, k.Size, c.fs.SB.ExtentTypeU64s)
	for {
		d, ok, _ := it.Next()
		if !ok {
			return keyPtr{}, false, nil
		}
		p, _ := c.geo.ExpectedBP(id, level, &k, &d, 0)
		if p != bpPos {
			continue
		}
		return keyPtr{KeyType: k.Type, Level: level, Ptr: d.Ptr, CRC: d.CRC, Version: k.Version}, true, nil
	}
}

// dataGood reads the encoded extent a data pointer points at and verifies
// its checksum. Btree pointers and unchecksummed data count as good.
func (c *checker) dataGood(r *keyPtr) (bool, error) {
	if r.Level > 0 || r.KeyType == bp.KeyBtreePtr || r.KeyType == bp.KeyBtreePtrV2 || r.CRC.CsumType == 0 {
		return true, nil
	}
	if int(r.Ptr.Dev) >= len(c.fs.Devices) || c.fs.Devices[r.Ptr.Dev] == nil {
		return true, fmt.Errorf("device %d not present", r.Ptr.Dev)
	}
	d := c.fs.Devices[r.Ptr.Dev]
	buf := make([]byte, int(r.CRC.CompressedSize)*btreeio.SectorSize)
	if _, err := d.ReadAt(buf, int64(r.Ptr.Offset)*btreeio.SectorSize); err != nil {
		return true, err
	}
	got, err := csum.ComputeKeyed(csum.Type(r.CRC.CsumType), c.fs.SB.CryptKey, extentNonce(r), buf)
	if err != nil {
		return true, err
	}
	return got == csum.Sum{Lo: r.CRC.CsumLo, Hi: r.CRC.CsumHi}, nil
}

// extentNonce is the nonce of an encoded extent (extent_nonce).
func extentNonce(r *keyPtr) csum.Nonce {
	var n csum.Nonce
	compressed := r.CRC.Compressed()
	if compressed {
		n[0] = r.CRC.UncompressedSize << 22
	}
	n[1] = uint32(r.Version.Lo)
	n[2] = uint32(r.Version.Lo >> 32)
	ct := uint32(0)
	if compressed {
		ct = uint32(r.CRC.CompressionType)
	}
	n[3] = (r.Version.Hi | ct<<24) ^ csum.NonceExtent
	n[0] += r.CRC.Nonce * 8
	return n
}
