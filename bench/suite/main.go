// Command suite is bpcheck's benchmark suite: it generates synthetic
// bcachefs filesystems of several sizes (package gen), checks each with
// the bpcheck binary at GOMAXPROCS 1 and 2 and at memory budgets that
// force one pass and about four (a third of the planner's one-pass
// estimate), records time, extents/s, metadata MB/s
// and peak RSS (rusage), and writes docs/bench.md with a table and an SVG
// plot of throughput against size and passes.
//
//	go run ./bench/suite                       # 1M extents (quick)
//	go run ./bench/suite -extents 1000000,10000000 -devices 2
//	go run ./bench/suite -extents 100000000 -devices 4 -keep /big/dir
//	go run ./bench/suite -metadata-version 1.28 -out /tmp/bench128.md
//	go run ./bench/suite -shape real -devices 1 -out /tmp/benchreal.md
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"bpcheck/bench/internal/bpbuild"
	"bpcheck/gen"
)

// metadataVersion is the gen.Params.MetadataVersion of the filesystems
// ("": the default, 1.36), and shape their gen.Params.Shape ("": the
// generator's own; "real": that of bcachefs format --source, which the
// real images of docs/bench.md have).
var metadataVersion, shape string

type result struct {
	Extents     int64   `json:"extents"`
	Devices     int     `json:"devices"`
	GOMAXPROCS  int     `json:"gomaxprocs"`
	Budget      string  `json:"budget"`
	Passes      int     `json:"passes"`
	Seconds     float64 `json:"seconds"`
	ExtentsPerS float64 `json:"extents_per_s"`
	MBPerS      float64 `json:"mb_per_s"`
	PeakRSS     int64   `json:"peak_rss"`
	BudgetBytes int64   `json:"budget_bytes"`
	Findings    int     `json:"findings"`
	GenSeconds  float64 `json:"gen_seconds"`
}

func main() {
	sizes := flag.String("extents", "1000000", "comma-separated extent counts")
	devices := flag.Int("devices", 2, "devices per filesystem")
	keep := flag.String("keep", "", "directory for the images (kept); default a temp dir, removed")
	out := flag.String("out", "docs/bench.md", "report to write")
	reps := flag.Int("reps", 3, "runs per configuration (the fastest is kept)")
	version := flag.String("metadata-version", gen.DefaultMetadataVersion, "metadata version of the filesystems: "+strings.Join(gen.MetadataVersions, ", "))
	flag.StringVar(&shape, "shape", "", "shape of the filesystems: the generator's own (default) or real (as bcachefs format --source makes them)")
	flag.Parse()
	if *version != gen.DefaultMetadataVersion {
		metadataVersion = *version
	}
	if err := run(*sizes, *devices, *keep, *out, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "suite:", err)
		os.Exit(1)
	}
}

func run(sizes string, devices int, keep, out string, reps int) error {
	bin, err := buildBinary()
	if err != nil {
		return err
	}
	defer os.Remove(bin)
	base := keep
	if base == "" {
		base, err = os.MkdirTemp("", "bpcheck-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(base)
	}
	var results []result
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("bad extent count %q", s)
		}
		name := fmt.Sprintf("ext%d-dev%d", n, devices)
		if metadataVersion != "" {
			name += "-v" + metadataVersion
		}
		if shape != "" {
			name += "-" + shape
		}
		dir := filepath.Join(base, name)
		os.MkdirAll(dir, 0o755)
		p := gen.Params{Devices: devices, Extents: n, Seed: 1,
			DeviceSize: deviceSize(n, devices), MetadataVersion: metadataVersion, Shape: shape}
		if shape == gen.ShapeReal {
			p.DeviceSize = 0 // the shape's own (20 GiB, doubled as the data needs)
		}
		t0 := time.Now()
		m, err := gen.Generate(dir, p)
		if err != nil {
			return fmt.Errorf("generate %d extents: %w", n, err)
		}
		genSec := time.Since(t0).Seconds()
		fmt.Fprintf(os.Stderr, "generated %d extents on %d devices in %.1f s\n", n, devices, genSec)
		var imgs []string
		for i := 0; i < devices; i++ {
			imgs = append(imgs, filepath.Join(dir, fmt.Sprintf("dev%d.img", i)))
		}
		_ = m
		// One unlimited run tells the planned memory; a quarter of it
		// forces about four passes.
		first, err := check(bin, imgs, 2, "")
		if err != nil {
			return err
		}
		// The CLI gives the shards 3/4 of --memory: a third of the
		// one-pass estimate makes about four passes.
		quarter := strconv.FormatInt(first.estimate/3+1, 10)
		for _, procs := range []int{1, 2} {
			for _, budget := range []string{"", quarter} {
				best := result{Seconds: math.Inf(1)}
				for r := 0; r < reps; r++ {
					c, err := check(bin, imgs, procs, budget)
					if err != nil {
						return err
					}
					if c.res.Seconds < best.Seconds {
						best = c.res
					}
				}
				best.Extents, best.Devices, best.GOMAXPROCS, best.GenSeconds = n, devices, procs, genSec
				best.Budget = "unlimited"
				if budget != "" {
					best.Budget = "estimate/3"
				}
				results = append(results, best)
				fmt.Fprintf(os.Stderr, "  %+v\n", best)
			}
		}
	}
	return writeReport(out, results)
}

// deviceSize picks a sparse device size that holds n extents of up to
// 64 KiB over the given devices with room to spare.
func deviceSize(n int64, devices int) int64 {
	need := n * 64 << 10 / int64(devices) * 2
	size := int64(1 << 30)
	for size < need {
		size <<= 1
	}
	return size
}

