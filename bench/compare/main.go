// Command compare reads the output of BenchmarkCheck (go test -bench) on
// stdin and prints a table that sets bpcheck's time per check beside the
// time the real bcachefs fsck spent in its backpointer passes on the same
// image (case.json pass_ms: check_btree_backpointers +
// check_extents_to_backpointers + check_backpointers_to_extents).
//
// Usage (bench/run.sh does this):
//
//	go test -run x -bench BenchmarkCheck -benchtime 20x ./pipeline/ | go run ./bench/compare
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"bpcheck/internal/casedata"
)

// bpPasses are the fsck passes that do what bpcheck check does.
var bpPasses = []string{"check_btree_backpointers", "check_extents_to_backpointers", "check_backpointers_to_extents"}

// result is one benchmark line.
type result struct {
	name, caseName, variant string
	workers                 int
	metrics                 map[string]float64 // by unit: ns/op, MB/s, extents/s, passes, ...
}

// nameRE splits BenchmarkCheck/case=C/[budget=B/]workers=N[-P].
var nameRE = regexp.MustCompile(`^BenchmarkCheck/case=([^/]+)/(?:(budget=[^/]+)/)?workers=(\d+)(?:-\d+)?$`)

func parse(r io.Reader) ([]result, []string, error) {
	var out []result
	var header []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "cpu:") || strings.HasPrefix(line, "goos:") || strings.HasPrefix(line, "goarch:") {
			header = append(header, line)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkCheck/") {
			continue
		}
		m := nameRE.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		w, _ := strconv.Atoi(m[3])
		res := result{name: f[0], caseName: m[1], variant: m[2], workers: w, metrics: map[string]float64{}}
		if res.variant == "" {
			res.variant = "budget=all"
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: metric %q: %w", f[0], f[i], err)
			}
			res.metrics[f[i+1]] = v
		}
		out = append(out, res)
	}
	return out, header, sc.Err()
}

// fsckMs returns the sum of the backpointer passes' ms from case.json and
// the tools version that measured them.
func fsckMs(dir, name string) (ms float64, parts []float64, who string, err error) {
	data, err := os.ReadFile(filepath.Join(dir, "cases", name, "case.json"))
	if err != nil {
		return 0, nil, "", err
	}
	var c struct {
		PassMs   map[string]float64 `json:"pass_ms"`
		Tools    string             `json:"bcachefs_tools_version"`
		Metadata string             `json:"metadata_version"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return 0, nil, "", fmt.Errorf("case %s: %w", name, err)
	}
	for _, p := range bpPasses {
		v, ok := c.PassMs[p]
		if !ok {
			return 0, nil, "", fmt.Errorf("case %s: no pass_ms.%s", name, p)
		}
		parts = append(parts, v)
		ms += v
	}
	who = c.Tools
	if who == "" && strings.HasPrefix(name, "a-") {
		who = "v1.9.4" // the a-* cases: testdata README
	}
	return ms, parts, who, nil
}

// group is the results of one benchmark over its repetitions (-count).
type group struct {
	first result
	runs  []result
}

// median returns the median of one metric over the runs.
func (g *group) median(unit string) float64 {
	v := make([]float64, 0, len(g.runs))
	for _, r := range g.runs {
		v = append(v, r.metrics[unit])
	}
	sort.Float64s(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	} else {
		return (v[n/2-1] + v[n/2]) / 2
	}
}

// spread returns the smallest and largest value of one metric.
func (g *group) spread(unit string) (lo, hi float64) {
	lo, hi = g.runs[0].metrics[unit], g.runs[0].metrics[unit]
	for _, r := range g.runs[1:] {
		lo, hi = min(lo, r.metrics[unit]), max(hi, r.metrics[unit])
	}
	return lo, hi
}

func main() {
	results, header, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
	if len(results) == 0 {
		fmt.Fprintln(os.Stderr, "compare: no BenchmarkCheck results on stdin")
		os.Exit(1)
	}
	dir := casedata.Dir()
	if dir == "" {
		fmt.Fprintln(os.Stderr, "compare:", errors.New("test data not found (set BPCHECK_TESTDATA)"))
		os.Exit(1)
	}
	var groups []*group
	byName := map[string]*group{}
	for _, r := range results {
		g := byName[r.name]
		if g == nil {
			g = &group{first: r}
			byName[r.name] = g
			groups = append(groups, g)
		}
		g.runs = append(g.runs, r)
	}
	for _, h := range header {
		fmt.Println(h)
	}
	fmt.Printf("\nmedian of %d run(s) of each benchmark; ms/check min–max in brackets\n\n", len(groups[0].runs))
	fmt.Println("| case | variant | workers | passes | bpcheck ms/check | extents/s | MB/s | fsck bp passes ms (btree_bp + ext→bp + bp→ext) | fsck / bpcheck |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---|---:|")
	for _, g := range groups {
		r := g.first
		ms := g.median("ns/op") / 1e6
		lo, hi := g.spread("ns/op")
		fsck, parts, who, err := fsckMs(dir, r.caseName)
		fsckCol, ratio := "n/a", "n/a"
		switch {
		case err != nil:
			fsckCol = "n/a (" + err.Error() + ")"
		case fsck < 1:
			fsckCol = fmt.Sprintf("%.1f (%s; below its 1 ms resolution)", fsck, who)
		default:
			fsckCol = fmt.Sprintf("%.1f = %.1f + %.1f + %.1f (%s)", fsck, parts[0], parts[1], parts[2], who)
			ratio = fmt.Sprintf("%.2f×", fsck/ms)
		}
		fmt.Printf("| %s | %s | %d | %.0f | %.1f [%.1f–%.1f] | %.0f | %.1f | %s | %s |\n",
			r.caseName, r.variant, r.workers, g.median("passes"), ms, lo/1e6, hi/1e6, g.median("extents/s"), g.median("MB/s"), fsckCol, ratio)
	}
}
