package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pbnjay/memory"

	"bpcheck/aio"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/confirm"
	"bpcheck/gen"
	"bpcheck/pipeline"
	"bpcheck/report"
)

const checkUsage = `Usage: bpcheck check [--memory SIZE|PCT] [--workers N] [--json] DEVICE...

Checks every backpointer of the filesystem against the pointers that need
it, in both directions, read-only: every pointer of every extent, reflink
extent and btree node must have its backpointer (ptr_to_missing_backpointer),
every backpointer must have its pointer (backpointer_to_missing_ptr), sit in
a bucket with an alloc key (backpointer_to_missing_alloc) on a member device
(backpointer_to_missing_device); per bucket the sectors the pointers claim
must equal the alloc key's counters (alloc_key_*_wrong, ptr_to_missing_alloc_key).
Finding names are those of bcachefs fsck.

The alloc keys are held in RAM per bucket range, with per bucket the sums
of keyed 64-bit digests of its stored backpointers and of the ones its
pointers expect; the buckets whose sums disagree are checked again with
their backpointers kept (a second walk of the pointer btrees, or more
when their backpointers do not fit the memory at once), so the findings
are those of a check that keeps every backpointer. When the shards do not
fit the memory budget the check runs in several passes over bucket
ranges, with identical findings.

Options:
  --memory SIZE|PCT  memory budget of the whole check: a size (e.g. 512M,
                     8G) or a percentage of total RAM (default 50%); 75 % of
                     it holds the in-RAM shards, more passes if they need more
  --workers N        producer goroutines (default: number of CPUs)
  --json             JSON Lines output: one object per finding, error and a
                     final summary, each with "message_type"
  --metrics-file PATH  write Prometheus text metrics for the node_exporter
                     textfile collector (temp file + rename), with the
                     bpcheck-metrics program installed beside bpcheck
  --no-progress      no live progress line (it is shown on a terminal only,
                     never with --json; SIGUSR1 prints one line to stderr)
  --prefetch N       leaves each btree walk reads ahead of the one it checks
                     (default 8; 0 reads one node at a time)
  --io MODE          how prefetched leaves are read: auto (io_uring where the
                     kernel allows, else a pread pool; the default), uring,
                     pool, or threads (a goroutine per read)
  --direct[=MODE]    read btree nodes with O_DIRECT, bypassing the page
                     cache: auto (the default) for block devices only, true
                     (--direct) for every device, false never; a scan then
                     neither evicts nor relies on cached pages. Unaligned
                     or refused reads fall back to buffered ones
  --ionice CLASS     I/O scheduling class of the reads: idle (served only
                     when no other process wants the disk), best-effort
                     (its lowest level) or none (the default: inherited)
  --live[=MODE]      check a mounted filesystem while it runs: auto (the
                     default: live when a member is mounted), true (--live),
                     false. Nodes and journal are read with O_DIRECT, a node
                     that fails to read is read again after a fresh read of
                     its parent, and every candidate finding is re-judged on
                     two fresh re-reads of the journal and of the keys it
                     concerns; those that went away are counted as transient
                     and do not set exit code 4
  --max-read-rate RATE  cap the bytes per second the check reads (e.g. 50M,
                     200M/s; live or not; default no cap)
  --force            check a mounted device without --live (warns: results
                     may be inconsistent; prefer --live or a snapshot)
  --timeout DUR      stop after DUR (e.g. 30m) with a partial report, exit 32;
                     Ctrl-C and SIGTERM do the same
  --exact            keep every backpointer in RAM (32 bytes each) and look
                     each pointer's one up, instead of the digests: the same
                     findings with no second walk when some disagree, at the
                     price of more memory and time on a healthy filesystem
  --allow-newer      check a filesystem whose metadata version is newer than
                     1.39, the newest bpcheck knows (refused by default,
                     exit 16), with the rules of 1.39
  --key-file FILE    encrypted filesystem: the key derived from the passphrase
  --passphrase-file FILE  encrypted filesystem: the passphrase (first line)

Encrypted filesystems: the key is taken from --key-file FILE (the 32-byte
key the passphrase derives, as the kernel keyring holds it), else from the
kernel keyring (the "user" key bcachefs:UUID that "bcachefs unlock" adds,
searched in the session, user and user-session keyrings), else from the
passphrase in --passphrase-file FILE (its first line) or typed on the
terminal (echo off). A run without a terminal never waits for input. A
wrong passphrase or no key is exit 8; nothing is ever written.

Findings are judged as the real fsck of the filesystem's era judges them:
bcachefs-tools v1.9.4 for metadata up to 1.12, v1.13.0 for 1.13, v1.25.3
for 1.14-1.28, v1.31.13 for 1.29-1.31, v1.36.1 for 1.32-1.36, v1.39.2 for
1.37-1.39 (the summary's "Rules" line, "rules" in JSON).

Examples:
  bpcheck check /dev/sdb
  bpcheck check --json --memory 25% /dev/sdb:/dev/sdc > report.jsonl

` + exitCodesHelp

