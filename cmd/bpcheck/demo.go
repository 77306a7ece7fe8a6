package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/pbnjay/memory"

	"bpcheck/btreeio"
	"bpcheck/gen"
	"bpcheck/pipeline"
)

const demoUsage = `Usage: bpcheck demo [--extents N] [--case NAME [--testdata DIR]] [--json]

Without --case: generates a small two-device bcachefs filesystem (format B,
metadata 1.36, replicas 2) with one fault of every kind bpcheck's generator
injects, in a temporary directory; checks it; prints the report, then what
the generator's manifest says should have been found; and removes it.

With --case NAME: decompresses that real filesystem from the shared test
data (e.g. corrupt-mixed, two devices made by bcachefs-tools v1.36.1 with
backpointers, extents and an alloc key deleted) instead, with the zstd
command (apt install zstd). The test data is found at --testdata,
$BPCHECK_TESTDATA or ../shared/testdata.
`

func runDemo(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("demo", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, demoUsage) }
	name := fl.String("case", "", "real test case to check instead of a generated filesystem")
	extents := fl.Int64("extents", 20000, "extents of the generated filesystem")
	dir := fl.String("testdata", "", "test data directory")
	asJSON := fl.Bool("json", false, "JSON Lines output")
	if code, ok := parseArgs(fl, args, stderr); !ok {
		return code
	}
	if *name == "" {
		if *extents < 1 {
			fmt.Fprintf(stderr, "bpcheck demo: --extents %d: want at least 1\n", *extents)
			return exitUsage
		}
		return demoGenerated(*extents, *asJSON, stdout, stderr)
	}
	td := *dir
	if td == "" {
		td = os.Getenv("BPCHECK_TESTDATA")
	}
	if td == "" {
		td = filepath.Join("..", "shared", "testdata")
	}
	caseDir := filepath.Join(td, "cases", *name)
	zsts, _ := filepath.Glob(filepath.Join(caseDir, "dev*.img.zst"))
	if len(zsts) == 0 {
		fmt.Fprintf(stderr, "bpcheck: no images in %s (set --testdata or BPCHECK_TESTDATA)\n", caseDir)
		return exitUsage
	}
	tmp, err := os.MkdirTemp("", "bpcheck-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		return exitOperational
	}
	defer os.RemoveAll(tmp)
	var paths []string
	for _, z := range zsts {
		out := filepath.Join(tmp, strings.TrimSuffix(filepath.Base(z), ".zst"))
		if err := decompress(z, out); err != nil {
			fmt.Fprintf(stderr, "bpcheck: %v\n", err)
			return exitOperational
		}
		paths = append(paths, out)
	}
	fmt.Fprintf(stderr, "bpcheck demo: checking %s (%d device(s), decompressed to %s)\n", caseDir, len(paths), tmp)
	return demoCheck(paths, *asJSON, stdout, stderr)
}

// demoCheck checks the demo's devices with the default options.
func demoCheck(paths []string, asJSON bool, stdout, stderr io.Writer) int {
	fs, err := btreeio.Open(paths)
	if err != nil {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		return exitCodeFor(err)
	}
	defer fs.Close()
	budget, _ := parseMemory("50%", memory.TotalMemory())
	return check(context.Background(), fs, pipeline.Options{Workers: runtime.GOMAXPROCS(0), MemoryBudget: budget}, checkOutput{json: asJSON}, stdout, stderr)
}

// decompress writes the zstd file src to dst (zero runs left as holes)
// with the zstd command, as ../shared/testdata's README does it. A Go
// decoder linked in here cost every bpcheck process its initialisers,
// ~0.7 ms of a small check's ~19 ms (docs/bench.md), for this one use.
func decompress(src, dst string) error {
	zstd, err := exec.LookPath("zstd")
	if err != nil {
		return fmt.Errorf("demo --case needs the zstd command to decompress %s (Debian: apt install zstd): %w", src, err)
	}
	cmd := exec.Command(zstd, "-d", "-q", "-f", "--long=27", "--sparse", "-o", dst, src)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("zstd -d %s: %w: %s", src, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// demoGenerated generates, checks and removes a small faulty filesystem.
func demoGenerated(extents int64, asJSON bool, stdout, stderr io.Writer) int {
	tmp, err := os.MkdirTemp("", "bpcheck-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "bpcheck: %v\n", err)
		return exitOperational
	}
	defer os.RemoveAll(tmp)
	inject := map[string]int{}
	for _, k := range gen.Kinds {
		if !gen.NeedsEC(k) { // the demo writes no stripes
			inject[k] = 1
		}
	}
	p := gen.Params{Devices: 2, Replicas: 2, DeviceSize: 1 << 30, Extents: extents, Seed: 1, Inject: inject}
	if extents > 20000 {
		p.DeviceSize = 0 // as large as the extents need (gen's default)
	}
	m, err := gen.Generate(tmp, p)
	if err != nil {
		fmt.Fprintf(stderr, "bpcheck: generate: %v\n", err)
		return exitOperational
	}
	paths := []string{filepath.Join(tmp, "dev0.img"), filepath.Join(tmp, "dev1.img")}
	fmt.Fprintf(stderr, "bpcheck demo: generated a 2-device filesystem with %d extents and faults that should give %d findings, in %s\n", extents, len(m.Findings), tmp)
	code := demoCheck(paths, asJSON, stdout, stderr)
	if !asJSON {
		counts := map[string]int{}
		for _, f := range m.Findings {
			counts[f.Code]++
		}
		fmt.Fprintf(stdout, "\nThe generator's manifest expects %d finding(s):\n", len(m.Findings))
		for _, c := range sortedCodes(counts) {
			fmt.Fprintf(stdout, "  %-34s %d\n", c, counts[c])
		}
	}
	return code
}

func sortedCodes(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
