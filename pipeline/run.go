// The pass runner: Run plans the passes and, for each, starts the loaders,
// the producers and the shard workers and collects their findings.

package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"bpcheck/accounting"
	"bpcheck/allocinfo"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/report"
	"bpcheck/shard"
)

// Run checks fs. Its roots must be loaded. Findings are sorted; the result
// is the same for any worker count, shard count or number of passes. When
// ctx ends the check early, Run returns the partial result (complete
// passes only, Interrupted set) together with the context's error.
func Run(ctx context.Context, fs *btreeio.FS, opt Options) (*Result, error) {
	start := time.Now()
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.Shards <= 0 {
		opt.Shards = opt.Workers
	}
	if opt.MemoryBudget <= 0 {
		opt.MemoryBudget = 1 << 62
	}
	// Leaves read ahead are held outside the shards' budget: under a small
	// budget the read-ahead depth shrinks so that the nodes in flight
	// stay within an eighth of it (else the collector, held to the budget,
	// runs without pause). Loaders and producers walk at the same time, up
	// to Workers of each.
	if nodeBytes := int64(fs.SB.BtreeNodeSectors()) * btreeio.SectorSize; opt.Prefetch > 0 && nodeBytes > 0 {
		most := opt.MemoryBudget / 8 / (nodeBytes * 2 * int64(opt.Workers))
		opt.Prefetch = int(max(1, min(int64(opt.Prefetch), most)))
	}
	fs.Prefetch, fs.Async, fs.AsyncBackend = opt.Prefetch, opt.Async, opt.AsyncBackend
	// The async readers pooled during the check (rings, pool goroutines)
	// do not outlive it.
	defer fs.CloseReaders()
	c := newChecker(fs, opt)
	// A member shorter than its buckets, journal entries the replay
	// lacks: errors of the check (what they hide is not judged).
	c.errs = append(c.errs, fs.Problems()...)
	if opt.Progress != nil {
		opt.Progress.start.Store(start)
		opt.Progress.setStage(StagePlan)
	}
	// The root tasks (reading every root node) and the accounting btree
	// (compared after the last pass) are read while the planner reads
	// the interior nodes: three serial reads at once instead of one after
	// the other.
	type rootsResult struct {
		tasks []task
		err   error
	}
	roots := make(chan rootsResult, 1)
	go func() {
		t, err := c.rootTasks()
		roots <- rootsResult{t, err}
	}()
	var acct *acctRead
	if !fs.Live() {
		acct = c.startAccountingRead(ctx)
		// Whatever way Run returns, the read has ended (before the
		// readers are closed).
		defer func() { <-acct.done }()
	}
	// The planner's read errors are met again, and reported, by the loaders.
	plan, _ := makePlan(fs, opt.MemoryBudget, opt.Shards, c.cfg.Digest != nil)
	c.phases.Plan = time.Since(start)
	res := &Result{Passes: len(plan.Passes), EstimatedBytes: plan.EstimatedBytes, Matching: "exact"}
	if c.cfg.Digest != nil {
		res.Matching = "digest"
	}
	if fs.Root(bp.BtreeStripes) != nil || fs.SB.Features[0]&(1<<4) != 0 {
		res.NotChecked = append(res.NotChecked, "erasure coding: the stripe index and redundancy of alloc keys before 1.35, block sector counts in buckets shared by several stripes, and the stripe data itself (parity is not recomputed)",
			"erasure coding: the bucket_to_stripe btree (check_stripe_refs)")
	}
	c.planProgress(opt.Progress, len(plan.Passes))
	rr := <-roots
	tasks, err := rr.tasks, rr.err
	if err != nil {
		return nil, err
	}
	var runErr error
	for pi, spans := range plan.Passes {
		err := ctx.Err()
		if err == nil {
			res.Shards += len(spans)
			if p := opt.Progress; p != nil {
				p.pass.Store(int32(pi + 1))
			}
			err = c.runPass(ctx, pi, spans, tasks)
			if err == nil && pi == 0 {
				c.checkStripeBPs() // while the first pass's lost ranges hold
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				return nil, err
			}
			// Interrupted: the passes done so far are complete and their
			// findings stand; the rest is not checked.
			runErr = err
			res.Interrupted = true
			for _, sp := range plan.Passes[pi:] {
				res.NotChecked = append(res.NotChecked, fmt.Sprintf("buckets %s to %s", keyString(sp[0].lo), keyString(sp[len(sp)-1].hi)))
			}
			break
		}
		res.PassesDone++
	}
	if !res.Interrupted && res.PassesDone == res.Passes {
		c.judgeStripeLRU(res)
	}
	// Holes of the alloc btree that shard and pass boundaries cut.
	c.findings = allocinfo.MergeHoles(c.findings, c.allocLeafEnds, c.allocRules.NoAutofix)
	switch {
	case fs.Live():
		// The counters of a mounted filesystem move between the reads
		// of the accounting btree and of the pointers: no comparison
		// could be confirmed on a fresh read.
		res.NotChecked = append(res.NotChecked, "accounting: not compared in a live check (the counters of a mounted filesystem move while it is read)")
	case !res.Interrupted && res.PassesDone == res.Passes:
		if h := acctTestHooks.beforeWait; h != nil {
			h()
		}
		got, ok, err := acct.wait()
		switch {
		case err != nil && ctx.Err() != nil:
			// Interrupted after the last pass: the findings stand, the
			// accounting is not compared.
			runErr = err
			res.Interrupted = true
			res.NotChecked = append(res.NotChecked, "accounting: not compared (interrupted while reading the accounting btree)")
		case err != nil:
			return nil, err
		case ok && c.acctKnown && c.lost.Empty():
			af, nc := c.judgeAccounting(got, c.acctWant, &c.acctSums)
			c.findings = append(c.findings, af...)
			res.NotChecked = append(res.NotChecked, nc...)
		default:
			res.NotChecked = append(res.NotChecked, "accounting: read errors hid some of the counters or the pointers they sum")
		}
	}
	report.Sort(c.findings)
	res.Findings = c.findings
	res.Errors = c.errs
	c.stats.LoadNodes, c.stats.LoadBytes = c.loadNodes.Load(), c.loadBytes.Load()
	c.stats.RecheckLeaves = c.recheckLeaves.Load()
	res.Stats = c.stats
	res.Phases = c.phases
	res.Duration = time.Since(start)
	if p := opt.Progress; p != nil && !res.Interrupted {
		p.nodesDone.Store(p.nodesTotal.Load())
		p.setStage(StageDone)
	}
	return res, runErr
}