// parseMemory parses a size with an optional K/M/G/T suffix (powers of
// 1024) or a percentage of total.
func parseMemory(s string, total uint64) (int64, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "%") {
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || !(p > 0 && p <= 100) { // NaN too
			return 0, fmt.Errorf("bad memory percentage %q", s)
		}
		v := int64(float64(total) * p / 100)
		if v < minMemory {
			return 0, fmt.Errorf("bad memory percentage %q: under 4K", s)
		}
		return v, nil
	}
	// Accept 8G, 8GB, 8GiB, 512M, 512MiB, 4096 (bytes), 4096B.
	v, err := gen.ParseSize(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad memory size %q", s)
	}
	if v < minMemory {
		return 0, fmt.Errorf("bad memory size %q: at least 4K", s)
	}
	return v, nil
}

// minMemory is the smallest --memory, a page: a budget of 1 byte, three
// quarters of which is 0, ran without a limit (and one of 3 bytes
// checked a 1.35 M-extent filesystem in 342 passes).
const minMemory = 4096

func runCheck(args []string, stdout, stderr io.Writer) int {
	// Ctrl-C and SIGTERM from the very start: a signal while the devices
	// are opened still ends in the partial report and exit 32.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first, a second Ctrl-C or SIGTERM ends the process at
	// once (the default action), whatever the check is doing.
	context.AfterFunc(ctx, stop)
	fl := flag.NewFlagSet("check", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, checkUsage) }
	mem := fl.String("memory", "50%", "memory budget: size or percentage of RAM")
	workers := fl.Int("workers", runtime.GOMAXPROCS(0), "producer goroutines")
	asJSON := fl.Bool("json", false, "JSON Lines output")
	shards := fl.Int("shards", 0, "shards per pass (default: workers)")
	timeout := fl.Duration("timeout", 0, "stop after this long with a partial report (exit 32)")
	metricsFile := fl.String("metrics-file", "", "write Prometheus metrics here (textfile collector), atomically")
	force := fl.Bool("force", false, "check mounted devices too (results may be inconsistent)")
	cpuProfile := fl.String("cpuprofile", "", "write a CPU profile of the check here (for performance work)")
	noProgress := fl.Bool("no-progress", false, "no live progress line on a terminal")
	prefetch := fl.Int("prefetch", pipeline.DefaultPrefetch, "leaves each walk reads ahead (0: none)")
	exact := fl.Bool("exact", false, "keep every backpointer in RAM instead of per-bucket digests")
	ioMode := fl.String("io", "auto", "how prefetched leaves are read: auto (io_uring, else a pread pool), uring, pool, threads")
	ionice := fl.String("ionice", "none", "I/O scheduling class of the check's reads: idle, best-effort (lowest level) or none")
	direct := directMode("auto")
	liveFlag := directMode("auto")
	fl.Var(&liveFlag, "live", "check a mounted filesystem while it runs: auto (when a member is mounted), true, false")
	maxRate := fl.String("max-read-rate", "", "cap the bytes per second read (e.g. 50M)")
	fl.Var(&direct, "direct", "read btree nodes with O_DIRECT: auto (block devices), true, false")
	openOpt := addOpenFlags(fl)
	if code, ok := parseArgs(fl, args, stderr); !ok {
		return code
	}
	budget, err := parseMemory(*mem, memory.TotalMemory())
	if err != nil {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		return exitUsage
	}
	if *workers < 1 {
		fmt.Fprintln(stderr, "bpcheck: --workers must be at least 1")
		return exitUsage
	}
	switch *ioMode { // before the devices are opened (and unlocked)
	case "auto", "uring", "pool", "threads":
	default:
		fmt.Fprintf(stderr, "bpcheck: --io %q: want auto, uring, pool or threads\n", *ioMode)
		return exitUsage
	}
	if _, ok := ioniceClasses[*ionice]; !ok {
		fmt.Fprintf(stderr, "bpcheck: --ionice %q: want idle, best-effort or none\n", *ionice)
		return exitUsage
	}
	if err := setIOPriority(*ionice); err != nil {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		return exitOperational
	}
	rate, err := parseRate(*maxRate)
	if err != nil {
		fmt.Fprintf(stderr, "bpcheck: --max-read-rate: %v\n", err)
		return exitUsage
	}
	m := mountedDevices(btreeio.SplitDevices(fl.Args()))
	live := liveFlag == "true" || (liveFlag == "auto" && len(m) > 0)
	if len(m) > 0 && live {
		for dev, mp := range m {
			fmt.Fprintf(stderr, "bpcheck: %s is mounted on %s: checking it live (O_DIRECT reads, findings confirmed on fresh re-reads)\n", dev, mp)
		}
	} else if len(m) > 0 {
		for dev, mp := range m {
			fmt.Fprintf(stderr, "bpcheck: %s is mounted on %s: results may be inconsistent unless it is a snapshot\n", dev, mp)
		}
		if !*force {
			fmt.Fprintln(stderr, "bpcheck: refusing to check a mounted filesystem without --live; check it live, check a snapshot or pass --force")
			return exitUsage
		}
	}
	openOpt.ctx = ctx
	fs, code := openFS(fl.Args(), openOpt, stderr)
	if fs == nil {
		return code
	}
	defer fs.Close()
	fs.SetMaxReadRate(rate)
	if live {
		fs.SetLive(btreeio.DefaultLiveRetries)
		// The running kernel writes around the page cache: nodes and
		// journal are read with O_DIRECT wherever the kernel allows it.
		if err := fs.EnableDirect(false); err != nil {
			fmt.Fprintf(stderr, "bpcheck: --live: %v (reading buffered)\n", err)
		}
		// The superblock read at open may have come from a stale page
		// cache: read it again around it.
		if err := fs.RereadSuperblocks(); err != nil {
			fmt.Fprintf(stderr, "bpcheck: --live: %v (using the superblock read at open)\n", err)
		}
		direct = "live"
	}
	switch direct {
	case "true":
		if err := fs.EnableDirect(false); err != nil {
			fmt.Fprintf(stderr, "bpcheck: --direct: %v\n", err)
			return exitOperational
		}
	case "auto":
		// Block devices only; where O_DIRECT is refused, reads stay
		// buffered.
		_ = fs.EnableDirect(true)
	}
	// The budget is enforced on the whole process: the Go runtime keeps
	// the heap under budget + 10 %, and the planner gives the shards 75 %
	// of the budget, leaving the rest for buffers, records in flight and
	// the runtime.
	debug.SetMemoryLimit(budget + budget/10)
	// Most of the heap is the shards' arrays, live until the pass ends, so
	// collecting at every doubling buys nothing; the memory limit above
	// still makes the collector run as the heap nears the budget.
	debug.SetGCPercent(400)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "bpcheck: %v\n", err)
			return exitOperational
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "bpcheck: %v\n", err)
			return exitOperational
		}
		defer pprof.StopCPUProfile()
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	// A cancel (Ctrl-C, SIGTERM, --timeout) lifts --max-read-rate: the
	// reads left are not slept out.
	defer context.AfterFunc(ctx, fs.LiftReadRate)()
	opt := pipeline.Options{Workers: *workers, MemoryBudget: budget * 3 / 4, Shards: *shards, Prefetch: *prefetch, Exact: *exact}
	switch *ioMode {
	case "auto":
		opt.Async, opt.AsyncBackend = true, aio.Auto
	case "uring":
		opt.Async, opt.AsyncBackend = true, aio.IOUring
	case "pool":
		opt.Async, opt.AsyncBackend = true, aio.PreadPool
	case "threads":
	default:
		fmt.Fprintf(stderr, "bpcheck: --io %q: want auto, uring, pool or threads\n", *ioMode)
		return exitUsage
	}
	return check(ctx, fs, opt, checkOutput{json: *asJSON, metricsFile: *metricsFile, progressOK: !*noProgress, budget: budget, unlockTime: openOpt.kdfTime}, stdout, stderr)
}

