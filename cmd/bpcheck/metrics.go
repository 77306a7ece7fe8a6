package main

import (
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// metricsRegistry holds the metrics of one check, named as the
// node_exporter bcachefs collector names its own: the subsystem first
// (bpcheck_ here, node_bcachefs_ there), label uuid for the filesystem's
// external uuid, device for a member index, error_type for a bcachefs
// fsck error name, base units in the names (_bytes, _seconds). Every
// value is a gauge: it describes the last check.
func metricsRegistry(s *report.Summary, fsUUID string, now time.Time) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	fs := prometheus.Labels{"uuid": fsUUID}
	gauge := func(name, help string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: fs})
		g.Set(v)
		reg.MustRegister(g)
	}
	vec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: fs}, labels)
		reg.MustRegister(g)
		return g
	}
	info := vec("bpcheck_info", "The filesystem checked: its metadata version and the fsck era whose rules applied.", "version", "rules")
	info.WithLabelValues(s.Version, s.Rules).Set(1)
	findings := vec("bpcheck_findings", "Findings of the last check, by bcachefs fsck error name.", "error_type")
	for _, c := range sortedCodes(s.ByCode) {
		findings.WithLabelValues(c).Set(float64(s.ByCode[c]))
	}
	gauge("bpcheck_findings_silenced", "Findings the next mount or fsck fixes without reporting them (pending recovery passes, an unfinished upgrade); they do not set exit code 4.", float64(s.Silenced))
	if l := s.Live; l != nil {
		gauge("bpcheck_live", "1 when the last check read a mounted filesystem while it ran (check --live).", 1)
		gauge("bpcheck_findings_transient", "Candidate findings of a live check that went away on a fresh re-read (not problems; they do not set exit code 4).", float64(l.Transient))
		tr := vec("bpcheck_findings_transient_by_type", "Transient findings of a live check, by bcachefs fsck error name.", "error_type")
		for _, c := range sortedCodes(l.TransientByCode) {
			tr.WithLabelValues(c).Set(float64(l.TransientByCode[c]))
		}
		gauge("bpcheck_live_scans", "Scans a live check made: one, and one more each time a scan met nodes it could not read.", float64(l.Scans))
		gauge("bpcheck_node_read_retries", "Node reads of a live check that failed and were retried after a fresh read of the parent.", float64(l.NodeRetries))
		gauge("bpcheck_node_read_retries_recovered", "Retried node reads of a live check that then read.", float64(l.NodeRetriesRecovered))
	}
	gauge("bpcheck_read_errors", "Nodes or devices that could not be read in the last check.", float64(s.Errors))
	gauge("bpcheck_nodes_read", "Btree nodes with pointers read.", float64(s.Nodes))
	gauge("bpcheck_node_read_bytes", "Bytes of btree nodes with pointers read.", float64(s.NodeBytes))
	gauge("bpcheck_keys_checked", "Keys with pointers checked.", float64(s.Keys))
	gauge("bpcheck_pointers_checked", "Pointers checked.", float64(s.Pointers))
	gauge("bpcheck_backpointers_checked", "Backpointers checked.", float64(s.Backpointers))
	gauge("bpcheck_alloc_keys_checked", "Alloc keys checked.", float64(s.AllocKeys))
	gauge("bpcheck_buckets", "Buckets of all member devices.", float64(s.Buckets))
	gauge("bpcheck_passes", "Passes over bucket ranges the memory budget required.", float64(s.Passes))
	gauge("bpcheck_memory_budget_bytes", "Memory budget of the last check.", float64(s.MemoryBudget))
	gauge("bpcheck_peak_memory_bytes", "Peak resident memory of the last check.", float64(peakRSS()))
	gauge("bpcheck_duration_seconds", "Duration of the last check.", s.Seconds)
	gauge("bpcheck_exit_code", "Exit code of the last check (0 clean, 4 problems, 8 errors, 32 interrupted; bits add up).", float64(s.ExitCode))
	gauge("bpcheck_last_run_timestamp_seconds", "When the last check ended.", float64(now.Unix()))
	if s.ExitCode == exitClean || s.ExitCode == exitProblems {
		gauge("bpcheck_last_success_timestamp_seconds", "When the last check that read everything ended.", float64(now.Unix()))
	}
	if len(s.PerDevice) > 0 {
		buckets := vec("bpcheck_device_buckets", "Buckets of a member device.", "device")
		bps := vec("bpcheck_device_backpointers", "Backpointers of a member device.", "device")
		ptrs := vec("bpcheck_device_pointers", "Pointers into a member device.", "device")
		devFindings := vec("bpcheck_device_findings", "Findings in a member device's buckets, by bcachefs fsck error name.", "device", "error_type")
		for _, d := range s.PerDevice {
			dev := strconv.Itoa(d.Dev)
			buckets.WithLabelValues(dev).Set(float64(d.Buckets))
			bps.WithLabelValues(dev).Set(float64(d.Backpointers))
			ptrs.WithLabelValues(dev).Set(float64(d.Pointers))
			for _, c := range sortedCodes(d.ByCode) {
				devFindings.WithLabelValues(dev, c).Set(float64(d.ByCode[c]))
			}
		}
	}
	return reg
}

// writeMetrics writes the metrics of a check to path for the node_exporter
// textfile collector, atomically (the client library writes a temporary
// file in the same directory and renames it).
func writeMetrics(path string, s *report.Summary, fsUUID string, now time.Time) error {
	if err := prometheus.WriteToTextfile(path, metricsRegistry(s, fsUUID, now)); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	return nil
}
