// Command throughput times `bpcheck check` on a list of filesystem images,
// real and generated, and plots extents per second against extents: the
// plot of docs/bench.md's "Throughput against size" (issue 18).
//
//	go run ./bench/throughput -runs 5 -out docs/throughput \
//	    'real 1.36=/big/r136-s.img' 'real 1.36=/big/r136.img' \
//	    'generated=/tmp/g1m/dev0.img:/tmp/g1m/dev1.img'
//
// Each argument is SERIES=DEVICE[:DEVICE...]: images of one series are
// joined by a line, in order of their extent counts. bpcheck is built as
// README.md says (static) unless -bin names a binary. Every image is
// checked -runs times, round after round, so that all see the same host
// load; for each it records the median of the check's own time (the
// summary's "seconds") and of the whole process's wall time, and the
// extents/s of both. It writes OUT.json, OUT.svg and a Markdown table
// on standard output.
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
	"strings"
	"time"

	"bpcheck/bench/internal/bpbuild"
)

// point is one image's figures.
type point struct {
	Series     string    `json:"series"`
	Devices    []string  `json:"devices"`
	Extents    int64     `json:"extents"`
	Version    string    `json:"version"`
	CheckS     []float64 `json:"check_seconds"`
	WholeS     []float64 `json:"whole_seconds"`
	MedCheckS  float64   `json:"median_check_seconds"`
	MedWholeS  float64   `json:"median_whole_seconds"`
	CheckRate  float64   `json:"extents_per_s_check"`
	WholeRate  float64   `json:"extents_per_s_whole"`
	Findings   int       `json:"findings"`
	NodeBytes  int64     `json:"node_bytes"`
	LoadBytes  int64     `json:"load_bytes"`
	GOMAXPROCS int       `json:"gomaxprocs"`
}

func main() {
	bin := flag.String("bin", "", "bpcheck binary (default: built static from ./cmd/bpcheck)")
	runs := flag.Int("runs", 5, "checks per image, round after round")
	out := flag.String("out", "docs/throughput", "write OUT.json and OUT.svg")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: throughput [-runs N] [-out PREFIX] SERIES=DEV[:DEV...] ...")
		os.Exit(2)
	}
	if err := run(*bin, *runs, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "throughput:", err)
		os.Exit(1)
	}
}