// directMode is the --direct flag: auto, true or false; a bare --direct
// means true.
type directMode string

func (d *directMode) String() string { return string(*d) }

// IsBoolFlag lets --direct stand alone.
func (d *directMode) IsBoolFlag() bool { return true }

func (d *directMode) Set(v string) error {
	switch v {
	case "auto":
		*d = "auto"
	case "true", "1", "on":
		*d = "true"
	case "false", "0", "off":
		*d = "false"
	default:
		return fmt.Errorf("want auto, true or false")
	}
	return nil
}

// checkOutput says where the results of a check go.
type checkOutput struct {
	json        bool
	metricsFile string
	// progressOK allows a live progress line on a terminal stderr.
	progressOK bool
	// budget is the --memory budget as given (the shards get 75 % of it).
	budget int64
	// unlockTime is how long deriving the key from a passphrase took.
	unlockTime time.Duration
}

// check runs the check on an open filesystem and writes the report. A
// report that could not be written (a full disk, an I/O error) adds 8 to
// the exit code, with a message on stderr. (A closed pipe on standard
// output ends the process with SIGPIPE first, as for any program.)
func check(ctx context.Context, fs *btreeio.FS, opt pipeline.Options, out checkOutput, stdout, stderr io.Writer) int {
	w := bufio.NewWriterSize(stdout, 1<<16)
	code := checkTo(ctx, fs, opt, out, w, stderr)
	// The writer keeps the first error of any write; Flush returns it.
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "bpcheck: writing the report: %v\n", err)
		if code != exitInterrupted {
			code |= exitOperational
		}
	}
	return code
}

