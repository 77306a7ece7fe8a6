// Package confirm re-judges the candidate findings of a check of a mounted
// filesystem before they are reported (`bpcheck check --live`). A check
// that reads a filesystem while the kernel writes it sees keys of
// different moments side by side: an extent read before its file was
// deleted, and the backpointers read after. Every finding is looked at
// again, from a fresh read of the journal and of the keys it is about,
// twice; one that no longer holds is transient, not a problem.
package confirm

import (
	"context"
	"fmt"
	"slices"
	"time"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/pipeline"
	"bpcheck/report"
)

// Default timing of the re-reads.
const (
	// DefaultSettle is the longest wait, after the first re-read, for the
	// journal to move past it.
	DefaultSettle = 2 * time.Second
	// DefaultPoll is how often the journal is read while waiting.
	DefaultPoll = 250 * time.Millisecond
	// DefaultRereads is how many fresh re-reads a finding must survive.
	DefaultRereads = 2
)

// Options tune the confirmation.
type Options struct {
	// Rereads is how many re-reads a finding must hold on (default 2).
	Rereads int
	// Settle is the longest wait before each re-read after the first for
	// the journal to move past the previous one; when it does not move the
	// filesystem is idle and the re-read goes ahead (default 2 s).
	Settle time.Duration
	// Poll is how often the journal is read while waiting (default 250 ms).
	Poll time.Duration
}

// Result is the outcome of a confirmation.
type Result struct {
	// Confirmed are the findings that held on every re-read, with the
	// values of the last one; Transient those that went away, as the scan
	// found them.
	Confirmed, Transient []report.Finding
	// Errors are the scan's errors (those of nodes that read well on a
	// re-read say so: what they hid was not judged) and the errors of
	// the re-reads that the scan had not met.
	Errors []error
	// Seqs are the newest journal seqs of the scan and of each re-read.
	Seqs []uint64
	// Idle says that the journal did not move between the last two
	// re-reads (the filesystem was idle for the settle time).
	Idle bool
	// Inconclusive says that fewer than the asked re-reads could be made
	// without read errors: the findings still holding are reported as
	// confirmed, and the errors of the last re-read are in Errors.
	Inconclusive bool
}

// Note describes the confirmation in one sentence for the summary.
func (r *Result) Note() string {
	how := "the journal moved on between the re-reads"
	if r.Idle {
		how = "the journal did not move between the re-reads (idle)"
	}
	return fmt.Sprintf("live check: %d candidate finding(s) re-judged on %d fresh re-read(s) of the journal and of the keys they concern "+
		"(journal seqs %v, %s): %d confirmed, %d transient",
		len(r.Confirmed)+len(r.Transient), max(len(r.Seqs)-1, 0), r.Seqs, how, len(r.Confirmed), len(r.Transient))
}

