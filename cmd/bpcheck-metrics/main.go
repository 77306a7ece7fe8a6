// Command bpcheck-metrics writes the metrics of a bpcheck check as a
// Prometheus text file for the node_exporter textfile collector, with the
// Prometheus client library's registry and WriteToTextfile (a temporary
// file in the same directory, then a rename).
//
// `bpcheck check --metrics-file PATH` runs it when the check ends and
// hands it the check's summary on its standard input (report.MetricsInput,
// one JSON object). It is a program of its own so that the client
// library, whose package initialisers cost every process ~7-10 ms of
// start-up on the machines measured (docs/bench.md), is loaded only by
// the runs that write metrics, not by every check.
//
// Usage:
//
//	bpcheck-metrics PATH < input.json
//
// Exit status 0 when the file is written, 1 when it is not (the reason on
// standard error), 2 for a usage error.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bpcheck/report"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stderr))
}

// run writes the metrics file args[0] from the input read from stdin and
// returns the exit status.
func run(args []string, stdin io.Reader, stderr io.Writer) int {
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		fmt.Fprintln(stderr, "usage: bpcheck-metrics PATH < input.json (bpcheck check --metrics-file runs it)")
		return 2
	}
	in, err := readInput(stdin)
	if err == nil {
		err = write(args[0], in)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bpcheck-metrics: %v\n", err)
		return 1
	}
	return 0
}

// readInput decodes one report.MetricsInput; it must hold a summary.
func readInput(r io.Reader) (*report.MetricsInput, error) {
	var in report.MetricsInput
	dec := json.NewDecoder(io.LimitReader(r, maxInput))
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("read the check's summary from standard input: %w", err)
	}
	if in.Summary == nil {
		return nil, fmt.Errorf("read the check's summary from standard input: no \"summary\" object")
	}
	return &in, nil
}

// maxInput bounds the input read: a summary is a few KiB per thousand
// finding codes and devices.
const maxInput = 64 << 20

// write writes the metrics of in to path, atomically.
func write(path string, in *report.MetricsInput) error {
	if err := prometheus.WriteToTextfile(path, registry(in, lastSuccess(path, in.UUID))); err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	return nil
}

// registry holds the metrics of one check, named as the
// node_exporter bcachefs collector names its own: the subsystem first
// (bpcheck_ here, node_bcachefs_ there), label uuid for the filesystem's
// external uuid, device for a member index, error_type for a bcachefs
// fsck error name, base units in the names (_bytes, _seconds). Every
// value is a gauge: it describes the last check.
// lastSuccess returns the last-success time of filesystem uuid in the
// metrics file at path, as an earlier run wrote it (0: none).
func lastSuccess(path, uuid string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	prefix := "bpcheck_last_success_timestamp_seconds{"
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, `uuid="`+uuid+`"`) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && v > 0 {
			return v
		}
	}
	return 0
}

// registry builds the metrics of a check; prevSuccess is the last-success
// time the metrics file held, kept when this check did not read
// everything (else the staleness alert, on that time, never fired for a
// nightly check that always fails).
func registry(in *report.MetricsInput, prevSuccess float64) *prometheus.Registry {
	s, now := in.Summary, time.Unix(in.Time, 0)
	reg := prometheus.NewRegistry()
	fs := prometheus.Labels{"uuid": in.UUID}
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
	for _, c := range slices.Sorted(maps.Keys(s.ByCode)) {
		findings.WithLabelValues(c).Set(float64(s.ByCode[c]))
	}
	gauge("bpcheck_findings_silenced", "Findings the next mount or fsck fixes without reporting them (pending recovery passes, an unfinished upgrade); they do not set exit code 4.", float64(s.Silenced))
	if l := s.Live; l != nil {
		gauge("bpcheck_live", "1 when the last check read a mounted filesystem while it ran (check --live).", 1)
		gauge("bpcheck_findings_transient", "Candidate findings of a live check that went away on a fresh re-read (not problems; they do not set exit code 4).", float64(l.Transient))
		tr := vec("bpcheck_findings_transient_by_type", "Transient findings of a live check, by bcachefs fsck error name.", "error_type")
		for _, c := range slices.Sorted(maps.Keys(l.TransientByCode)) {
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
	gauge("bpcheck_peak_memory_bytes", "Peak resident memory of the last check.", float64(in.PeakMemoryBytes))
	gauge("bpcheck_duration_seconds", "Duration of the last check.", s.Seconds)
	gauge("bpcheck_exit_code", "Exit code of the last check (0 clean, 4 problems, 8 errors, 32 interrupted; bits add up).", float64(s.ExitCode))
	gauge("bpcheck_last_run_timestamp_seconds", "When the last check ended.", float64(now.Unix()))
	const successHelp = "When the last check that read everything ended."
	switch {
	case s.ExitCode == 0 || s.ExitCode == 4: // clean, or problems found: everything was read
		gauge("bpcheck_last_success_timestamp_seconds", successHelp, float64(now.Unix()))
	case prevSuccess > 0:
		gauge("bpcheck_last_success_timestamp_seconds", successHelp, prevSuccess)
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
			for _, c := range slices.Sorted(maps.Keys(d.ByCode)) {
				devFindings.WithLabelValues(dev, c).Set(float64(d.ByCode[c]))
			}
		}
	}
	return reg
}
