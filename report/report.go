// Package report defines bpcheck's findings and writes them as text or as
// JSON Lines. Findings are values: they are collected and streamed, never
// returned as errors, so one problem never stops a check.
package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"bpcheck/bp"
)

// Finding codes, named as bcachefs fsck names the errors.
const (
	PtrToMissingBackpointer       = "ptr_to_missing_backpointer"
	BackpointerToMissingPtr       = "backpointer_to_missing_ptr"
	BackpointerToMissingAlloc     = "backpointer_to_missing_alloc"
	BackpointerToMissingDevice    = "backpointer_to_missing_device"
	BackpointerBucketOffsetWrong  = "backpointer_bucket_offset_wrong"
	BackpointerLevelBad           = "backpointer_level_bad"
	BackpointerDevBad             = "backpointer_dev_bad"
	PtrToMissingAllocKey          = "ptr_to_missing_alloc_key"
	AllocKeyDirtySectorsWrong     = "alloc_key_dirty_sectors_wrong"
	AllocKeyCachedSectorsWrong    = "alloc_key_cached_sectors_wrong"
	AllocKeyStripeSectorsWrong    = "alloc_key_stripe_sectors_wrong"
	AllocKeyStripeWrong           = "alloc_key_stripe_wrong"
	StripeSectorCountWrong        = "stripe_sector_count_wrong"
	AllocKeyDataTypeWrong         = "alloc_key_data_type_wrong"
	PtrGenNewerThanBucket         = "ptr_gen_newer_than_bucket"
	StaleDirtyPtr                 = "stale_dirty_ptr"
	PtrToInvalidDevice            = "ptr_to_invalid_device"
	BtreeNodeReadError            = "btree_node_read_error"
	BsetBadCsum                   = "bset_bad_csum"
	BtreeNodeBadMagic             = "btree_node_bad_magic"
	DupBackpointerToBadCsumExtent = "dup_backpointer_to_bad_csum_extent"
	DupExtentsToReflink           = "dup_extents_to_reflink"

	// The allocator's derived btrees (check_alloc_info, check_lrus,
	// check_alloc_to_lru_refs) and the disk accounting.
	AllocKeyFragmentationLRUWrong             = "alloc_key_fragmentation_lru_wrong"
	AllocKeyToMissingLRUEntry                 = "alloc_key_to_missing_lru_entry"
	AllocKeyToMissingDevBucket                = "alloc_key_to_missing_dev_bucket"
	AllocKeyCachedButReadTimeZero             = "alloc_key_cached_but_read_time_zero"
	LRUEntryBad                               = "lru_entry_bad"
	LRUEntryToInvalidBucket                   = "lru_entry_to_invalid_bucket"
	NeedDiscardKeyWrong                       = "need_discard_key_wrong"
	FreespaceKeyWrong                         = "freespace_key_wrong"
	FreespaceHoleMissing                      = "freespace_hole_missing"
	BucketGensKeyWrong                        = "bucket_gens_key_wrong"
	BucketGensHoleWrong                       = "bucket_gens_hole_wrong"
	BucketGensToInvalidDev                    = "bucket_gens_to_invalid_dev"
	BucketGensToInvalidBuckets                = "bucket_gens_to_invalid_buckets"
	BucketGensNonzeroForInvalidBuckets        = "bucket_gens_nonzero_for_invalid_buckets"
	NeedDiscardFreespaceKeyToInvalidDevBucket = "need_discard_freespace_key_to_invalid_dev_bucket"
	NeedDiscardFreespaceKeyBad                = "need_discard_freespace_key_bad"
	AccountingMismatch                        = "accounting_mismatch"
)

// Finding is one problem found.
type Finding struct {
	Code string
	// Dev and Bucket locate the bucket concerned (Dev < 0: none).
	Dev    int
	Bucket uint64
	// BP is the backpointer key position, when a backpointer is concerned.
	BP    bp.Pos
	HasBP bool
	// Btree, Level and Pos name the key that holds the pointer (or that the
	// backpointer claims): level 0 is an extent in a leaf, ≥ 1 a pointer
	// to a btree node.
	Btree string
	Level int
	Pos   bp.Pos
	// KeyType is the type of the key holding the pointer, if known.
	KeyType string
	// Got and Want are the found and expected values (backpointer text,
	// sector counts, data types), when the finding compares two values.
	Got, Want string
	// Detail is a human-readable explanation.
	Detail string
	// Leftover names what an upgrade left in the stored backpointer this
	// finding is about (LeftoverLayout114, LeftoverECFlags137), or "".
	// The finding stands, as the fsck of the era reports it; the
	// summary notes explain it (LeftoverNote).
	Leftover string
	// Silenced says why the next mount or fsck would fix this finding
	// without reporting it (see Silencer), or "". Silenced findings are
	// reported but do not count for the exit code.
	Silenced string
}