// Run re-judges findings (and the node errors among errs) on fs, whose
// roots and journal are those of the scan that found them. It re-reads
// the journal (fs.Refresh) before each re-read; fs must not be walked
// meanwhile. With no findings it reads nothing.
func Run(ctx context.Context, fs *btreeio.FS, findings []report.Finding, errs []error, opt Options) (*Result, error) {
	if opt.Rereads <= 0 {
		opt.Rereads = DefaultRereads
	}
	if opt.Settle <= 0 {
		opt.Settle = DefaultSettle
	}
	if opt.Poll <= 0 {
		opt.Poll = DefaultPoll
	}
	res := &Result{Seqs: []uint64{fs.JournalEnd()}}
	if len(findings) == 0 {
		res.Errors = errs
		return res, nil
	}
	cands := append([]report.Finding(nil), findings...)
	first := map[int]report.Finding{} // index in cands → the scan's value
	holding := make([]bool, len(cands))
	for i := range cands {
		first[i] = cands[i]
		holding[i] = true
	}
	// A re-read that met a read error (a node being rewritten, or the
	// journal read before the nodes it names were written) judges
	// nothing: its findings cannot be told from what the error hid. It
	// is repeated, up to attempts times in all; when the re-reads keep
	// failing, the findings still holding are reported with the errors.
	var rereadErrs []error
	attempts := 2*opt.Rereads + 2
	good := 0
	// A node the scan could not read and a re-read cannot either (a
	// damaged node, not one being rewritten) does not void the re-read:
	// its error is the scan's, reported once.
	scanErr := map[string]bool{}
	for _, e := range errs {
		scanErr[e.Error()] = true
	}
	for try := 0; try < attempts && good < opt.Rereads; try++ {
		prev := res.Seqs[len(res.Seqs)-1]
		moved, err := refresh(ctx, fs, prev, try > 0, opt)
		if err != nil {
			return nil, err
		}
		fresh, ferrs, err := judge(ctx, fs, cands, holding)
		if err != nil {
			return nil, err
		}
		ferrs = slices.DeleteFunc(ferrs, func(e error) bool { return scanErr[e.Error()] })
		if len(ferrs) > 0 {
			rereadErrs = ferrs
			continue
		}
		rereadErrs = nil
		res.Seqs = append(res.Seqs, fs.JournalEnd())
		res.Idle = good > 0 && !moved
		good++
		for i := range cands {
			if !holding[i] {
				continue
			}
			if f, ok := fresh[i]; ok {
				cands[i] = f
			} else {
				holding[i] = false
			}
		}
	}
	res.Inconclusive = good < opt.Rereads
	gone := map[string]bool{}
	for i := range cands {
		if holding[i] {
			res.Confirmed = append(res.Confirmed, cands[i])
			continue
		}
		f := first[i]
		res.Transient = append(res.Transient, f)
		if nodeCode(f.Code) {
			gone[f.Detail] = true
		}
	}
	for _, e := range errs {
		if gone[e.Error()] {
			// The node reads now, but the scan judged nothing of what
			// its keys hold: still an error (a check of what it hid is
			// a new check).
			e = fmt.Errorf("%w (it read on a fresh re-read; what its keys hold was not judged: check again)", e)
		}
		res.Errors = append(res.Errors, e)
	}
	res.Errors = append(res.Errors, rereadErrs...)
	report.Sort(res.Confirmed)
	return res, nil
}

// refresh re-reads the journal. With wait, it polls until the newest seq
// passes prev or opt.Settle has passed, and says whether it moved.
func refresh(ctx context.Context, fs *btreeio.FS, prev uint64, wait bool, opt Options) (bool, error) {
	deadline := time.Now().Add(opt.Settle)
	for {
		if err := fs.Refresh(); err != nil {
			return false, err
		}
		if fs.JournalEnd() > prev {
			return true, nil
		}
		if !wait || !time.Now().Before(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(opt.Poll):
		}
	}
}

// nodeCode reports whether code is that of a node that could not be read.
func nodeCode(code string) bool {
	return code == report.BtreeNodeReadError || code == report.BsetBadCsum || code == report.BtreeNodeBadMagic
}

// identity is what makes two findings the same problem, whatever the
// values they compare.
type identity struct {
	code   string
	dev    int
	bucket uint64
	hasBP  bool
	bp     bp.Pos
	btree  string
	level  int
	pos    bp.Pos
}

func idOf(f *report.Finding) identity {
	return identity{f.Code, f.Dev, f.Bucket, f.HasBP, f.BP, f.Btree, f.Level, f.Pos}
}

// judge looks again at the holding candidates and returns, by index, those
// that still hold with their fresh values.
func judge(ctx context.Context, fs *btreeio.FS, cands []report.Finding, holding []bool) (map[int]report.Finding, []error, error) {
	out := map[int]report.Finding{}
	var buckets []pipeline.BucketRef
	var keys []pipeline.KeyRef
	var bucketIdx []int
	for i := range cands {
		if !holding[i] {
			continue
		}
		f := &cands[i]
		if f.Dev >= 0 && f.Dev < len(fs.SB.Members) && fs.SB.Members[f.Dev].Exists() {
			buckets = append(buckets, pipeline.BucketRef{Dev: f.Dev, Bucket: f.Bucket})
			if k, ok := keyOf(fs, f); ok {
				keys = append(keys, k)
			}
			bucketIdx = append(bucketIdx, i)
			continue
		}
		ok, err := stillThere(fs, f)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			out[i] = *f
		}
	}
	var errs []error
	if len(bucketIdx) > 0 {
		fresh, ferrs, err := pipeline.Rejudge(ctx, fs, buckets, keys)
		if err != nil {
			return nil, nil, err
		}
		errs = ferrs
		byID := map[identity]report.Finding{}
		for i := range fresh {
			byID[idOf(&fresh[i])] = fresh[i]
		}
		for _, i := range bucketIdx {
			if f, ok := byID[idOf(&cands[i])]; ok {
				out[i] = f
			}
		}
	}
	return out, errs, nil
}

