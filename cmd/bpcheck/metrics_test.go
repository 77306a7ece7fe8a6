package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"bpcheck/internal/casedata"
	"bpcheck/report"
)

// TestMetricsFile runs a check with --metrics-file on a corrupt case and
// parses the file with the Prometheus text parser.
func TestMetricsFile(t *testing.T) {
	casedata.Require(t)
	path := filepath.Join(t.TempDir(), "bpcheck.prom")
	args := append([]string{"check", "--workers", "2", "--memory", "1G", "--metrics-file", path}, casedata.CaseImages(t, "corrupt-mixed")...)
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != exitProblems {
		t.Fatalf("exit %d, want %d: %s", code, exitProblems, errb.String())
	}
	fams := parseMetricsFile(t, path)
	value := func(name string, label ...string) float64 {
		fam, ok := fams[name]
		if !ok {
			t.Fatalf("metric %s missing", name)
		}
		for _, m := range fam.GetMetric() {
			match := true
			for i := 0; i+1 < len(label); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == label[i] && lp.GetValue() == label[i+1] {
						found = true
					}
				}
				match = match && found
			}
			if match {
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("metric %s%v missing", name, label)
		return 0
	}
	want := map[string]float64{"ptr_to_missing_backpointer": 5, "backpointer_to_missing_ptr": 6, "alloc_key_dirty_sectors_wrong": 7,
		"alloc_key_data_type_wrong": 1, "ptr_to_missing_alloc_key": 1}
	for code, n := range want {
		if got := value("bpcheck_findings", "error_type", code); got != n {
			t.Errorf("findings{error_type=%s} = %v, want %v", code, got, n)
		}
	}
	for name, v := range map[string]float64{"bpcheck_findings_silenced": 0, "bpcheck_exit_code": 4, "bpcheck_passes": 1,
		"bpcheck_pointers_checked": 5402, "bpcheck_backpointers_checked": 5403, "bpcheck_read_errors": 0} {
		if got := value(name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	// The node_exporter bcachefs collector's labels: uuid on every
	// metric, device per member.
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			hasUUID := false
			for _, lp := range m.GetLabel() {
				hasUUID = hasUUID || lp.GetName() == "uuid" && lp.GetValue() != ""
			}
			if !hasUUID {
				t.Errorf("%s has no uuid label", name)
			}
		}
	}
	if got := value("bpcheck_device_findings", "device", "1", "error_type", "ptr_to_missing_alloc_key"); got != 1 {
		t.Errorf("device_findings{device=1,error_type=ptr_to_missing_alloc_key} = %v, want 1", got)
	}
	if got := value("bpcheck_info", "version", "1.36"); got != 1 {
		t.Errorf("bpcheck_info{version=1.36} = %v", got)
	}
	if value("bpcheck_peak_memory_bytes") <= 0 || value("bpcheck_last_success_timestamp_seconds") <= 0 {
		t.Error("peak memory or last success missing")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*")); len(left) != 1 {
		t.Errorf("files beside the metrics file (temporary files left?): %v", left)
	}
}

// TestMetricsLive writes the metrics of a live check's summary (through
// the client library's registry and WriteToTextfile) and reads the live
// gauges back with the Prometheus parser.
func TestMetricsLive(t *testing.T) {
	s := &report.Summary{Version: "1.36", Live: &report.LiveSummary{Transient: 3, TransientByCode: map[string]int{"ptr_to_missing_backpointer": 2, "backpointer_to_missing_ptr": 1},
		Scans: 2, NodeRetries: 4, NodeRetriesRecovered: 3}}
	path := filepath.Join(t.TempDir(), "bpcheck.prom")
	if err := writeMetrics(path, s, "u", time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	fams := parseMetricsFile(t, path)
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

// parseMetricsFile reads a metrics file with the Prometheus text parser.
func parseMetricsFile(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return fams
}