// Upgrade leftovers: stored backpointers as an older metadata version
// wrote them, on a filesystem upgraded past it.
const (
	// LeftoverLayout114: the value keeps the layout of metadata before
	// 1.14 (a 40-bit bucket_offset in bytes 3..7, where 1.14 keeps
	// bucket_gen and flags) at its right position.
	LeftoverLayout114 = "layout before 1.14"
	// LeftoverECFlags137: the backpointer of an erasure-coded pointer
	// lacks the erasure-coding flags 1.37 added.
	LeftoverECFlags137 = "erasure-coding flags missing (written before 1.37)"
)

// leftoverDetails are appended to a finding's detail per leftover kind.
var leftoverDetails = map[string]string{
	LeftoverLayout114:  "; the stored value has the layout of metadata before 1.14 (a 40-bit bucket_offset where bucket_gen and flags now are)",
	LeftoverECFlags137: "; the stored value lacks the erasure-coding flags that metadata 1.37 added (written before 1.37)",
}

// MarkLeftover marks f as concerning an upgrade leftover of kind and says
// so in its detail.
func MarkLeftover(f *Finding, kind string) {
	f.Leftover = kind
	f.Detail += leftoverDetails[kind]
}

// LeftoverNote explains n findings of one leftover kind in the summary.
func LeftoverNote(kind string, n int) string {
	switch kind {
	case LeftoverLayout114:
		return fmt.Sprintf("%d finding(s) concern backpointers that keep the value layout of metadata before 1.14 "+
			"at their right positions: an upgrade from 1.13 or older left them (the 1.14 upgrade of bcachefs-tools "+
			"v1.25.3 does not rewrite them, by its sources nor does any tools release from v1.20 to v1.25.x). The fsck "+
			"of the filesystem's era reports them the same way, and its `fsck -y` deletes them and writes them anew "+
			"in the 1.14 layout", n)
	case LeftoverECFlags137:
		return fmt.Sprintf("%d finding(s) concern backpointers of erasure-coded pointers written before metadata 1.37, "+
			"without the erasure-coding flags 1.37 added: the upgrade to 1.37 does not rewrite them. The fsck of "+
			"bcachefs-tools v1.37 and later compares all 32 bytes and calls them wrong (when it looks at their buckets); "+
			"its `fsck -y` writes them anew with the flags", n)
	}
	return fmt.Sprintf("%d finding(s): %s", n, kind)
}

// Compare orders findings deterministically: by device and bucket, then
// backpointer position, code and the rest.
func Compare(a, b *Finding) int {
	if c := cmp.Compare(a.Dev, b.Dev); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Bucket, b.Bucket); c != 0 {
		return c
	}
	if a.HasBP != b.HasBP {
		if a.HasBP {
			return 1
		}
		return -1
	}
	if c := a.BP.Cmp(b.BP); c != 0 {
		return c
	}
	if c := strings.Compare(a.Code, b.Code); c != 0 {
		return c
	}
	if c := strings.Compare(a.Btree, b.Btree); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Level, b.Level); c != 0 {
		return c
	}
	if c := a.Pos.Cmp(b.Pos); c != 0 {
		return c
	}
	if c := strings.Compare(a.Got, b.Got); c != 0 {
		return c
	}
	return strings.Compare(a.Want, b.Want)
}

// Sort orders findings deterministically.
func Sort(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int { return Compare(&a, &b) })
}

