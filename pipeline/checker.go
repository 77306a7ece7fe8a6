// The checker: the state one check shares between its passes (geometry,
// shard configuration, findings, errors, lost key ranges).

package pipeline

import (
	"errors"
	"sync"
	"sync/atomic"

	"bpcheck/accounting"
	"bpcheck/allocinfo"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/listfmt"
	"bpcheck/report"
	"bpcheck/shard"
)

type checker struct {
	fs       *btreeio.FS
	opt      Options
	geo      *bp.Geometry
	cfg      *shard.Config
	printer  *listfmt.Printer
	formatB  bool
	shift    uint
	mu       sync.Mutex
	findings []report.Finding
	errs     []error
	// problemNodes are the loaded leaves whose problems were reported.
	problemNodes map[nodeAt]bool
	stats        Stats
	lost         shard.Lost // what unreadable nodes hid in the current pass
	// reportedLost remembers the unreadable nodes already reported.
	reportedLost map[shard.LostRange]bool
	phases       Phases
	// anyRotational: some member has the ROTATIONAL flag, so format B
	// backpointers of data pointers carry RECONCILE_PHYS flags.
	anyRotational bool
	// rotational: per device index, the member exists and is rotational
	// (bp.Geometry.Rotational, as an array for the fast path).
	rotational [256]bool
	// rejudging: the checker of a Rejudge, whose loaders do not report
	// again the undecodable keys the check reported.
	rejudging bool
	// loadNodes, loadBytes count the loaders' leaves (Stats.Load*).
	loadNodes, loadBytes atomic.Int64
	// recheckLeaves counts the data leaves the rechecks read
	// (Stats.RecheckLeaves).
	recheckLeaves atomic.Int64
	// stripeBPs are the backpointers device-255 erasure-coded pointers
	// need (first pass; stripebp.go).
	stripeBPs []stripeBP
	// allocRules are the era's rules for the allocator's derived btrees;
	// passKeys holds the current pass's keys of them (allocinfo.go).
	allocRules *allocinfo.Rules
	passKeys   *allocinfo.Keys
	// acctWant sums the accounting the check computes (acct.go);
	// acctSums merges the producers' flags; acctKnown is false when read
	// errors hid buckets whose counters it needs.
	acctWant  accounting.Table
	acctSums  acctSums
	acctKnown bool
	// firstKeys are the first pass's keys of the derived btrees (the
	// stripe LRU is judged from them after the last pass);
	// stripesUnknown: stripes were lost to read errors in some pass.
	firstKeys      *allocinfo.Keys
	stripesUnknown bool
	// allocLeafEnds: the buckets after every alloc leaf's last key, over
	// all passes (allocinfo.MergeHoles)
	allocLeafEnds map[shard.BucketKey]bool
	// leafLog collects the bucket ranges of the nodes the running pass
	// read (leafrange.go: its producers' and its loaders'); leafRanges is
	// the log sorted and merged, brought up to date by each recheck.
	// Both start empty in each pass.
	leafLog, leafRanges []leafRange
	// passHeld is the memory the shards of the running pass pin, as
	// planned: a recheck takes what is left of the budget.
	passHeld int64
}

