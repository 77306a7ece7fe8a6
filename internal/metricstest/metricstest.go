// Package metricstest reads the Prometheus text files bpcheck writes
// (bpcheck check --metrics-file, cmd/bpcheck-metrics), for tests.
package metricstest

import (
	"os"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ParseFile reads the metrics file at path with the Prometheus text
// parser and returns its families by name; a file that does not parse
// fails the test.
func ParseFile(t testing.TB, path string) map[string]*dto.MetricFamily {
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
