// The stripe backpointers: from 1.37 an erasure-coded pointer whose device
// was removed (device 255) keeps its backpointer in the stripe_backpointers
// btree, at inode (stripe idx << 8 | block), outside any device's buckets
// and alloc sums. They are few (they exist only after a removal), so they
// are collected in the first pass and judged against that btree, read
// whole, when the pass ends.

package pipeline

import (
	"bytes"
	"fmt"
	"slices"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/report"
	"bpcheck/shard"
)

// stripeBP is the backpointer a device-255 erasure-coded pointer needs.
type stripeBP struct {
	pos     bp.Pos
	val     [bp.BackpointerBytes]byte
	btree   bp.BtreeID
	level   uint8
	keyPos  bp.Pos
	keyType bp.KeyType
}

// stripeBPsChecked reports whether the filesystem has stripe backpointers
// to judge (1.37+, format B).
func (c *checker) stripeBPsChecked() bool {
	return c.formatB && c.fs.SB.Version >= bp.VersionErasureCoding
}

// addStripeBP records the stripe backpointer pointer d of key k needs.
func (c *checker) addStripeBP(btree bp.BtreeID, level uint8, k *bp.Key, d *bp.DecodedPtr) {
	var v bp.Backpointer
	s := stripeBP{btree: btree, level: level, keyPos: k.Pos, keyType: k.Type}
	s.pos = c.geo.ExpectedBPInto(&v, btree, level, k, d, 0)
	v.Encode(s.val[:], true)
	c.mu.Lock()
	c.stripeBPs = append(c.stripeBPs, s)
	c.mu.Unlock()
}

// storedStripeBPs collects the keys of the stripe_backpointers btree.
type storedStripeBPs struct {
	c    *checker
	keys []stripeBP
	lost []shard.LostRange
}

func (s *storedStripeBPs) Node(n *btreeio.Node) error {
	if n.Level != 0 {
		return nil
	}
	for i := range n.Keys {
		k := &n.Keys[i]
		if k.Key.Type != bp.KeyBackpointer || len(k.Val) < bp.BackpointerBytes {
			continue
		}
		var e stripeBP
		e.pos = k.Key.Pos
		copy(e.val[:], k.Val)
		s.keys = append(s.keys, e)
	}
	return nil
}

func (s *storedStripeBPs) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	s.c.nodeLost(&s.lost, btree, level, parent, err)
	return nil
}

// checkStripeBPs judges the stripe backpointers both ways, once the first
// pass has collected what the pointers need: a missing or different one
// is ptr_to_missing_backpointer, one no pointer claims
// backpointer_to_missing_ptr (check_backpointers_to_extents walks both
// btrees from 1.37). Nothing is judged where unreadable nodes hid keys.
func (c *checker) checkStripeBPs() {
	if !c.stripeBPsChecked() {
		return
	}
	stored := &storedStripeBPs{c: c}
	if c.fs.Root(bp.BtreeStripeBackpointers) != nil {
		if err := c.fs.Walk(bp.BtreeStripeBackpointers, 0, stored); err != nil {
			c.addError(fmt.Errorf("stripe_backpointers: %w", err))
			return
		}
	}
	c.judgeStripeBPs(c.stripeBPs, stored.keys, len(c.lost.Owners) > 0, len(stored.lost) > 0)
}

// judgeStripeBPs compares the stripe backpointers the pointers need with
// the stored ones. ownersLost: unreadable nodes of the pointer btrees hid
// pointers (so an unclaimed backpointer is not judged); storedLost: part
// of stripe_backpointers was unreadable (so a missing one is not).
func (c *checker) judgeStripeBPs(want, stored []stripeBP, ownersLost, storedLost bool) {
	byPos := func(a, b stripeBP) int { return a.pos.Cmp(b.pos) }
	slices.SortFunc(want, byPos)
	slices.SortStableFunc(stored, byPos)
	name := func(id bp.BtreeID) string { return id.Name(c.fs.SB.Version) }
	i, j := 0, 0
	for i < len(want) || j < len(stored) {
		switch {
		case j == len(stored) || i < len(want) && want[i].pos.Less(stored[j].pos):
			w := &want[i]
			if !storedLost {
				c.addFinding(report.Finding{Code: report.PtrToMissingBackpointer, Dev: -1, BP: w.pos, HasBP: true,
					Btree: name(w.btree), Level: int(w.level), Pos: w.keyPos, KeyType: w.keyType.String(),
					Detail: "missing backpointer (stripe_backpointers: pointer to a removed device)", Want: c.describeBP(w.pos, w.val[:])})
			}
			i++
		case i == len(want) || stored[j].pos.Less(want[i].pos):
			c.unclaimedStripeBP(&stored[j], ownersLost)
			j++
		default:
			w, g := &want[i], &stored[j]
			if !bytes.Equal(w.val[:], g.val[:]) {
				c.addFinding(report.Finding{Code: report.PtrToMissingBackpointer, Dev: -1, BP: w.pos, HasBP: true,
					Btree: name(w.btree), Level: int(w.level), Pos: w.keyPos, KeyType: w.keyType.String(),
					Detail: "backpointer does not match the pointer (stripe_backpointers: pointer to a removed device)",
					Got:    c.describeBP(g.pos, g.val[:]), Want: c.describeBP(w.pos, w.val[:])})
				c.unclaimedStripeBP(g, ownersLost)
			}
			i++
			j++
		}
	}
}

// unclaimedStripeBP reports a stored stripe backpointer no pointer claims.
func (c *checker) unclaimedStripeBP(g *stripeBP, ownersLost bool) {
	v, err := bp.DecodeBackpointer(g.val[:], true)
	if err != nil || ownersLost {
		return
	}
	detail := "backpointer doesn't match extent it points to (stripe_backpointers)"
	if v.Level > 0 {
		detail = "backpointer doesn't match btree node it points to (stripe_backpointers)"
	}
	c.addFinding(report.Finding{Code: report.BackpointerToMissingPtr, Dev: -1, BP: g.pos, HasBP: true,
		Btree: v.BtreeID.Name(c.fs.SB.Version), Level: int(v.Level), Pos: v.Pos,
		Detail: detail, Got: c.describeBP(g.pos, g.val[:])})
}