// keyOf names the key a finding is about.
func keyOf(fs *btreeio.FS, f *report.Finding) (pipeline.KeyRef, bool) {
	if f.Btree == "" || f.Level < 0 || f.Level > 255 {
		return pipeline.KeyRef{}, false
	}
	id, ok := bp.ParseBtreeID(f.Btree)
	if !ok {
		return pipeline.KeyRef{}, false
	}
	return pipeline.KeyRef{Btree: id, Level: uint8(f.Level), Pos: f.Pos}, true
}

// stillThere re-judges a finding about no bucket of a member: a node that
// could not be read holds while it still cannot be read through its
// pointer as a fresh read of its parent gives it; any other holds while
// the key it names (the pointer's key, or the backpointer) still exists.
func stillThere(fs *btreeio.FS, f *report.Finding) (bool, error) {
	switch {
	case f.Dev < 0 && f.Code == report.AllocKeyToMissingLRUEntry:
		// A stripe LRU entry that should be there: it holds while the
		// entry is still missing.
		id, ok := bp.ParseBtreeID(f.Btree)
		if !ok {
			return true, nil
		}
		_, _, found, err := fs.Lookup(id, 0, f.Pos)
		return err != nil || !found, nil
	case f.Dev < 0 && f.Code == report.BackpointerToMissingPtr && f.HasBP:
		// A stripe backpointer no pointer claims (stripe_backpointers):
		// it holds while the backpointer is there (the extent it names
		// is missing, or lacks the pointer).
		_, _, found, err := fs.Lookup(bp.BtreeStripeBackpointers, 0, f.BP)
		return err != nil || found, nil
	}
	k, named := keyOf(fs, f)
	if nodeCode(f.Code) {
		if !named || k.Level == 255 {
			return true, nil
		}
		pk, pval, ok, err := fs.Lookup(k.Btree, k.Level+1, k.Pos)
		if err != nil || !ok {
			// The parent cannot be read, or no longer points there: a
			// parent that cannot be read keeps the finding; a node gone
			// from its parent was being replaced.
			return err != nil, nil
		}
		n, err := fs.ReadNode(k.Btree, k.Level, &pk, pval)
		if err != nil {
			return true, nil
		}
		fs.Release(n)
		return false, nil
	}
	if named {
		_, _, ok, err := fs.Lookup(k.Btree, k.Level, k.Pos)
		if err != nil {
			return true, nil
		}
		return ok, nil
	}
	if f.HasBP {
		_, _, ok, err := fs.Lookup(bp.BtreeBackpointers, 0, f.BP)
		if err != nil {
			return true, nil
		}
		return ok, nil
	}
	return true, nil
}

// DefaultRescans is how many times a live check scans again when its scan
// met nodes it could not read.
const DefaultRescans = 3

// Scan runs the check of a live filesystem: pipeline.Run, and, while the
// scan met btree nodes it could not read even on retry (the journal it
// started from was older than the nodes it then read: the pointers it
// followed lead to space since freed or reused), up to rescans times a
// fresh read of the journal (fs.Refresh) and a new scan. Findings judged
// around a node that could not be read are not reliable: the pointers its
// subtree held are missing from the sums of their buckets. It returns the
// last scan's result and how many scans were made.
func Scan(ctx context.Context, fs *btreeio.FS, opt pipeline.Options, rescans int) (*pipeline.Result, int, error) {
	scans := 0
	for {
		res, err := pipeline.Run(ctx, fs, opt)
		scans++
		if err != nil || scans > rescans || !lostNodes(res.Findings) {
			return res, scans, err
		}
		if err := fs.Refresh(); err != nil {
			return res, scans, nil
		}
	}
}

// lostNodes reports whether a scan met nodes it could not read.
func lostNodes(fs []report.Finding) bool {
	for i := range fs {
		if nodeCode(fs[i].Code) {
			return true
		}
	}
	return false
}
