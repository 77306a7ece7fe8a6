package bp

// Era names the fsck whose judgement bpcheck follows for a range of
// metadata versions: the bcachefs-tools release of that era, whose real
// fsck judged the test cases of those versions. Where two eras judge the
// same bytes differently (for example the 1.37 erasure-coding backpointer
// flags, which the v1.37+ fsck also expects of older filesystems),
// bpcheck follows the era of the version the superblock carries.
type Era struct {
	// Tools is the bcachefs-tools release, e.g. "bcachefs-tools v1.36.1".
	Tools string
	// From and To are the metadata versions of the era, inclusive.
	From, To uint16
}

// eras are ordered by version; the first whose To is not below a version
// is its era.
var eras = []Era{
	{Tools: "bcachefs-tools v1.9.4", From: VersionMin, To: VersionInodeHasChildSnapshots - 1},
	// The v1.13 fsck ignores the fragmentation_lru field of alloc keys
	// (obsolete from the sources that brought metadata 1.13) and repairs
	// bucket_gens and LRU errors in memory under -n (FSCK_AUTOFIX).
	{Tools: "bcachefs-tools v1.13.0", From: VersionInodeHasChildSnapshots, To: VersionBackpointerBucketGen - 1},
	{Tools: "bcachefs-tools v1.25.3", From: VersionBackpointerBucketGen, To: VersionInodeHasCaseInsensitive},
	// The v1.31 fsck still keeps the snapshot accounting counters in
	// memory and compares them (from v1.33.2 it leaves them out).
	{Tools: "bcachefs-tools v1.31.13", From: VersionInodeHasCaseInsensitive + 1, To: VersionBtreeNodeAccounting},
	{Tools: "bcachefs-tools v1.36.1", From: VersionBtreeNodeAccounting + 1, To: VersionErasureCoding - 1},
	{Tools: "bcachefs-tools v1.39.2", From: VersionErasureCoding, To: VersionKnown},
}

// EraOf returns the era of metadata version v. A version newer than
// VersionKnown gets the newest era.
func EraOf(v uint16) Era {
	for _, e := range eras {
		if v <= e.To {
			return e
		}
	}
	return eras[len(eras)-1]
}

// String describes the era, e.g. "bcachefs-tools v1.36.1 (metadata
// 1.32-1.36)", or "bcachefs-tools v1.13.0 (metadata 1.13)" for an era of
// one version.
func (e Era) String() string {
	if e.From == e.To {
		return e.Tools + " (metadata " + VersionString(e.From) + ")"
	}
	return e.Tools + " (metadata " + VersionString(e.From) + "-" + VersionString(e.To) + ")"
}