func buildBinary() (string, error) {
	f, err := os.CreateTemp("", "bpcheck-bin-")
	if err != nil {
		return "", err
	}
	f.Close()
	if err := bpbuild.Static(f.Name()); err != nil {
		return "", err
	}
	return f.Name(), nil
}

type checkRun struct {
	res      result
	estimate int64
}

// check runs the binary once and reads its JSON summary and rusage.
func check(bin string, imgs []string, procs int, budget string) (checkRun, error) {
	args := []string{"check", "--json", "--workers", strconv.Itoa(procs)}
	if budget != "" {
		args = append(args, "--memory", budget)
	} else {
		args = append(args, "--memory", "90%")
	}
	args = append(args, imgs...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		return checkRun{}, err
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 && code != 4 {
		return checkRun{}, fmt.Errorf("bpcheck exit %d", code)
	}
	var s struct {
		Seconds      float64 `json:"seconds"`
		Extents      int64   `json:"extents"`
		NodeBytes    int64   `json:"node_bytes"`
		LoadBytes    int64   `json:"load_bytes"`
		Passes       int     `json:"passes"`
		Findings     int     `json:"findings"`
		MemoryBudget int64   `json:"memory_budget"`
		Estimated    int64   `json:"estimated_bytes"`
		MessageType  string  `json:"message_type"`
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil || s.MessageType != "summary" {
		return checkRun{}, fmt.Errorf("no summary line: %v", err)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r := result{Passes: s.Passes, Seconds: s.Seconds, Findings: s.Findings, BudgetBytes: s.MemoryBudget}
	if s.Seconds > 0 {
		r.ExtentsPerS = float64(s.Extents) / s.Seconds
		r.MBPerS = float64(s.NodeBytes+s.LoadBytes) / s.Seconds / 1e6
	}
	if ru != nil {
		r.PeakRSS = ru.Maxrss * 1024
	}
	return checkRun{res: r, estimate: s.Estimated}, nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

// shapeNote names the filesystems' shape in the report, if not the
// generator's own.
func shapeNote() string {
	if shape == "" {
		return ""
	}
	return ", shape " + shape + " (gen/README.md)"
}

func writeReport(out string, rs []result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# bpcheck benchmark suite\n\nGenerated by `go run ./bench/suite` on %s: %d CPUs (%s), %s. Synthetic filesystems from `bench`'s generator (package gen, seed 1%s), checked by the bpcheck binary with `--json`; the fastest of several runs per row; peak RSS from rusage.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), cpuModel(), runtime.Version(), shapeNote())
	b.WriteString("| extents | devices | GOMAXPROCS | budget | passes | seconds | extents/s | metadata MB/s | peak RSS MiB |\n|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %d | %d | %d | %s | %d | %.3f | %.0f | %.0f | %.0f |\n", r.Extents, r.Devices, r.GOMAXPROCS, r.Budget, r.Passes, r.Seconds, r.ExtentsPerS, r.MBPerS, float64(r.PeakRSS)/(1<<20))
	}
	svg := filepath.Join(filepath.Dir(out), "bench.svg")
	if err := os.WriteFile(svg, []byte(plot(rs)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\n![throughput against size and passes](bench.svg)\n")
	// Measurements that the suite does not repeat (the comparison with
	// the real fsck, the 100 M run, the scaling model) are kept by hand in
	// bench/analysis.md and appended.
	if extra, err := os.ReadFile("bench/analysis.md"); err == nil {
		b.WriteString("\n")
		b.Write(extra)
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rs, "", " ")
	return os.WriteFile(strings.TrimSuffix(out, ".md")+".json", js, 0o644)
}

// plot draws extents/s against extent count (log scale), one line per
// (GOMAXPROCS, budget) configuration, as SVG.
func plot(rs []result) string {
	type key struct {
		procs  int
		budget string
	}
	series := map[key][]result{}
	var keys []key
	maxY, minX, maxX := 1.0, math.Inf(1), 0.0
	for _, r := range rs {
		k := key{r.GOMAXPROCS, r.Budget}
		if _, ok := series[k]; !ok {
			keys = append(keys, k)
		}
		series[k] = append(series[k], r)
		maxY = math.Max(maxY, r.ExtentsPerS)
		minX = math.Min(minX, math.Log10(float64(r.Extents)))
		maxX = math.Max(maxX, math.Log10(float64(r.Extents)))
	}
	if maxX == minX {
		minX, maxX = minX-0.5, maxX+0.5
	}
	const w, h, l, bo = 800.0, 360.0, 70.0, 40.0
	x := func(v float64) float64 { return l + (math.Log10(v)-minX)/(maxX-minX)*(w-l-300) }
	y := func(v float64) float64 { return h - bo - v/maxY*(h-bo-20) }
	colors := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/><line x1="%.0f" y1="20" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", l, h-bo, w-300, h-bo, l, l, h-bo)
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%.2fM</text>`+"\n", l-4, y(v)+4, v/1e6)
	}
	fmt.Fprintf(&b, `<text x="10" y="14">extents/s</text><text x="%.0f" y="%.0f" text-anchor="middle">extents (log scale)</text>`+"\n", (l+w-300)/2, h-8)
	for i, k := range keys {
		s := series[k]
		sort.Slice(s, func(a, c int) bool { return s[a].Extents < s[c].Extents })
		var pts []string
		for _, r := range s {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(r.Extents)), y(r.ExtentsPerS)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(float64(r.Extents)), y(r.ExtentsPerS), colors[i%len(colors)])
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.0e</text>`+"\n", x(float64(r.Extents)), h-bo+14, float64(r.Extents))
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s"/>`+"\n", strings.Join(pts, " "), colors[i%len(colors)])
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">GOMAXPROCS=%d, %s (%d passes)</text>`+"\n", w-280, 30+float64(i)*16, colors[i%len(colors)], k.procs, k.budget, s[0].Passes)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