func keyString(k shard.BucketKey) string {
	if k == ^shard.BucketKey(0) {
		return "the end"
	}
	return fmt.Sprintf("%d:%d", k.Dev(), k.Bucket())
}

// runPass checks the buckets of one pass.
func (c *checker) runPass(ctx context.Context, pass int, spans []span, tasks []task) error {
	c.lost = shard.Lost{}
	if pass > 0 {
		// The previous pass's shards are garbage: collect them and return
		// their memory to the OS before this pass allocates its own, so
		// that the resident size of a multi-pass check stays within its
		// budget (large arrays of a new size cannot reuse the old spans).
		debug.FreeOSMemory()
	}
	mode := shard.Exact
	if c.cfg.Digest != nil {
		mode = shard.Digest
	}
	shards := make([]*shard.Shard, len(spans))
	c.passHeld = 0
	for i, s := range spans {
		c.passHeld += s.cost
		shards[i] = shard.NewIn(mode, c.cfg, s.lo, s.hi)
		shards[i].Reserve(int(s.bps), int(s.allocs))
	}
	// Every goroutine that touches the shards has ended when runPass
	// returns (the loaders, producers and appliers are waited for).
	defer func() {
		for _, sh := range shards {
			sh.Release()
		}
	}()
	lo, hi := spans[0].lo, spans[len(spans)-1].hi
	keys := allocinfo.NewKeys(lo, hi, c.fs.SB.Version >= bp.VersionNeedDiscardByJournalSeq)
	keys.NoStripeLRU = !c.formatB
	c.passKeys = keys
	// The leaves this pass reads are the ones its recheck may read: a
	// leaf another pass could not read (or read) says nothing of this
	// one's sums.
	c.leafLog, c.leafRanges = nil, nil
	t0 := time.Now()
	c.opt.Progress.setStage(StageLoad)
	total, t1, err := c.feed(ctx, pass, shards, tasks, keys, nil)
	t2 := time.Now()
	c.phases.Load += t1.Sub(t0)
	c.phases.Produce += t2.Sub(t1)
	c.opt.Progress.setStage(StageFinish)
	defer func() { c.phases.Finish += time.Since(t2) }()
	if err != nil {
		return err
	}
	// Digest shards: the buckets whose sums disagree are checked again,
	// the exact way; their backpointer findings, and the buckets whose
	// sums cannot be judged, come from there.
	var rechecked []report.Finding
	if mode == shard.Digest {
		var incomplete []shard.BucketKey
		rechecked, incomplete, err = c.recheck(ctx, pass, shards, tasks)
		c.phases.Recheck += time.Since(t2)
		if err != nil {
			return err
		}
		for _, sh := range shards {
			sh.MarkIncomplete(incomplete)
		}
	}
	if pass == 0 {
		c.stats.add(&total)
		c.acctSums.resolve(c.acctWant)
		c.firstKeys = keys
	}
	if c.lost.StripesLost() {
		c.stripesUnknown = true
	}
	for _, e := range keys.AllocEnds() {
		if c.allocLeafEnds == nil {
			c.allocLeafEnds = map[shard.BucketKey]bool{}
		}
		c.allocLeafEnds[e] = true
	}
	// Shards finish in parallel: each judges its own buckets (duplicate
	// claims read the filesystem, which is safe for concurrent use).
	keys.Seal()
	found := make([][]report.Finding, len(shards))
	devTypes := make([]accounting.Table, len(shards))
	devKnown := make([]bool, len(shards))
	var fg errgroup.Group
	fg.SetLimit(c.opt.Workers)
	for i, sh := range shards {
		fg.Go(func() error {
			found[i] = sh.Finish(&c.lost)
			cs := sh.Correct(&c.lost)
			found[i] = append(found[i], allocinfo.Judge(c.allocRules, keys, sh.Lo, sh.Hi, cs)...)
			devTypes[i] = accounting.Table{}
			devKnown[i] = c.addDevDataTypes(devTypes[i], cs)
			return nil
		})
	}
	_ = fg.Wait() // the tasks return no error
	for i := range shards {
		c.acctWant.Merge(devTypes[i])
		c.acctKnown = c.acctKnown && devKnown[i]
	}
	if !c.lost.Empty() || len(keys.LostBtrees()) > 0 {
		c.acctKnown = false // pointers or buckets the sums need were not read
	}
	for i, sh := range shards {
		n, a := sh.Counts()
		c.stats.Backpointers += int64(n)
		for dev, k := range sh.DevCounts() {
			c.stats.PerDev[dev].Backpointers += int64(k)
		}
		c.stats.AllocKeys += int64(a)
		c.findings = append(c.findings, found[i]...)
	}
	c.findings = append(c.findings, rechecked...)
	return nil
}

