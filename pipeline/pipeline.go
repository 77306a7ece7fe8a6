// Package pipeline runs bpcheck's check: producers walk every btree's
// interior nodes and the leaves of the data btrees and stream pointer
// records, sharded by bucket range, to per-shard workers that hold their
// slice of the backpointers and alloc btrees in RAM (package shard). A
// filesystem whose backpointers do not fit the memory budget is checked in
// several passes over bucket ranges, with the same findings.
package pipeline

import (
	"time"

	"bpcheck/aio"
	"bpcheck/report"
)

// DefaultPrefetch is how many leaves a walk reads ahead unless told
// otherwise (`bpcheck check --prefetch`).
const DefaultPrefetch = 8

// Options tune a check.
type Options struct {
	// Workers is the number of producer goroutines (default GOMAXPROCS).
	Workers int
	// MemoryBudget is the most memory the shards of one pass may pin, in
	// bytes; the plan uses as many passes as needed.
	MemoryBudget int64
	// Shards is the number of shards per pass (default: Workers).
	Shards int
	// Progress, if set, is updated as the check runs.
	Progress *Progress
	// Prefetch is how many leaves each walk reads ahead (0: none; the
	// command's default is DefaultPrefetch); Run lowers it under a small
	// MemoryBudget. Leaves are visited with their keys packed only on
	// read-ahead walks.
	Prefetch int
	// Async reads the prefetched leaves through package aio with
	// AsyncBackend (io_uring where the kernel allows, else a pread pool).
	Async        bool
	AsyncBackend aio.Backend
	// Exact keeps every backpointer in the shards and looks each
	// pointer's one up (shard.Exact). Otherwise, except on a live
	// filesystem, the shards keep per bucket only the sums of keyed
	// digests of the stored and of the expected backpointers, and check
	// again, the exact way, just the buckets whose sums disagree
	// (shard.Digest): the same findings, with no memory pinned per
	// backpointer, at the price of a second walk of the pointer btrees
	// when some bucket disagrees.
	Exact bool
}

// Stats counts what a check read.
type Stats struct {
	Nodes, NodeBytes, Keys, Extents, Pointers int64
	Backpointers, AllocKeys, Buckets          int64
	// PerDev counts per member device: pointers into it (from keys read
	// in pass 0) and its backpointers.
	PerDev [256]DevStats
	// LoadNodes and LoadBytes count the leaves the loaders read: the
	// backpointers, alloc and derived (lru, freespace, need_discard,
	// bucket_gens) btrees (all passes; a leaf straddling two shards
	// counts twice).
	LoadNodes, LoadBytes int64
	// Rechecked counts the buckets whose digests disagreed, checked
	// again the exact way (a shard whose backpointers came out of order
	// is checked again whole and counts one).
	Rechecked int64
	// RecheckWalks counts the walks of the pointer btrees the rechecks
	// took: one per pass with buckets to recheck, more when their
	// backpointers did not fit the memory the pass left (each walk reads
	// only the leaves that touch its part of the buckets).
	RecheckWalks int64
	// RecheckLeaves counts the data leaves the rechecks' walks read (the
	// others were skipped: the first pass logged none of their records
	// in a bucket rechecked).
	RecheckLeaves int64
}

// DevStats are the counts of one device.
type DevStats struct {
	Pointers, Backpointers int64
}

// Result is the outcome of a check.
type Result struct {
	Findings []report.Finding
	// Errors are read errors: nodes or devices that could not be read.
	// The check went on past them.
	Errors []error
	Stats  Stats
	Passes int
	Shards int
	// EstimatedBytes is the planned memory of all shards together.
	EstimatedBytes int64
	Duration       time.Duration
	// Interrupted is set when the context ended the check early; then
	// PassesDone passes are complete and NotChecked names the bucket
	// ranges of the others.
	Interrupted bool
	PassesDone  int
	NotChecked  []string
	// Matching is "digest" or "exact" (Options.Exact).
	Matching string
	// Phases is the wall time spent per stage, summed over passes.
	Phases Phases
}

// Phases is the wall time per stage of a check.
type Phases struct {
	Plan    time.Duration // sizing the backpointers btree
	Load    time.Duration // backpointers and alloc keys into the shards
	Produce time.Duration // walking the pointer btrees, shards applying records
	Finish  time.Duration // unmatched backpointers, alloc comparisons
	// Recheck (part of Finish): the buckets whose digests disagreed,
	// checked again the exact way (shard.Recheck)
	Recheck time.Duration
}
