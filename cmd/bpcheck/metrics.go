package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"bpcheck/report"
)

// peakRSS returns the process's peak resident set size in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // Linux reports KiB
}

// metricsText renders the summary in the Prometheus text exposition
// format, for the node_exporter textfile collector.
func metricsText(s *report.Summary, fsUUID string, now time.Time) string {
	var b strings.Builder
	l := fmt.Sprintf("fs=%q", fsUUID)
	gauge := func(name, help string, v any) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s{%s} %v\n", name, help, name, name, l, v)
	}
	fmt.Fprintf(&b, "# HELP bpcheck_findings Findings of the last check, by bcachefs fsck error name.\n# TYPE bpcheck_findings gauge\n")
	codes := make([]string, 0, len(s.ByCode))
	for c := range s.ByCode {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "bpcheck_findings{%s,code=%q} %d\n", l, c, s.ByCode[c])
	}
	gauge("bpcheck_findings_total", "All findings of the last check.", s.Findings)
	gauge("bpcheck_findings_silenced", "Findings the next mount or fsck fixes without reporting them (pending recovery passes, unfinished upgrade).", s.Silenced)
	gauge("bpcheck_read_errors", "Nodes or devices that could not be read in the last check.", s.Errors)
	gauge("bpcheck_nodes_scanned", "Btree nodes read.", s.Nodes)
	gauge("bpcheck_node_bytes_scanned", "Bytes of btree nodes holding pointers read.", s.NodeBytes)
	gauge("bpcheck_keys_scanned", "Keys with pointers read.", s.Keys)
	gauge("bpcheck_pointers_scanned", "Pointers checked.", s.Pointers)
	gauge("bpcheck_backpointers_scanned", "Backpointers checked.", s.Backpointers)
	gauge("bpcheck_alloc_keys_scanned", "Alloc keys checked.", s.AllocKeys)
	gauge("bpcheck_buckets", "Buckets of all member devices.", s.Buckets)
	gauge("bpcheck_passes", "Passes over bucket ranges the memory budget required.", s.Passes)
	gauge("bpcheck_memory_budget_bytes", "Memory budget of the last check.", s.MemoryBudget)
	gauge("bpcheck_peak_memory_bytes", "Peak resident memory of the last check.", peakRSS())
	gauge("bpcheck_duration_seconds", "Duration of the last check.", fmt.Sprintf("%.6f", s.Seconds))
	gauge("bpcheck_exit_code", "Exit code of the last check (0 clean, 4 problems, 8 errors, 32 interrupted; bits add up).", s.ExitCode)
	gauge("bpcheck_last_run_timestamp_seconds", "When the last check ended.", now.Unix())
	if s.ExitCode == exitClean || s.ExitCode == exitProblems {
		gauge("bpcheck_last_success_timestamp_seconds", "When the last check that read everything ended.", now.Unix())
	}
	return b.String()
}

// writeMetrics writes the metrics file atomically: a temporary file in the
// same directory, synced, then renamed over the target.
func writeMetrics(path, text string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("metrics file %s: %w", tmp, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("metrics file %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("metrics file %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("metrics file %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	return nil
}