// feed loads shards (their backpointers, alloc keys and metadata buckets;
// keys, when set, gets the pass's derived btrees) and walks the pointer
// btrees into them. only, when set, limits the records to its buckets:
// a recheck (the shards are Recheck shards), whose producers count
// nothing, sum no accounting and report nothing but read errors, which
// are reported once. It returns the producers' statistics and when the
// last shard was loaded.
func (c *checker) feed(ctx context.Context, pass int, shards []*shard.Shard, tasks []task, keys *allocinfo.Keys, only *shard.BucketSet) (Stats, time.Time, error) {
	var total Stats
	lo, hi := shards[0].Lo, shards[len(shards)-1].Hi
	// Loading and producing overlap: the producers start at once, and each
	// shard's worker applies records only once the shard holds its
	// backpointers, alloc keys and metadata buckets; until then records
	// wait in the shard's bounded channel (the producers block when it is
	// full). A core that finishes its loading early walks extents instead
	// of idling until the slowest shard is loaded.
	g, gctx := errgroup.WithContext(ctx)
	// loaded[i] is closed when shard i is loaded; ended[i] when its loader
	// has returned, loaded or not (an error, or cancelled before it
	// started). A loader that fails makes Wait return its error, so the
	// records of a shard whose loader ended unloaded are never counted.
	loaded := make([]chan struct{}, len(shards))
	ended := make([]chan struct{}, len(shards))
	var loading atomic.Int32
	loading.Store(int32(len(shards)))
	var t1 time.Time // when the last shard was loaded
	// A loaded shard takes records from its worker and from producers
	// that apply their batches themselves (emitter.flushOne), one at a
	// time.
	al := newApplyLocks(len(shards))
	loadSem := make(chan struct{}, c.opt.Workers)
	for i, sh := range shards {
		loaded[i] = make(chan struct{})
		ended[i] = make(chan struct{})
		g.Go(func() error {
			defer close(ended[i])
			select {
			case loadSem <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			defer func() { <-loadSem }()
			if only != nil {
				if err := c.loadRechecked(gctx, pass, sh); err != nil {
					return err
				}
			} else {
				if err := c.loadBackpointers(gctx, pass, sh); err != nil {
					return err
				}
				if err := c.loadAlloc(gctx, pass, []*shard.Shard{sh}, sh.Lo, sh.Hi); err != nil {
					return err
				}
			}
			c.addMetadataRefs([]*shard.Shard{sh}, max(lo, sh.Lo), min(hi, sh.Hi))
			close(loaded[i])
			al.loaded[i].Store(true)
			if loading.Add(-1) == 0 {
				t1 = time.Now()
				if only == nil {
					c.opt.Progress.setStage(StageProduce)
				}
			}
			return nil
		})
	}

	if keys != nil {
		// The allocator's derived btrees, read whole (they are small).
		g.Go(func() error { return c.loadDerived(gctx, keys) })
	}

	chans := make([]chan []shard.Ref, len(shards))
	var shardWG sync.WaitGroup
	for i := range shards {
		chans[i] = make(chan []shard.Ref, 8)
		sh, ch, ready, done, mu := shards[i], chans[i], loaded[i], ended[i], &al.mu[i]
		shardWG.Add(1)
		go func() {
			defer shardWG.Done()
			// The worker waits for its loader to end, not for the
			// context: a cancel while the shard is still loading must
			// not drop records of a pass that then completes (the
			// producers may all be done by then, so nothing else would
			// report the cancel). Loaders never wait for producers.
			<-done
			select {
			case <-ready:
			default:
				// The loader failed (Wait returns its error): nothing is
				// applied; the channel is drained until it is closed.
				for batch := range ch {
					putBatch(batch)
				}
				return
			}
			for batch := range ch {
				mu.Lock()
				sh.Apply(batch)
				mu.Unlock()
				putBatch(batch)
			}
		}()
	}
	q, stopQueue := newTaskQueue(gctx, append([]task(nil), tasks...))
	defer stopQueue()
	var statsMu sync.Mutex
	for w := 0; w < c.opt.Workers; w++ {
		g.Go(func() error {
			e := newEmitter(gctx, c, shards, chans, lo, hi, pass)
			if only != nil {
				e.recheck(only)
			}
			e.track = only == nil && c.cfg.Digest != nil
			e.apply = al
			for {
				t, ok := q.next()
				if !ok {
					break
				}
				err := c.runTask(e, t, q)
				q.done()
				if err != nil {
					return err
				}
			}
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := e.flush(); err != nil {
				return err
			}
			if e.acct != nil {
				e.flushAcctRun()
			}
			if len(e.leaves) > 0 {
				c.mu.Lock() // the loaders log theirs too (logLoadedLeaf)
				c.leafLog = append(c.leafLog, e.leaves...)
				c.mu.Unlock()
			}
			statsMu.Lock()
			total.add(&e.stats)
			if e.acct != nil {
				e.acct.merge(c.acctWant, c.fs.SB.Version, &c.acctSums)
				c.acctSums.cached = c.acctSums.cached || e.acct.cached
			}
			statsMu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	for _, ch := range chans {
		close(ch)
	}
	shardWG.Wait()
	if t1.IsZero() {
		t1 = time.Now() // loading failed or was cancelled
	}
	return total, t1, err
}

func (s *Stats) add(o *Stats) {
	s.Nodes += o.Nodes
	s.NodeBytes += o.NodeBytes
	s.Keys += o.Keys
	s.Extents += o.Extents
	s.Pointers += o.Pointers
	s.Backpointers += o.Backpointers
	s.AllocKeys += o.AllocKeys
	s.Buckets += o.Buckets
	for i := range s.PerDev {
		s.PerDev[i].Pointers += o.PerDev[i].Pointers
		s.PerDev[i].Backpointers += o.PerDev[i].Backpointers
	}
}

// runTask runs one producer task; the walk shares out the leaves of wide
// level-1 nodes to q (nil: it walks them all itself).
func (c *checker) runTask(e *emitter, t task, q *taskQueue) error {
	if t.root {
		if err := e.emitKeyPtrs(t.btree, t.level+1, &t.key, t.val); err != nil {
			return err
		}
	}
	data := t.btree.HasDataPtrs(c.fs.SB.Version)
	minLevel := c.minLevel(t.btree)
	if t.level < minLevel {
		return nil
	}
	if t.topOnly {
		minLevel = t.level
	}
	p := &producer{e: e, dataBtree: data}
	if t.leaves != nil {
		return c.fs.WalkLeaves(t.btree, t.leaves, p)
	}
	if minLevel == 0 && q != nil {
		p.q = q
	}
	return c.fs.WalkFrom(t.btree, t.level, &t.key, t.val, minLevel, p)
}

// Check is a convenience wrapper: opens nothing, loads the roots and runs.
func Check(ctx context.Context, fs *btreeio.FS, opt Options) (*Result, error) {
	if err := fs.LoadRoots(); err != nil {
		return nil, err
	}
	return Run(ctx, fs, opt)
}