// checkTo is check writing its report to w.
func checkTo(ctx context.Context, fs *btreeio.FS, opt pipeline.Options, out checkOutput, w *bufio.Writer, stderr io.Writer) int {
	asJSON := out.json
	if err := fs.LoadRoots(); err != nil {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		if asJSON {
			report.WriteJSONError(w, err)
		}
		if errors.Is(err, btreeio.ErrUnclean) {
			return exitOperational
		}
		return exitCodeFor(err)
	}
	if opt.Progress == nil {
		opt.Progress = &pipeline.Progress{}
	}
	live := !asJSON && out.progressOK && isTerminal(os.Stderr)
	stopProgress := progressDisplay(opt.Progress, stderr, live)
	var res *pipeline.Result
	var err error
	scans := 1
	if fs.Live() {
		// A scan that met nodes it could not read started from a journal
		// older than those nodes: it is made again from a fresh one.
		res, scans, err = confirm.Scan(ctx, fs, opt, confirm.DefaultRescans)
	} else {
		res, err = pipeline.Run(ctx, fs, opt)
	}
	stopProgress()
	var liveSum *report.LiveSummary
	var liveNote string
	if fs.Live() && res != nil && res.Interrupted && len(res.Findings) > 0 {
		// Interrupted during the scan: its candidates are not reported
		// (unconfirmed, they may be transient), as when interrupted
		// while confirming.
		res.NotChecked = append(res.NotChecked, fmt.Sprintf("the confirmation of %d candidate finding(s) of the live check", len(res.Findings)))
		res.Findings = nil
	}
	if fs.Live() && err == nil && res != nil {
		// Every candidate finding is re-judged before it is reported.
		cres, cerr := confirm.Run(ctx, fs, res.Findings, res.Errors, confirm.Options{})
		if cerr != nil && ctx.Err() != nil {
			// Interrupted while confirming: the candidates are not
			// reported (unconfirmed, they may be transient), and the
			// report says so.
			res.NotChecked = append(res.NotChecked, fmt.Sprintf("the confirmation of %d candidate finding(s) of the live check", len(res.Findings)))
			res.Findings, res.Interrupted, err = nil, true, cerr
			cerr = nil
			cres = &confirm.Result{Errors: res.Errors}
		}
		if cerr != nil {
			fmt.Fprintf(stderr, "bpcheck: confirming findings: %v\n", cerr)
			if asJSON {
				report.WriteJSONError(w, cerr)
			}
			return exitOperational
		}
		candidates := len(res.Findings)
		res.Findings, res.Errors = cres.Confirmed, cres.Errors
		liveSum = &report.LiveSummary{Rereads: confirm.DefaultRereads, JournalSeqs: cres.Seqs, Idle: cres.Idle, Scans: scans}
		if candidates > 0 {
			liveSum.Rereads = max(len(cres.Seqs)-1, 0) // the re-reads made, fewer when they kept meeting read errors
		}
		liveSum.CountTransient(cres.Transient)
		if len(cres.Seqs) > 1 {
			liveNote = cres.Note()
		}
		if cres.Inconclusive && candidates > 0 {
			liveNote = strings.TrimSpace(liveNote + fmt.Sprintf(" Only %d of the %d re-reads could be made without read errors: the findings still holding are reported as the scan and those re-reads found them.",
				max(len(cres.Seqs)-1, 0), confirm.DefaultRereads))
		}
	}
	if fs.Live() && liveSum == nil {
		liveSum = &report.LiveSummary{Rereads: confirm.DefaultRereads, Scans: scans}
	}
	if liveSum != nil {
		liveSum.NodeRetries, liveSum.NodeRetriesRecovered = fs.LiveRetries()
		liveSum.DirectReads, _ = fs.DirectReads()
	}
	if err != nil && (res == nil || !res.Interrupted) {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		if asJSON {
			report.WriteJSONError(w, err)
		}
		return exitOperational
	}
	sb := fs.SB
	s := &report.Summary{
		Devices: members(sb), Clean: sb.IsClean(), FormatB: sb.FormatB(), Version: bp.VersionString(sb.Version),
		Rules:  bp.EraOf(sb.Version).String(),
		Passes: res.Passes, Shards: res.Shards, Workers: opt.Workers, MemoryBudget: opt.MemoryBudget,
		Nodes: res.Stats.Nodes, NodeBytes: res.Stats.NodeBytes, LoadNodes: res.Stats.LoadNodes, LoadBytes: res.Stats.LoadBytes, Keys: res.Stats.Keys, Extents: res.Stats.Extents,
		Pointers: res.Stats.Pointers, Backpointers: res.Stats.Backpointers, AllocKeys: res.Stats.AllocKeys,
		Errors: len(res.Errors), Seconds: res.Duration.Seconds(), EstimatedBytes: res.EstimatedBytes,
		PhaseSeconds: map[string]float64{"plan": res.Phases.Plan.Seconds(), "load": res.Phases.Load.Seconds(),
			"produce": res.Phases.Produce.Seconds(), "finish": res.Phases.Finish.Seconds(), "recheck": res.Phases.Recheck.Seconds()},
		Matching: res.Matching, Rechecked: res.Stats.Rechecked, RecheckWalks: res.Stats.RecheckWalks, RecheckLeaves: res.Stats.RecheckLeaves,
		UnlockSeconds: out.unlockTime.Seconds(),
	}
	if fs.Journal != nil {
		s.JournalKeys = len(fs.Journal.Keys)
		s.Notes = append(s.Notes, fs.Journal.Summary())
	}
	s.Live = liveSum
	if liveNote != "" {
		s.Notes = append(s.Notes, liveNote)
	}
	for i := range sb.Members {
		m := &sb.Members[i]
		if !m.Exists() {
			continue
		}
		s.Buckets += int64(m.NBuckets)
		d := report.DevSummary{Dev: i, Path: fs.DevPath(uint8(i)), Buckets: int64(m.NBuckets),
			Backpointers: res.Stats.PerDev[i].Backpointers, Pointers: res.Stats.PerDev[i].Pointers, ByCode: map[string]int{}}
		for _, f := range res.Findings {
			if f.Dev == i {
				d.ByCode[f.Code]++
			}
		}
		s.PerDevice = append(s.PerDevice, d)
	}
	if out.budget != 0 {
		s.MemoryBudget = out.budget
	}
	s.CountByCode(res.Findings)
	s.Notes = append(s.Notes, leftoverNotes(res.Findings)...)
	sil := report.Silencer{UpgradeComplete: sb.VersionUpgradeComplete(), Version: sb.Version}
	if sb.Ext != nil {
		sil.Silent = sb.Ext.Silent // as the kernel reads it: set only while passes are pending
	}
	if s.Silenced = sil.Mark(res.Findings); s.Silenced > 0 {
		s.Notes = append(s.Notes, report.SilencedNote(s.Silenced))
	}
	code := exitClean
	if len(res.Findings) > s.Silenced {
		code |= exitProblems
	}
	if len(res.Errors) > 0 {
		code |= exitOperational
	}
	s.NotChecked = res.NotChecked
	if res.Interrupted {
		fmt.Fprintf(stderr, "bpcheck: interrupted (%v): partial report of %d of %d passes\n", err, res.PassesDone, res.Passes)
		s.Interrupted, s.PassesDone = true, res.PassesDone
		code = exitInterrupted
	}
	s.ExitCode = code
	for i := range res.Findings {
		if asJSON {
			report.WriteJSON(w, &res.Findings[i])
		} else {
			report.WriteText(w, &res.Findings[i])
		}
	}
	for _, e := range res.Errors {
		if asJSON {
			report.WriteJSONError(w, e)
		} else {
			fmt.Fprintf(w, "error: %v\n", e)
		}
	}
	if out.metricsFile != "" {
		if err := writeMetrics(out.metricsFile, s, btreeio.UUIDString(sb.UserUUID), time.Now()); err != nil {
			fmt.Fprintf(stderr, "bpcheck: %v\n", err)
			code |= exitOperational
			s.ExitCode = code
		}
	}
	if asJSON {
		report.WriteJSONSummary(w, s)
	} else {
		report.WriteTextSummary(w, s)
	}
	return code
}

// leftoverNotes explains the findings about upgrade leftovers, one note
// per kind.
func leftoverNotes(fs []report.Finding) []string {
	counts := map[string]int{}
	for i := range fs {
		if k := fs[i].Leftover; k != "" {
			counts[k]++
		}
	}
	var notes []string
	for _, k := range []string{report.LeftoverLayout114, report.LeftoverECFlags137} {
		if counts[k] > 0 {
			notes = append(notes, report.LeftoverNote(k, counts[k]))
		}
	}
	return notes
}

// parseRate parses a --max-read-rate: a size with an optional K/M/G/T
// suffix (powers of 1024) and an optional "/s"; "" or 0 is no cap.
func parseRate(s string) (int64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	if s == "" || s == "0" {
		return 0, nil
	}
	v, err := gen.ParseSize(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad rate %q: want bytes per second, e.g. 50M or 200M/s", s)
	}
	return v, nil
}

// members counts the superblock's members (slots of removed devices
// are not).
func members(sb *btreeio.Superblock) int {
	n := 0
	for i := range sb.Members {
		if sb.Members[i].Exists() {
			n++
		}
	}
	return n
}