// Summary is the end-of-run summary.
type Summary struct {
	Devices int    `json:"devices"`
	Clean   bool   `json:"fs_clean"`
	FormatB bool   `json:"format_b"`
	Version string `json:"version"`
	// Rules names the fsck whose judgement the findings follow: the
	// bcachefs-tools release of the metadata version's era.
	Rules        string `json:"rules"`
	Passes       int    `json:"passes"`
	Shards       int    `json:"shards"`
	Workers      int    `json:"workers"`
	MemoryBudget int64  `json:"memory_budget"`
	// EstimatedBytes is the memory the shards of a one-pass check would pin.
	EstimatedBytes int64 `json:"estimated_bytes"`
	Nodes          int64 `json:"nodes"`
	NodeBytes      int64 `json:"node_bytes"`
	// LoadNodes and LoadBytes count the leaves the loaders read: backpointers,
	// alloc, and the allocator's derived btrees (lru, freespace,
	// need_discard, bucket_gens).
	LoadNodes    int64 `json:"load_nodes"`
	LoadBytes    int64 `json:"load_bytes"`
	Keys         int64 `json:"keys"`
	Extents      int64 `json:"extents"`
	Pointers     int64 `json:"pointers"`
	Backpointers int64 `json:"backpointers"`
	AllocKeys    int64 `json:"alloc_keys"`
	Buckets      int64 `json:"buckets"`
	// Matching says how pointers were matched with backpointers:
	// "digest" (per-bucket sums, then the buckets whose sums disagree
	// checked again) or "exact" (every backpointer kept).
	Matching string `json:"matching"`
	// Rechecked counts the buckets whose digests disagreed and were
	// checked again the exact way (pipeline.Stats.Rechecked).
	Rechecked int64 `json:"rechecked"`
	// RecheckWalks counts the walks of the pointer btrees the rechecks
	// took (pipeline.Stats.RecheckWalks): more than one per pass when the
	// rechecked buckets' backpointers did not fit the memory at once.
	RecheckWalks int64 `json:"recheck_walks"`
	// RecheckLeaves counts the data leaves the rechecks' walks read
	// (pipeline.Stats.RecheckLeaves); the others were skipped, the first
	// pass having logged none of their records in a bucket rechecked.
	RecheckLeaves int64 `json:"recheck_leaves"`
	Findings      int   `json:"findings"`
	// Silenced counts the findings the next mount or fsck fixes without
	// reporting them (Finding.Silenced); they do not set exit code 4.
	Silenced     int                `json:"silenced"`
	ByCode       map[string]int     `json:"by_code"`
	Errors       int                `json:"errors"`
	Seconds      float64            `json:"seconds"`
	PhaseSeconds map[string]float64 `json:"phase_seconds,omitempty"`
	// UnlockSeconds is how long deriving the key from a passphrase took
	// before the check (scrypt; not in Seconds), 0 when the key came from
	// elsewhere or the filesystem is not encrypted.
	UnlockSeconds float64      `json:"unlock_seconds,omitempty"`
	ExitCode      int          `json:"exit_code"`
	NotChecked    []string     `json:"not_checked,omitempty"`
	JournalKeys   int          `json:"journal_keys"`
	PerDevice     []DevSummary `json:"per_device,omitempty"`
	Interrupted   bool         `json:"interrupted,omitempty"`
	// PassesDone is how many passes an interrupted check completed.
	PassesDone int      `json:"passes_done,omitempty"`
	Notes      []string `json:"notes,omitempty"`

	// Live is set for a check of a mounted filesystem (check --live).
	Live *LiveSummary `json:"live,omitempty"`
}

// MetricsInput is what `bpcheck check --metrics-file` hands the metrics
// writer (cmd/bpcheck-metrics) on its standard input, as one JSON object:
// the summary of the check and the facts the summary does not carry.
type MetricsInput struct {
	// UUID is the filesystem's external uuid (the metrics' uuid label).
	UUID string `json:"uuid"`
	// Time is when the check ended, in Unix seconds.
	Time int64 `json:"time"`
	// PeakMemoryBytes is the check's peak resident set size.
	PeakMemoryBytes int64    `json:"peak_memory_bytes"`
	Summary         *Summary `json:"summary"`
}

// DevSummary is the per-device part of the summary.
type DevSummary struct {
	Dev          int            `json:"dev"`
	Path         string         `json:"path"`
	Buckets      int64          `json:"buckets"`
	Backpointers int64          `json:"backpointers"`
	Pointers     int64          `json:"pointers"`
	ByCode       map[string]int `json:"by_code"`
}

