package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// metricsWriterName is the program that writes the metrics file
// (cmd/bpcheck-metrics). It is separate so that the Prometheus client
// library it is built on, whose package initialisers cost every process
// several milliseconds of start-up, is loaded by the runs that write
// metrics only.
const metricsWriterName = "bpcheck-metrics"

// metricsWriter finds the metrics writer: $BPCHECK_METRICS if set, else
// bpcheck-metrics in the directory of this executable (where the README's
// build and an install put it), else on $PATH.
func metricsWriter() (string, error) {
	if p := os.Getenv("BPCHECK_METRICS"); p != "" {
		return p, nil
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), metricsWriterName)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		tried = append(tried, p)
	}
	p, err := exec.LookPath(metricsWriterName)
	if err == nil {
		return p, nil
	}
	tried = append(tried, "$PATH")
	return "", fmt.Errorf("%s not found (looked in %s): build it beside bpcheck, as README.md shows, or name it in $BPCHECK_METRICS", metricsWriterName, strings.Join(tried, " and "))
}

// writeMetrics writes the metrics of a check to path for the node_exporter
// textfile collector, atomically: the metrics writer builds them with the
// Prometheus client library's registry and writes them with its
// WriteToTextfile (a temporary file in the same directory, then a
// rename).
func writeMetrics(path string, s *report.Summary, fsUUID string, now time.Time) error {
	prog, err := metricsWriter()
	if err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	in, err := json.Marshal(report.MetricsInput{UUID: fsUUID, Time: now.Unix(), PeakMemoryBytes: peakRSS(), Summary: s})
	if err != nil {
		return fmt.Errorf("metrics file %s: encode the summary: %w", path, err)
	}
	// An absolute path: the writer takes no option, and a relative path
	// starting with "-" would read as one.
	arg, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	cmd := exec.Command(prog, arg)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return errors.New(msg) // the writer names the file and the cause
		}
		return fmt.Errorf("metrics file %s: run %s: %w", path, prog, err)
	}
	return nil
}
