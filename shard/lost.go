package shard

import "bpcheck/bp"

// LostRange is the key range of a btree subtree that could not be read:
// keys of btree Btree at levels ≤ Level within [Min, Max].
type LostRange struct {
	Btree    bp.BtreeID
	Level    uint8
	Min, Max bp.Pos
}

// Lost collects what unreadable nodes hid in one pass. Findings that only
// follow from the loss (a backpointer whose owner could not be read, a
// pointer whose backpointer leaf could not be read, sector sums of buckets
// with such records) are not reported: the read error is.
type Lost struct {
	Owners []LostRange // subtrees of pointer-holding btrees
	BPs    []LostRange // ranges of the backpointers btree (positions)
	Alloc  []LostRange // ranges of the alloc btree (positions dev:bucket)
}

// Empty reports whether nothing was lost.
func (l *Lost) Empty() bool {
	return l == nil || len(l.Owners) == 0 && len(l.BPs) == 0 && len(l.Alloc) == 0
}

func inRange(rs []LostRange, p bp.Pos) bool {
	for i := range rs {
		if !p.Less(rs[i].Min) && !rs[i].Max.Less(p) {
			return true
		}
	}
	return false
}

// ownerLost reports whether the key that backpointer v names lies in a
// lost subtree.
func (l *Lost) ownerLost(v *bp.Backpointer) bool {
	if l == nil {
		return false
	}
	for i := range l.Owners {
		r := &l.Owners[i]
		if r.Btree == v.BtreeID && v.Level <= r.Level && !v.Pos.Less(r.Min) && !r.Max.Less(v.Pos) {
			return true
		}
	}
	return false
}

func (l *Lost) bpLost(p bp.Pos) bool {
	return l != nil && inRange(l.BPs, p)
}

func (l *Lost) allocLost(k BucketKey) bool {
	return l != nil && inRange(l.Alloc, bp.Pos{Inode: uint64(k.Dev()), Offset: k.Bucket()})
}

// stripesLost reports whether part of the stripes btree was lost: the
// stripe references of buckets then cannot be counted.
func (l *Lost) stripesLost() bool {
	if l == nil {
		return false
	}
	for i := range l.Owners {
		if l.Owners[i].Btree == bp.BtreeStripes {
			return true
		}
	}
	return false
}

// StripesLost reports whether part of the stripes btree was lost in the
// pass.
func (l *Lost) StripesLost() bool { return l.stripesLost() }
