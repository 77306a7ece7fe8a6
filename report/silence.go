package report

import (
	"fmt"

	"bpcheck/bp"
)

// ErrorIDs are the stable fsck error ids (bch_sb_error_id, the same in
// bcachefs-tools v1.25 to v1.39) of the codes bpcheck reports: the bits of
// the superblock's errors_silent.
var ErrorIDs = map[string]int{
	BtreeNodeBadMagic:             32,
	BsetBadCsum:                   42,
	BtreeNodeReadError:            62,
	AllocKeyDataTypeWrong:         106,
	AllocKeyDirtySectorsWrong:     108,
	AllocKeyCachedSectorsWrong:    109,
	AllocKeyStripeWrong:           110,
	BackpointerBucketOffsetWrong:  125,
	BackpointerToMissingDevice:    126,
	BackpointerToMissingAlloc:     127,
	BackpointerToMissingPtr:       128,
	PtrToInvalidDevice:            142,
	PtrToMissingBackpointer:       147,
	PtrToMissingAllocKey:          148,
	StripeSectorCountWrong:        169,
	DupBackpointerToBadCsumExtent: 265,
	AllocKeyStripeSectorsWrong:    271,

	AllocKeyToMissingDevBucket:                102,
	AllocKeyCachedButReadTimeZero:             104,
	AllocKeyToMissingLRUEntry:                 105,
	NeedDiscardKeyWrong:                       114,
	FreespaceKeyWrong:                         115,
	FreespaceHoleMissing:                      116,
	BucketGensKeyWrong:                        118,
	BucketGensHoleWrong:                       119,
	BucketGensToInvalidDev:                    120,
	BucketGensToInvalidBuckets:                121,
	BucketGensNonzeroForInvalidBuckets:        122,
	NeedDiscardFreespaceKeyToInvalidDevBucket: 123,
	NeedDiscardFreespaceKeyBad:                124,
	LRUEntryToInvalidBucket:                   130,
	LRUEntryBad:                               131,
	AccountingMismatch:                        272,
	AllocKeyFragmentationLRUWrong:             276,
}

// UpgradeStep is an entry of the kernel's upgrade table that names codes
// bpcheck reports: a filesystem whose upgrade to Version has not
// completed gets the step's recovery passes at its next mount or fsck,
// which fix errors of those codes without reporting them.
type UpgradeStep struct {
	Version uint16
	Name    string
	Codes   []string
}

// UpgradeSteps are the steps of the upgrade table (bcachefs-tools v1.25
// to v1.39, sb/downgrade.c) whose silenced errors bpcheck reports.
var UpgradeSteps = []UpgradeStep{
	{bp.VersionBackpointerBucketGen, "backpointer_bucket_gen", []string{BackpointerToMissingPtr, PtrToMissingBackpointer}},
	{bp.VersionCachedBackpointers, "cached_backpointers", []string{PtrToMissingBackpointer}},
	{bp.VersionStripeBackpointers, "stripe_backpointers", []string{PtrToMissingBackpointer}},
	{1<<10 | 12, "rebalance_work_acct_fix", []string{AccountingMismatch}},
	{1<<10 | 15, "disk_accounting_big_endian", []string{AccountingMismatch}},
	{1<<10 | 31, "btree_node_accounting", []string{AccountingMismatch}},
	{bp.VersionNeedDiscardByJournalSeq, "need_discard_by_journal_seq", []string{NeedDiscardFreespaceKeyBad, NeedDiscardKeyWrong, NeedDiscardFreespaceKeyToInvalidDevBucket}},
	{bp.VersionPerDevFragmentationLRU, "per_dev_fragmentation_lru", []string{LRUEntryBad, AllocKeyToMissingLRUEntry, AccountingMismatch}},
}

// Silencer says which findings the next mount or fsck of the filesystem
// would fix without reporting them: codes whose bit is set in the
// superblock's errors_silent while recovery passes are pending, and codes
// an unfinished upgrade step silences (version_upgrade_complete below the
// step's version, the superblock's version at or above it).
type Silencer struct {
	// Silent reports whether an error id is set in errors_silent (nil:
	// none is).
	Silent func(id int) bool
	// UpgradeComplete and Version are the superblock's.
	UpgradeComplete, Version uint16
}

// Mark sets Silenced on the findings it applies to and returns how many.
func (s *Silencer) Mark(fs []Finding) int {
	n := 0
	for i := range fs {
		f := &fs[i]
		if id, ok := ErrorIDs[f.Code]; ok && s.Silent != nil && s.Silent(id) {
			f.Silenced = "marked silent in the superblock (errors_silent) until the recovery passes it requires have run"
		}
		for _, st := range UpgradeSteps {
			if f.Silenced != "" || s.UpgradeComplete >= st.Version || s.Version < st.Version {
				continue
			}
			for _, c := range st.Codes {
				if c == f.Code {
					f.Silenced = fmt.Sprintf("expected while the upgrade to %s (%s) is not complete: it repairs these silently",
						bp.VersionString(st.Version), st.Name)
				}
			}
		}
		if f.Silenced != "" {
			n++
		}
	}
	return n
}

// SilencedNote explains n silenced findings in the summary.
func SilencedNote(n int) string {
	return fmt.Sprintf("%d finding(s) are silenced: the next mount or fsck fixes them without reporting them "+
		"(errors_silent of pending recovery passes, or an unfinished upgrade); they do not count for the exit code", n)
}
