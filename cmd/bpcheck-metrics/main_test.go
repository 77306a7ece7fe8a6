package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"bpcheck/internal/metricstest"
	"bpcheck/report"
)

// TestLive writes the metrics of a live check's summary and reads the
// live gauges back with the Prometheus parser.
func TestLive(t *testing.T) {
	s := &report.Summary{Version: "1.36", Live: &report.LiveSummary{Transient: 3, TransientByCode: map[string]int{"ptr_to_missing_backpointer": 2, "backpointer_to_missing_ptr": 1},
		Scans: 2, NodeRetries: 4, NodeRetriesRecovered: 3}}
	path := filepath.Join(t.TempDir(), "bpcheck.prom")
	fams := runWriter(t, path, report.MetricsInput{UUID: "u", Time: 1, Summary: s})
	for name, want := range map[string]float64{"bpcheck_live": 1, "bpcheck_findings_transient": 3, "bpcheck_live_scans": 2,
		"bpcheck_node_read_retries": 4, "bpcheck_node_read_retries_recovered": 3} {
		fam, ok := fams[name]
		if !ok || len(fam.GetMetric()) != 1 || fam.GetMetric()[0].GetGauge().GetValue() != want {
			t.Errorf("%s: got %v, want one sample %v", name, fam, want)
		}
	}
	byType := map[string]float64{}
	for _, m := range fams["bpcheck_findings_transient_by_type"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "error_type" {
				byType[lp.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	if byType["ptr_to_missing_backpointer"] != 2 || byType["backpointer_to_missing_ptr"] != 1 || len(byType) != 2 {
		t.Errorf("transient by type = %v", byType)
	}
}

// TestInputFields: the facts the summary does not carry (uuid, end time,
// peak memory) reach their metrics, and a failed check has no
// last-success time.
func TestInputFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bpcheck.prom")
	fams := runWriter(t, path, report.MetricsInput{UUID: "0f1e", Time: 1700000000, PeakMemoryBytes: 123 << 20,
		Summary: &report.Summary{Version: "1.9", ExitCode: 8, PerDevice: []report.DevSummary{{Dev: 2, Buckets: 7, ByCode: map[string]int{"x": 1}}}}})
	one := func(name string) *dto.Metric {
		fam := fams[name]
		if fam == nil || len(fam.GetMetric()) != 1 {
			t.Fatalf("%s: %v", name, fam)
		}
		return fam.GetMetric()[0]
	}
	if v := one("bpcheck_peak_memory_bytes").GetGauge().GetValue(); v != 123<<20 {
		t.Errorf("peak memory %v", v)
	}
	if v := one("bpcheck_last_run_timestamp_seconds").GetGauge().GetValue(); v != 1700000000 {
		t.Errorf("last run %v", v)
	}
	if _, ok := fams["bpcheck_last_success_timestamp_seconds"]; ok {
		t.Error("last success written for exit code 8")
	}
	m := one("bpcheck_device_buckets")
	labels := map[string]string{}
	for _, lp := range m.GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	if labels["uuid"] != "0f1e" || labels["device"] != "2" || m.GetGauge().GetValue() != 7 {
		t.Errorf("device_buckets %v = %v", labels, m.GetGauge().GetValue())
	}
}

// TestBadInput: usage errors exit 2, unreadable input exits 1 naming
// what was wrong, and neither leaves a file.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bpcheck.prom")
	var errb bytes.Buffer
	if code := run(nil, strings.NewReader("{}"), &errb); code != 2 || !strings.Contains(errb.String(), "usage") {
		t.Errorf("no args: exit %d, %q", code, errb.String())
	}
	for _, in := range []string{"", "{", "{}", `{"summary":null}`, `{"summary":3}`} {
		errb.Reset()
		if code := run([]string{path}, strings.NewReader(in), &errb); code != 1 || !strings.Contains(errb.String(), "summary") {
			t.Errorf("input %q: exit %d, %q", in, code, errb.String())
		}
	}
	errb.Reset()
	if code := run([]string{filepath.Join(dir, "no", "such", "dir", "x.prom")}, strings.NewReader(`{"summary":{}}`), &errb); code != 1 || !strings.Contains(errb.String(), "metrics file") {
		t.Errorf("unwritable path: exit %d, %q", code, errb.String())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}

// FuzzInput: any input either is refused with an error or yields a file
// the Prometheus parser reads; the writer never panics.
func FuzzInput(f *testing.F) {
	good, _ := json.Marshal(report.MetricsInput{UUID: "u", Time: 5, Summary: &report.Summary{Version: "1.36", ByCode: map[string]int{"a": 1},
		PerDevice: []report.DevSummary{{Dev: 0, ByCode: map[string]int{"a": 1}}}, Live: &report.LiveSummary{TransientByCode: map[string]int{"b": 2}}}})
	f.Add(good)
	f.Add([]byte(`{"summary":{"by_code":{"\n\"":-1}},"uuid":"\u0000"}`))
	f.Add([]byte(`{"summary":{"seconds":1e308,"per_device":[{"dev":-1}]}}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := readInput(bytes.NewReader(data))
		if err != nil {
			return
		}
		path := filepath.Join(dir, "f.prom")
		if err := write(path, in); err != nil {
			return // e.g. a label value that is not valid UTF-8
		}
		metricstest.ParseFile(t, path)
	})
}

// runWriter runs the program's entry point on in and parses the file.
func runWriter(t *testing.T, path string, in report.MetricsInput) map[string]*dto.MetricFamily {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	if code := run([]string{path}, bytes.NewReader(b), &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	return metricstest.ParseFile(t, path)
}

// TestLastSuccessKept: a check that did not read everything (exit 8, 32)
// keeps the last-success time an earlier run wrote to the file, so that
// the staleness alert on it fires for a nightly check that keeps failing
// (it dropped the series, and the alert's expression then had no value).
func TestLastSuccessKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bpcheck.prom")
	ok := report.MetricsInput{UUID: "u1", Time: 1700000000, Summary: &report.Summary{ExitCode: 4}}
	runWriter(t, path, ok)
	for _, code := range []int{8, 32, 12} {
		fams := runWriter(t, path, report.MetricsInput{UUID: "u1", Time: 1700090000, Summary: &report.Summary{ExitCode: code}})
		fam := fams["bpcheck_last_success_timestamp_seconds"]
		if fam == nil || len(fam.GetMetric()) != 1 || fam.GetMetric()[0].GetGauge().GetValue() != 1700000000 {
			t.Errorf("exit %d: last success %v, want the earlier run's 1700000000", code, fam)
		}
		if v := fams["bpcheck_last_run_timestamp_seconds"].GetMetric()[0].GetGauge().GetValue(); v != 1700090000 {
			t.Errorf("exit %d: last run %v", code, v)
		}
	}
	// Another filesystem's file says nothing of this one.
	fams := runWriter(t, path, report.MetricsInput{UUID: "u2", Time: 1700100000, Summary: &report.Summary{ExitCode: 8}})
	if _, ok := fams["bpcheck_last_success_timestamp_seconds"]; ok {
		t.Error("another filesystem's last success kept")
	}
}
