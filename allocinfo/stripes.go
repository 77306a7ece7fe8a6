package allocinfo

import (
	"fmt"
	"sort"

	"bpcheck/bp"
	"bpcheck/report"
)

// stripeLRUPosEmpty is the LRU time of a stripe whose data blocks are all
// empty (STRIPE_LRU_POS_EMPTY: the stripe delete worker takes it).
const stripeLRUPosEmpty = 1

// StripeLRUPos is a stripe's position in the stripe fragmentation LRU
// (stripe_lru_pos), from the sector counts its key records for its data
// blocks: 0 when none is empty (no entry), 1 when all are, else the LRU
// end minus the empty blocks (more empty blocks, reused first). ok is
// false when the counts cannot be read.
func StripeLRUPos(st *bp.Stripe, val []byte) (pos uint64, ok bool) {
	nrData := int(st.NrBlocks) - int(st.NrRedundant)
	if nrData <= 0 {
		return stripeLRUPosEmpty, true // no data block: all (none) empty
	}
	empty := 0
	for i := range nrData {
		n, ok := st.BlockCount(val, i)
		if !ok {
			return 0, false
		}
		if n == 0 {
			empty++
		}
	}
	switch empty {
	case nrData:
		return stripeLRUPosEmpty, true
	case 0:
		return 0, true
	}
	return lruTimeMax - uint64(empty), true
}

// JudgeStripeLRU judges the stripe fragmentation LRU (format B): every
// entry against the LRU position of the stripe it names (check_lrus;
// a missing stripe has none), and every stripe that belongs in the LRU
// against its entry (check_stripe_refs). stripes maps each stripe index to
// its position; corrected lists the stripes whose block counts
// check_allocations corrects: their entry moves with the correction (the
// stripe trigger runs), so they are not judged.
func JudgeStripeLRU(k *Keys, stripes map[uint64]uint64, corrected map[uint64]bool, btreeName func(bp.BtreeID) string) []report.Finding {
	var out []report.Finding
	has := map[uint64]uint64{}
	for _, e := range k.stripeLRU {
		idx := e.pos.Offset
		if corrected[idx] {
			continue
		}
		want := stripes[idx]
		if e.time == want { // the time alone (bch2_check_lru_key)
			has[idx] = want
			continue
		}
		out = append(out, report.Finding{Code: report.LRUEntryBad, Dev: -1, Btree: btreeName(BtreeLRU), Pos: e.pos,
			Got: fmt.Sprint(e.time), Want: fmt.Sprint(want),
			Detail: fmt.Sprintf("incorrect lru entry: lru stripes time %d (stripe %d's position is %d)", e.time, idx, want)})
	}
	idxs := make([]uint64, 0, len(stripes))
	for idx, pos := range stripes {
		if _, ok := has[idx]; !ok && pos != 0 && !corrected[idx] {
			idxs = append(idxs, idx)
		}
	}
	sort.Slice(idxs, func(a, b int) bool { return idxs[a] < idxs[b] })
	for _, idx := range idxs {
		pos := bp.Pos{Inode: uint64(lruStripeID)<<48 | stripes[idx], Offset: idx}
		out = append(out, report.Finding{Code: report.AllocKeyToMissingLRUEntry, Dev: -1, Btree: btreeName(BtreeLRU), Pos: pos,
			Want: fmt.Sprint(stripes[idx]), Detail: fmt.Sprintf("missing stripes lru entry at pos %s (stripe %d)", pos, idx)})
	}
	return out
}
