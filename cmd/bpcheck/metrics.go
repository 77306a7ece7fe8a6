package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// label is one label of a sample: name and value.
type label struct{ name, value string }

// sample is one value of a metric family with its labels, sorted by name.
type sample struct {
	labels []label
	value  float64
}

// family is a gauge metric family: its name, help text and samples.
type family struct {
	name, help string
	samples    []sample
}

// gauges collects the gauge families of one metrics file. Every sample
// gets the constant labels too.
type gauges struct {
	constLabels []label
	families    []*family
}

// family adds the family name and returns it.
func (g *gauges) family(name, help string) *family {
	f := &family{name: name, help: help}
	g.families = append(g.families, f)
	return f
}

// set adds a sample of value v to f, with the constant labels and the
// name/value pairs of kv.
func (g *gauges) set(f *family, v float64, kv ...string) {
	ls := slices.Clone(g.constLabels)
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, label{kv[i], kv[i+1]})
	}
	slices.SortFunc(ls, func(a, b label) int { return cmp.Compare(a.name, b.name) })
	f.samples = append(f.samples, sample{labels: ls, value: v})
}

// gauge adds a family with one sample.
func (g *gauges) gauge(name, help string, v float64) {
	g.set(g.family(name, help), v)
}

// writeText writes the families in the Prometheus text exposition format
// (version 0.0.4) as the client library writes a gathered registry:
// families sorted by name, samples by their label values, labels by name.
func (g *gauges) writeText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fams := slices.Clone(g.families)
	slices.SortFunc(fams, func(a, b *family) int { return cmp.Compare(a.name, b.name) })
	for _, f := range fams {
		if len(f.samples) == 0 {
			continue
		}
		ss := slices.Clone(f.samples)
		slices.SortStableFunc(ss, func(a, b sample) int {
			for i := 0; i < len(a.labels) && i < len(b.labels); i++ {
				if c := cmp.Compare(a.labels[i].value, b.labels[i].value); c != 0 {
					return c
				}
			}
			return cmp.Compare(len(a.labels), len(b.labels))
		})
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s gauge\n", f.name, helpEscaper.Replace(f.help), f.name)
		for _, s := range ss {
			bw.WriteString(f.name)
			if len(s.labels) > 0 {
				bw.WriteByte('{')
				for i, l := range s.labels {
					if i > 0 {
						bw.WriteByte(',')
					}
					fmt.Fprintf(bw, "%s=\"%s\"", l.name, labelEscaper.Replace(l.value))
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(formatValue(s.value))
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// The escapes of the text format: a backslash and a line feed in help
// text, those and a double quote in label values.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// formatValue writes a sample value as the text format spells it.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// checkMetrics holds the metrics of one check, named as the node_exporter
// bcachefs collector names its own: the subsystem first (bpcheck_ here,
// node_bcachefs_ there), label uuid for the filesystem's external uuid,
// device for a member index, error_type for a bcachefs fsck error name,
// base units in the names (_bytes, _seconds). Every value is a gauge: it
// describes the last check.
func checkMetrics(s *report.Summary, fsUUID string, now time.Time) *gauges {
	g := &gauges{constLabels: []label{{"uuid", fsUUID}}}
	info := g.family("bpcheck_info", "The filesystem checked: its metadata version and the fsck era whose rules applied.")
	g.set(info, 1, "version", s.Version, "rules", s.Rules)
	findings := g.family("bpcheck_findings", "Findings of the last check, by bcachefs fsck error name.")
	for _, c := range sortedCodes(s.ByCode) {
		g.set(findings, float64(s.ByCode[c]), "error_type", c)
	}
	g.gauge("bpcheck_findings_silenced", "Findings the next mount or fsck fixes without reporting them (pending recovery passes, an unfinished upgrade); they do not set exit code 4.", float64(s.Silenced))
	if l := s.Live; l != nil {
		g.gauge("bpcheck_live", "1 when the last check read a mounted filesystem while it ran (check --live).", 1)
		g.gauge("bpcheck_findings_transient", "Candidate findings of a live check that went away on a fresh re-read (not problems; they do not set exit code 4).", float64(l.Transient))
		tr := g.family("bpcheck_findings_transient_by_type", "Transient findings of a live check, by bcachefs fsck error name.")
		for _, c := range sortedCodes(l.TransientByCode) {
			g.set(tr, float64(l.TransientByCode[c]), "error_type", c)
		}
		g.gauge("bpcheck_live_scans", "Scans a live check made: one, and one more each time a scan met nodes it could not read.", float64(l.Scans))
		g.gauge("bpcheck_node_read_retries", "Node reads of a live check that failed and were retried after a fresh read of the parent.", float64(l.NodeRetries))
		g.gauge("bpcheck_node_read_retries_recovered", "Retried node reads of a live check that then read.", float64(l.NodeRetriesRecovered))
	}
	g.gauge("bpcheck_read_errors", "Nodes or devices that could not be read in the last check.", float64(s.Errors))
	g.gauge("bpcheck_nodes_read", "Btree nodes with pointers read.", float64(s.Nodes))
	g.gauge("bpcheck_node_read_bytes", "Bytes of btree nodes with pointers read.", float64(s.NodeBytes))
	g.gauge("bpcheck_keys_checked", "Keys with pointers checked.", float64(s.Keys))
	g.gauge("bpcheck_pointers_checked", "Pointers checked.", float64(s.Pointers))
	g.gauge("bpcheck_backpointers_checked", "Backpointers checked.", float64(s.Backpointers))
	g.gauge("bpcheck_alloc_keys_checked", "Alloc keys checked.", float64(s.AllocKeys))
	g.gauge("bpcheck_buckets", "Buckets of all member devices.", float64(s.Buckets))
	g.gauge("bpcheck_passes", "Passes over bucket ranges the memory budget required.", float64(s.Passes))
	g.gauge("bpcheck_memory_budget_bytes", "Memory budget of the last check.", float64(s.MemoryBudget))
	g.gauge("bpcheck_peak_memory_bytes", "Peak resident memory of the last check.", float64(peakRSS()))
	g.gauge("bpcheck_duration_seconds", "Duration of the last check.", s.Seconds)
	g.gauge("bpcheck_exit_code", "Exit code of the last check (0 clean, 4 problems, 8 errors, 32 interrupted; bits add up).", float64(s.ExitCode))
	g.gauge("bpcheck_last_run_timestamp_seconds", "When the last check ended.", float64(now.Unix()))
	if s.ExitCode == exitClean || s.ExitCode == exitProblems {
		g.gauge("bpcheck_last_success_timestamp_seconds", "When the last check that read everything ended.", float64(now.Unix()))
	}
	if len(s.PerDevice) > 0 {
		buckets := g.family("bpcheck_device_buckets", "Buckets of a member device.")
		bps := g.family("bpcheck_device_backpointers", "Backpointers of a member device.")
		ptrs := g.family("bpcheck_device_pointers", "Pointers into a member device.")
		devFindings := g.family("bpcheck_device_findings", "Findings in a member device's buckets, by bcachefs fsck error name.")
		for _, d := range s.PerDevice {
			dev := strconv.Itoa(d.Dev)
			g.set(buckets, float64(d.Buckets), "device", dev)
			g.set(bps, float64(d.Backpointers), "device", dev)
			g.set(ptrs, float64(d.Pointers), "device", dev)
			for _, c := range sortedCodes(d.ByCode) {
				g.set(devFindings, float64(d.ByCode[c]), "device", dev, "error_type", c)
			}
		}
	}
	return g
}

// writeMetrics writes the metrics of a check to path for the node_exporter
// textfile collector, atomically: a temporary file in the same directory,
// mode 0644, renamed over path, so the collector never reads half a file.
func writeMetrics(path string, s *report.Summary, fsUUID string, now time.Time) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path))
	if err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	err = checkMetrics(s, fsUUID, now).writeText(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	return nil
}