func run(bin string, runs int, out string, specs []string) error {
	if bin == "" {
		dir, err := os.MkdirTemp("", "bpcheck-throughput-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "bpcheck")
		if err := bpbuild.Static(bin); err != nil {
			return err
		}
	}
	var pts []*point
	for _, s := range specs {
		series, devs, ok := strings.Cut(s, "=")
		if !ok || devs == "" {
			return fmt.Errorf("%q: want SERIES=DEVICE[:DEVICE...]", s)
		}
		pts = append(pts, &point{Series: series, Devices: strings.Split(devs, ":"), GOMAXPROCS: runtime.GOMAXPROCS(0)})
	}
	// One untimed check of each: images and binary in the page cache.
	for _, p := range pts {
		if _, _, err := check(bin, p); err != nil {
			return err
		}
	}
	for r := 0; r < runs; r++ {
		for _, p := range pts {
			cs, ws, err := check(bin, p)
			if err != nil {
				return err
			}
			p.CheckS = append(p.CheckS, cs)
			p.WholeS = append(p.WholeS, ws)
		}
	}
	for _, p := range pts {
		p.MedCheckS, p.MedWholeS = median(p.CheckS), median(p.WholeS)
		p.CheckRate = float64(p.Extents) / p.MedCheckS
		p.WholeRate = float64(p.Extents) / p.MedWholeS
	}
	fmt.Printf("| series | image | version | extents | check alone (median) | extents/s | whole process (median) | extents/s |\n|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, p := range pts {
		fmt.Printf("| %s | %s | %s | %d | %.1f ms | %.2f M | %.1f ms | %.2f M |\n", p.Series, imageName(p.Devices[0]), p.Version,
			p.Extents, p.MedCheckS*1000, p.CheckRate/1e6, p.MedWholeS*1000, p.WholeRate/1e6)
	}
	js, _ := json.MarshalIndent(pts, "", " ")
	if err := os.WriteFile(out+".json", js, 0o644); err != nil {
		return err
	}
	return os.WriteFile(out+".svg", []byte(plot(pts)), 0o644)
}

// check runs one `bpcheck check --json` and returns the check's own time
// and the whole process's wall time.
func check(bin string, p *point) (checkS, wholeS float64, err error) {
	args := append([]string{"check", "--json"}, p.Devices...)
	cmd := exec.Command(bin, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	start := time.Now()
	err = cmd.Run()
	wholeS = time.Since(start).Seconds()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 4 {
		err = nil // findings: a faulty image is timed like any other
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", strings.Join(p.Devices, ":"), err)
	}
	lines := bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n"))
	var s struct {
		Seconds   float64 `json:"seconds"`
		Extents   int64   `json:"extents"`
		Findings  int     `json:"findings"`
		Version   string  `json:"version"`
		NodeBytes int64   `json:"node_bytes"`
		LoadBytes int64   `json:"load_bytes"`
	}
	if err := json.Unmarshal(lines[len(lines)-1], &s); err != nil || s.Seconds == 0 {
		return 0, 0, fmt.Errorf("%s: no summary in bpcheck's output", strings.Join(p.Devices, ":"))
	}
	p.Extents, p.Findings, p.Version, p.NodeBytes, p.LoadBytes = s.Extents, s.Findings, s.Version, s.NodeBytes, s.LoadBytes
	return s.Seconds, wholeS, nil
}

// imageName names an image by its file, or by its directory when the
// file is a generated devN.img.
func imageName(path string) string {
	b := filepath.Base(path)
	if strings.HasPrefix(b, "dev") && strings.HasSuffix(b, ".img") {
		return filepath.Base(filepath.Dir(path)) + "/" + b
	}
	return b
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// plot draws extents/s against extents (log scale): per series a solid
// line for the check alone and a dashed one for the whole process.
func plot(pts []*point) string {
	var names []string
	series := map[string][]*point{}
	maxY, minX, maxX := 1.0, math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		if _, ok := series[p.Series]; !ok {
			names = append(names, p.Series)
		}
		series[p.Series] = append(series[p.Series], p)
		maxY = math.Max(maxY, math.Max(p.CheckRate, p.WholeRate))
		minX = math.Min(minX, math.Log10(float64(max(p.Extents, 1))))
		maxX = math.Max(maxX, math.Log10(float64(max(p.Extents, 1))))
	}
	minX, maxX = math.Floor(minX), math.Ceil(maxX)
	if maxX == minX {
		maxX++
	}
	maxY = math.Ceil(maxY/1e6) * 1e6
	const w, h, l, r, top, bo = 860.0, 400.0, 70.0, 320.0, 20.0, 44.0
	x := func(v int64) float64 { return l + (math.Log10(float64(max(v, 1)))-minX)/(maxX-minX)*(w-l-r) }
	y := func(v float64) float64 { return h - bo - v/maxY*(h-bo-top) }
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n",
		l, h-bo, w-r, h-bo, l, top, l, h-bo)
	steps := int(maxY / 1e6)
	for i := 0; i <= steps; i++ {
		v := float64(i) * 1e6
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%dM</text>`+"\n",
			l, y(v), w-r, y(v), l-4, y(v)+4, i)
	}
	for e := minX; e <= maxX; e++ {
		px := l + (e-minX)/(maxX-minX)*(w-l-r)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="black"/><text x="%.1f" y="%.0f" text-anchor="middle">10^%.0f</text>`+"\n",
			px, h-bo, px, h-bo+4, px, h-bo+16, e)
	}
	fmt.Fprintf(&b, `<text x="10" y="14">extents per second (2 vCPUs, warm page cache)</text><text x="%.0f" y="%.0f" text-anchor="middle">extents in the filesystem (log scale)</text>`+"\n", (l+w-r)/2, h-10)
	for i, name := range names {
		s := series[name]
		sort.Slice(s, func(a, c int) bool { return s[a].Extents < s[c].Extents })
		col := colors[i%len(colors)]
		var solid, dashed []string
		for _, p := range s {
			solid = append(solid, fmt.Sprintf("%.1f,%.1f", x(p.Extents), y(p.CheckRate)))
			dashed = append(dashed, fmt.Sprintf("%.1f,%.1f", x(p.Extents), y(p.WholeRate)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/><circle cx="%.1f" cy="%.1f" r="3" fill="white" stroke="%s"/>`+"\n",
				x(p.Extents), y(p.CheckRate), col, x(p.Extents), y(p.WholeRate), col)
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", strings.Join(solid, " "), col)
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-dasharray="4 3"/>`+"\n", strings.Join(dashed, " "), col)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">%s</text>`+"\n", w-r+16, top+16+float64(i)*16, col, name)
	}
	ly := top + 24 + float64(len(names))*16
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black" stroke-width="1.5"/><text x="%.0f" y="%.0f">the check alone (summary's seconds)</text>`+"\n",
		w-r+16, ly, w-r+40, ly, w-r+46, ly+4)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black" stroke-dasharray="4 3"/><text x="%.0f" y="%.0f">whole process (start to exit)</text>`+"\n",
		w-r+16, ly+16, w-r+40, ly+16, w-r+46, ly+20)
	b.WriteString("</svg>\n")
	return b.String()
}