// Advice says, per finding code, what bcachefs fsck does about it.
var Advice = map[string]string{
	PtrToMissingBackpointer:                   "`bcachefs fsck -y` recreates the backpointer from the pointer (check_extents_to_backpointers).",
	BackpointerToMissingPtr:                   "`bcachefs fsck -y` deletes the backpointer: no key points at that space (check_backpointers_to_extents).",
	BackpointerToMissingAlloc:                 "`bcachefs fsck -y` deletes the backpointer: its bucket has no alloc key (check_btree_backpointers).",
	BackpointerToMissingDevice:                "`bcachefs fsck -y` deletes the backpointer: its device is not a member (check_btree_backpointers).",
	BackpointerBucketOffsetWrong:              "`bcachefs fsck -y` deletes the invalid backpointer key and recreates it from the pointer.",
	BackpointerLevelBad:                       "`bcachefs fsck -y` deletes the invalid backpointer key.",
	BackpointerDevBad:                         "`bcachefs fsck -y` deletes the invalid backpointer key.",
	PtrToMissingAllocKey:                      "`bcachefs fsck -y` recreates the alloc key from the pointers (check_allocations).",
	AllocKeyDirtySectorsWrong:                 "`bcachefs fsck -y` rewrites the alloc key's dirty_sectors from the pointers (check_allocations).",
	AllocKeyCachedSectorsWrong:                "`bcachefs fsck -y` rewrites the alloc key's cached_sectors from the pointers (check_allocations).",
	AllocKeyStripeSectorsWrong:                "`bcachefs fsck -y` rewrites the alloc key's stripe_sectors (check_allocations).",
	AllocKeyStripeWrong:                       "`bcachefs fsck -y` rewrites the alloc key's stripe_refcount (check_allocations).",
	StripeSectorCountWrong:                    "`bcachefs fsck -y` rewrites the stripe key's block sector counts from the erasure-coded extents (check_allocations).",
	AllocKeyDataTypeWrong:                     "`bcachefs fsck -y` rewrites the alloc key's data type (check_allocations).",
	PtrGenNewerThanBucket:                     "`bcachefs fsck -y` raises the bucket generation or drops the pointer (check_allocations).",
	StaleDirtyPtr:                             "`bcachefs fsck -y` drops the stale dirty pointer: its data is lost (check_allocations).",
	PtrToInvalidDevice:                        "`bcachefs fsck -y` drops the pointer to the missing device.",
	BtreeNodeReadError:                        "the node could not be read from any replica; `bcachefs fsck -y` drops it and may need btree topology repair (its keys are lost).",
	BsetBadCsum:                               "the node's checksum is bad on every replica; `bcachefs fsck -y` drops the bad bset or node (its keys are lost).",
	BtreeNodeBadMagic:                         "the pointer leads to something that is not this btree node; `bcachefs fsck -y` drops it (topology repair).",
	DupBackpointerToBadCsumExtent:             "`bcachefs fsck -y` drops the pointer of the extent whose data checksum is bad.",
	DupExtentsToReflink:                       "`bcachefs fsck -y` (newest) converts the shared range into a reflink extent referenced by both files.",
	AllocKeyFragmentationLRUWrong:             "`bcachefs fsck -y` rewrites the alloc key's fragmentation_lru from its sector counts (check_allocations).",
	AllocKeyToMissingLRUEntry:                 "`bcachefs fsck -y` adds the LRU entry (check_alloc_to_lru_refs); copygc does not see the bucket until then.",
	AllocKeyToMissingDevBucket:                "`bcachefs fsck -y` deletes the alloc key: its device has no such bucket (check_alloc_info).",
	AllocKeyCachedButReadTimeZero:             "`bcachefs fsck -y` sets the bucket's read time to now and adds its read LRU entry (check_alloc_to_lru_refs).",
	LRUEntryBad:                               "`bcachefs fsck -y` deletes the LRU entry (check_lrus).",
	LRUEntryToInvalidBucket:                   "`bcachefs fsck -y` deletes the LRU entry (check_lrus).",
	NeedDiscardKeyWrong:                       "`bcachefs fsck -y` sets or clears the bucket's need_discard key (check_alloc_info).",
	FreespaceKeyWrong:                         "`bcachefs fsck -y` sets or clears the bucket's freespace key (check_alloc_info); the allocator trusts it.",
	FreespaceHoleMissing:                      "`bcachefs fsck -y` adds a freespace key over the empty buckets (check_alloc_info); until then they are never allocated.",
	BucketGensKeyWrong:                        "`bcachefs fsck -y` writes the alloc key's gen into bucket_gens (check_alloc_info).",
	BucketGensHoleWrong:                       "`bcachefs fsck -y` zeroes the gen of the bucket with no alloc key (check_alloc_info).",
	BucketGensToInvalidDev:                    "`bcachefs fsck -y` deletes the bucket_gens key (check_alloc_info).",
	BucketGensToInvalidBuckets:                "`bcachefs fsck -y` deletes the bucket_gens key (check_alloc_info).",
	BucketGensNonzeroForInvalidBuckets:        "`bcachefs fsck -y` zeroes the gens of buckets that do not exist (check_alloc_info).",
	NeedDiscardFreespaceKeyToInvalidDevBucket: "`bcachefs fsck -y` deletes the entry (check_alloc_info).",
	NeedDiscardFreespaceKeyBad:                "`bcachefs fsck -y` deletes the entry: its bucket is not in that state (check_alloc_info).",
	AccountingMismatch:                        "`bcachefs fsck -y` writes the difference into the accounting btree (check_allocations); `df` and the allocator's counters are off until then.",
}

