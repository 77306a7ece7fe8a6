package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"bpcheck/internal/casedata"
	"bpcheck/internal/metricstest"
)

// TestMetricsFile runs a check with --metrics-file on a corrupt case and
// parses the file (written by cmd/bpcheck-metrics) with the Prometheus
// text parser.
func TestMetricsFile(t *testing.T) {
	casedata.Require(t)
	useMetricsWriter(t)
	path := filepath.Join(t.TempDir(), "bpcheck.prom")
	args := append([]string{"check", "--workers", "2", "--memory", "1G", "--metrics-file", path}, casedata.CaseImages(t, "corrupt-mixed")...)
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != exitProblems {
		t.Fatalf("exit %d, want %d: %s", code, exitProblems, errb.String())
	}
	fams := metricstest.ParseFile(t, path)
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

// useMetricsWriter builds cmd/bpcheck-metrics once per test binary and
// names it in $BPCHECK_METRICS for the test: the test binary has no
// writer beside it.
func useMetricsWriter(t *testing.T) {
	t.Helper()
	metricsWriterOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bpcheck-metrics")
		if err != nil {
			metricsWriterErr = err
			return
		}
		metricsWriterBin = filepath.Join(dir, metricsWriterName)
		cmd := exec.Command("go", "build", "-trimpath", "-o", metricsWriterBin, "../bpcheck-metrics")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			metricsWriterErr = fmt.Errorf("build the metrics writer: %v\n%s", err, out)
		}
	})
	if metricsWriterErr != nil {
		t.Fatal(metricsWriterErr)
	}
	t.Setenv("BPCHECK_METRICS", metricsWriterBin)
}

var (
	metricsWriterOnce sync.Once
	metricsWriterBin  string
	metricsWriterErr  error
)

// TestMetricsWriterMissing: without the metrics writer the check still
// runs and reports, and the exit code adds the operational bit, with a
// message that says what is missing and how to get it.
func TestMetricsWriterMissing(t *testing.T) {
	casedata.Require(t)
	t.Setenv("BPCHECK_METRICS", "")
	t.Setenv("PATH", t.TempDir())
	path := filepath.Join(t.TempDir(), "bpcheck.prom")
	args := append([]string{"check", "--json", "--metrics-file", path}, casedata.CaseImages(t, "corrupt-mixed")...)
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != exitProblems|exitOperational {
		t.Fatalf("exit %d, want %d: %s", code, exitProblems|exitOperational, errb.String())
	}
	if msg := errb.String(); !strings.Contains(msg, "metrics file "+path) || !strings.Contains(msg, "bpcheck-metrics not found") {
		t.Errorf("stderr = %q", msg)
	}
	if !strings.Contains(out.String(), `"message_type":"summary"`) || !strings.Contains(out.String(), `"exit_code":12`) {
		t.Errorf("no summary with exit code 12:\n%s", out.String())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("metrics file exists: %v", err)
	}
}

// TestMetricsWriterBeside builds bpcheck and its metrics writer as
// README.md says (one directory) and checks that bpcheck finds the writer
// beside itself, with $BPCHECK_METRICS unset and nothing on $PATH.
func TestMetricsWriterBeside(t *testing.T) {
	casedata.Require(t)
	dir := buildBinaries(t, ".", "../bpcheck-metrics")
	path := filepath.Join(t.TempDir(), "bpcheck.prom")
	cmd := exec.Command(filepath.Join(dir, "bpcheck"), append([]string{"check", "--metrics-file", path}, casedata.CaseImages(t, "tiny")...)...)
	cmd.Env = append(os.Environ(), "BPCHECK_METRICS=", "PATH="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	fams := metricstest.ParseFile(t, path)
	// A relative path that starts with "-" is a file name, as before the
	// writer was a program of its own.
	cmd = exec.Command(filepath.Join(dir, "bpcheck"), append([]string{"check", "--metrics-file", "-dash.prom"}, casedata.CaseImages(t, "tiny")...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "BPCHECK_METRICS=", "PATH="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("check with --metrics-file -dash.prom: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(cmd.Dir, "-dash.prom")); err != nil {
		t.Error(err)
	}
	if fam := fams["bpcheck_exit_code"]; fam == nil || fam.GetMetric()[0].GetGauge().GetValue() != 0 {
		t.Errorf("bpcheck_exit_code = %v", fam)
	}
	if fam := fams["bpcheck_peak_memory_bytes"]; fam == nil || fam.GetMetric()[0].GetGauge().GetValue() <= 0 {
		t.Errorf("bpcheck_peak_memory_bytes = %v", fam)
	}
}