// nodeLost records a node that could not be read: its subtree's range goes
// into the pass's lost ranges; the first time it is met it becomes a
// finding (and the error is kept for the report).
func (c *checker) nodeLost(list *[]shard.LostRange, btree bp.BtreeID, level uint8, parent *bp.Key, err error) {
	r := shard.LostRange{Btree: btree, Level: level, Max: bp.SPosMax}
	if parent != nil {
		r.Max = parent.Pos
	}
	var re *btreeio.NodeRangeError
	if errors.As(err, &re) {
		r.Min, r.Max = re.Min, re.Max
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	*list = append(*list, r)
	// A node may be met in several passes (and by the planner); report it
	// once.
	if c.reportedLost == nil {
		c.reportedLost = map[shard.LostRange]bool{}
	}
	if c.reportedLost[r] {
		return
	}
	c.reportedLost[r] = true
	c.errs = append(c.errs, err)
	f := report.Finding{Code: nodeErrorCode(err), Dev: -1, Btree: btree.Name(c.fs.SB.Version), Level: int(level), Pos: r.Max,
		Detail: err.Error()}
	c.findings = append(c.findings, f)
}

// nodeErrorCode names a node read error as bcachefs does.
func nodeErrorCode(err error) string {
	switch {
	case errors.Is(err, btreeio.ErrBadChecksum):
		return report.BsetBadCsum
	case errors.Is(err, btreeio.ErrBadMagic):
		return report.BtreeNodeBadMagic
	}
	return report.BtreeNodeReadError
}

func newChecker(fs *btreeio.FS, opt Options) *checker {
	sb := fs.SB
	c := &checker{fs: fs, opt: opt, geo: fs.Geometry(), printer: listfmt.NewPrinter(fs), formatB: sb.FormatB(), shift: sb.ExtentBPShift()}
	c.cfg = &shard.Config{
		FormatB: c.formatB,
		Shift:   c.shift,
		BucketSize: func(dev uint64) (uint32, bool) {
			if dev >= 256 {
				return 0, false
			}
			m := sb.Member(uint8(dev))
			if m == nil {
				return 0, false
			}
			return uint32(m.BucketSize), true
		},
		ValidBucket: func(dev, b uint64) bool {
			if dev >= 256 {
				return false
			}
			m := sb.Member(uint8(dev))
			return m != nil && b >= uint64(m.FirstBucket) && b < m.NBuckets
		},
		Describe:            c.describeBP,
		BtreeName:           func(id bp.BtreeID) string { return id.Name(sb.Version) },
		CheckCached:         true,
		CheckStripe:         true,
		StripeSectors:       sb.Version >= bp.VersionBucketStripeSectors,
		CheckStripeRefcount: sb.Version >= bp.VersionBucketStripeIndex,
		MultipleSticky:      sb.Version >= bp.VersionNeedDiscardByJournalSeq,
		ECFlags:             sb.Version >= bp.VersionErasureCoding,
	}
	c.cfg.CheckDup = c.checkDup
	if !opt.Exact && !fs.Live() && c.shift < 64 {
		// A live check re-judges findings on fresh reads (rejudge.go)
		// with Exact shards: it keeps them from the start. A corrupt
		// extent_bp_shift of 64 or more puts every backpointer in bucket
		// 0 of its device in an Exact shard (a Go shift); digests are
		// not used there.
		c.cfg.Digest = shard.NewDigestKey()
	}
	c.allocRules = allocRules(fs)
	c.acctWant, c.acctKnown = accounting.Table{}, true
	for i := range sb.Members {
		m := &sb.Members[i]
		if i < 256 && m.Exists() && m.NBuckets > uint64(m.FirstBucket) {
			// bch2_dev_usage_init: every bucket starts free.
			c.acctWant.Add(accounting.DevDataType(uint8(i), bp.DataFree), int64(m.NBuckets-uint64(m.FirstBucket)), 0, 0)
		}
	}
	for i := range sb.Members {
		if i < len(c.rotational) && sb.Members[i].Exists() && sb.Members[i].Rotational() {
			c.rotational[i] = true
			if c.formatB {
				c.anyRotational = true
			}
		}
	}
	return c
}

// describeBP renders a backpointer key as bcachefs list prints it.
func (c *checker) describeBP(pos bp.Pos, val []byte) string {
	k := bp.Key{U64s: bp.KeyU64s + bp.BackpointerBytes/8, Format: bp.FormatUnpacked, Type: bp.KeyBackpointer, Pos: pos}
	return string(c.printer.AppendKey(nil, bp.BtreeBackpointers, &k, val))
}

func (c *checker) addFinding(f report.Finding) {
	c.mu.Lock()
	c.findings = append(c.findings, f)
	c.mu.Unlock()
}

func (c *checker) addError(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

// nodeAt names a node by where it was read.
type nodeAt struct {
	dev string
	off int64
}

// loadedNodeProblems reports the problems met while reading a leaf of the
// backpointers or alloc btree (keys that did not decode, out of order or
// outside the node's range: dropped, so a pointer to them is reported as
// missing its backpointer or alloc key) once per check: a leaf at the
// edge of a shard's range is read by the loaders of both shards, and
// every pass reads its ranges again.
func (c *checker) loadedNodeProblems(n *btreeio.Node) {
	if len(n.Problems) == 0 {
		return
	}
	at := nodeAt{n.Dev, n.Offset}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.problemNodes[at] {
		return
	}
	if c.problemNodes == nil {
		c.problemNodes = map[nodeAt]bool{}
	}
	c.problemNodes[at] = true
	c.errs = append(c.errs, n.Problems...)
}