// CountByCode fills s.Findings and s.ByCode from findings.
func (s *Summary) CountByCode(fs []Finding) {
	s.Findings = len(fs)
	s.ByCode = map[string]int{}
	for i := range fs {
		s.ByCode[fs[i].Code]++
	}
}

// WriteText writes one line per finding.
func WriteText(w io.Writer, f *Finding) error {
	var b strings.Builder
	b.WriteString(f.Code)
	b.WriteString(":")
	if f.Dev >= 0 {
		fmt.Fprintf(&b, " bucket %d:%d", f.Dev, f.Bucket)
	}
	if f.HasBP {
		fmt.Fprintf(&b, " bp %s", f.BP)
	}
	if f.Btree != "" {
		fmt.Fprintf(&b, " btree=%s level=%d pos=%s", f.Btree, f.Level, f.Pos)
	}
	if f.KeyType != "" {
		fmt.Fprintf(&b, " (%s)", f.KeyType)
	}
	if f.Detail != "" {
		b.WriteString(": ")
		b.WriteString(f.Detail)
	}
	if f.Got != "" || f.Want != "" {
		fmt.Fprintf(&b, "\n  got:  %s\n  want: %s", orNone(f.Got), orNone(f.Want))
	}
	if f.Silenced != "" {
		fmt.Fprintf(&b, "\n  silenced: %s", f.Silenced)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// WriteTextSummary writes the summary as text.
func WriteTextSummary(w io.Writer, s *Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSummary: %d finding(s)", s.Findings)
	if s.Silenced > 0 {
		fmt.Fprintf(&b, " (%d silenced)", s.Silenced)
	}
	if s.Errors > 0 {
		fmt.Fprintf(&b, ", %d read error(s)", s.Errors)
	}
	b.WriteString("\n")
	for _, c := range sortedKeys(s.ByCode) {
		fmt.Fprintf(&b, "  %-34s %d\n", c, s.ByCode[c])
	}
	fmt.Fprintf(&b, "Scanned: %d nodes with pointers (%d bytes), %d backpointer, alloc and allocator leaves (%d bytes), %d keys, %d pointers, %d backpointers, %d alloc keys, %d buckets\n",
		s.Nodes, s.NodeBytes, s.LoadNodes, s.LoadBytes, s.Keys, s.Pointers, s.Backpointers, s.AllocKeys, s.Buckets)
	fmt.Fprintf(&b, "Filesystem: version %s (format %s), %d device(s), %s\n", s.Version, map[bool]string{true: "B", false: "A"}[s.FormatB], s.Devices,
		map[bool]string{true: "clean", false: fmt.Sprintf("not clean: %d journal keys overlaid", s.JournalKeys)}[s.Clean])
	if s.Rules != "" {
		fmt.Fprintf(&b, "Rules: those of the fsck of %s\n", s.Rules)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "Note: %s\n", n)
	}
	if s.Live != nil {
		b.WriteString(liveLine(s.Live))
	}
	fmt.Fprintf(&b, "Run: %d pass(es), %d shard(s), %d worker(s), memory budget %d bytes, %.3f s\n", s.Passes, s.Shards, s.Workers, s.MemoryBudget, s.Seconds)
	if s.Interrupted {
		fmt.Fprintf(&b, "Interrupted: %d of %d pass(es) done; a partial report (what was not checked is below)\n", s.PassesDone, s.Passes)
	}
	if s.UnlockSeconds > 0 {
		fmt.Fprintf(&b, "Key: derived from the passphrase in %.3f s before the check (scrypt)\n", s.UnlockSeconds)
	}
	switch s.Matching {
	case "digest":
		fmt.Fprintf(&b, "Matching: per-bucket digests; %d bucket(s) whose digests disagreed checked again with their backpointers kept", s.Rechecked)
		if s.RecheckWalks > 0 {
			fmt.Fprintf(&b, " (%d walk(s) of the pointer btrees reading %d data leaves)", s.RecheckWalks, s.RecheckLeaves)
		}
		b.WriteString("\n")
	case "exact":
		b.WriteString("Matching: exact (every backpointer kept)\n")
	}
	for _, n := range s.NotChecked {
		fmt.Fprintf(&b, "Not checked: %s\n", n)
	}
	if len(s.PerDevice) > 0 {
		fmt.Fprintf(&b, "Devices:\n  %-4s %-12s %-14s %-14s %s\n", "dev", "buckets", "backpointers", "pointers in", "findings")
		for _, d := range s.PerDevice {
			var fs []string
			for _, c := range sortedKeys(d.ByCode) {
				fs = append(fs, fmt.Sprintf("%s %d", c, d.ByCode[c]))
			}
			if len(fs) == 0 {
				fs = append(fs, "none")
			}
			fmt.Fprintf(&b, "  %-4d %-12d %-14d %-14d %s  (%s)\n", d.Dev, d.Buckets, d.Backpointers, d.Pointers, strings.Join(fs, ", "), d.Path)
		}
	}
	if len(s.ByCode) > 0 {
		b.WriteString("What bcachefs fsck does about them:\n")
		for _, c := range sortedKeys(s.ByCode) {
			if a, ok := Advice[c]; ok {
				fmt.Fprintf(&b, "  %s: %s\n", c, a)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// jsonFinding is the JSON Lines form of a finding.
type jsonFinding struct {
	MessageType string  `json:"message_type"`
	Code        string  `json:"code"`
	Dev         *int    `json:"dev,omitempty"`
	Bucket      *uint64 `json:"bucket,omitempty"`
	BP          string  `json:"bp,omitempty"`
	Btree       string  `json:"btree,omitempty"`
	Level       *int    `json:"level,omitempty"`
	Pos         string  `json:"pos,omitempty"`
	KeyType     string  `json:"key_type,omitempty"`
	Got         string  `json:"got,omitempty"`
	Want        string  `json:"want,omitempty"`
	Detail      string  `json:"detail,omitempty"`
	Leftover    string  `json:"upgrade_leftover,omitempty"`
	Silenced    string  `json:"silenced,omitempty"`
}

// WriteJSON writes a finding as one JSON line.
func WriteJSON(w io.Writer, f *Finding) error {
	j := jsonFinding{MessageType: "finding", Code: f.Code, KeyType: f.KeyType, Got: f.Got, Want: f.Want, Detail: f.Detail, Leftover: f.Leftover, Silenced: f.Silenced}
	if f.Dev >= 0 {
		d, b := f.Dev, f.Bucket
		j.Dev, j.Bucket = &d, &b
	}
	if f.HasBP {
		j.BP = f.BP.String()
	}
	if f.Btree != "" {
		l := f.Level
		j.Btree, j.Level, j.Pos = f.Btree, &l, f.Pos.String()
	}
	return writeLine(w, j)
}

// WriteJSONSummary writes the summary as one JSON line.
func WriteJSONSummary(w io.Writer, s *Summary) error {
	return writeLine(w, struct {
		MessageType string `json:"message_type"`
		*Summary
	}{"summary", s})
}

// WriteJSONError writes an operational error (a node that could not be
// read, a device error) as one JSON line.
func WriteJSONError(w io.Writer, err error) error {
	return writeLine(w, struct {
		MessageType string `json:"message_type"`
		Error       string `json:"error"`
	}{"error", err.Error()})
}

func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
