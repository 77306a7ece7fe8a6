// Command fsckpasses times the recovery passes of a bcachefs fsck run, for
// setting bpcheck's figures beside the real tool's on the same machine and
// image. It runs the command given after "--", reads its merged output as
// it comes, and takes the wall time from each "pass..." line to its
// " done" as the pass's time; run the fsck with unbuffered output
// (stdbuf -o0 -e0), or the lines arrive together at exit.
//
//	go run ./bench/fsckpasses -runs 3 -- stdbuf -o0 -e0 \
//	    bcachefs fsck -n -K -o recovery_passes=check_backpointers_to_extents dev0.img
//
// It prints one JSON object: the median wall seconds, exit code and the
// median milliseconds of every pass, plus "bp_passes_ms", the sum of
// check_btree_backpointers, check_extents_to_backpointers and
// check_backpointers_to_extents (the passes bpcheck check does), and
// "bp_alloc_passes_ms", that sum plus check_allocations (which bpcheck's
// alloc comparison also covers).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"time"
)

var (
	startRE = regexp.MustCompile(`(?:^|\n)([a-z_0-9]+)\.\.\.`)
	doneRE  = regexp.MustCompile(` done(?: \(|\r?\n)`) // v1.36 prints "done (N seconds)", v1.9 "done"
)

// run times one execution: pass name → milliseconds.
func run(args []string) (map[string]float64, float64, int, error) {
	cmd := exec.Command(args[0], args[1:]...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, 0, err
	}
	waitErr := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); waitErr <- err }()
	passes := map[string]float64{}
	var buf []byte
	cur, curStart := "", time.Time{}
	r := bufio.NewReader(pr)
	chunk := make([]byte, 64<<10)
	for {
		n, err := r.Read(chunk)
		now := time.Now()
		buf = append(buf, chunk[:n]...)
		for {
			if cur == "" {
				m := startRE.FindSubmatchIndex(buf)
				if m == nil {
					break
				}
				cur, curStart = string(buf[m[2]:m[3]]), now
				buf = buf[m[1]:]
				continue
			}
			m := doneRE.FindIndex(buf)
			if m == nil {
				break
			}
			passes[cur] = float64(now.Sub(curStart).Microseconds()) / 1000
			cur = ""
			buf = buf[m[1]:]
		}
		if len(buf) > 1<<20 {
			buf = buf[len(buf)-4096:]
		}
		if err != nil {
			break
		}
	}
	err := <-waitErr
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code, err = ee.ExitCode(), nil
	}
	return passes, time.Since(t0).Seconds(), code, err
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

func main() {
	runs := flag.Int("runs", 3, "runs; medians are reported")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: fsckpasses [-runs N] -- COMMAND ARGS...")
		os.Exit(16)
	}
	per := map[string][]float64{}
	var walls []float64
	code := 0
	for i := 0; i < *runs; i++ {
		p, wall, c, err := run(args)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fsckpasses:", err)
			os.Exit(8)
		}
		walls, code = append(walls, wall), c
		for k, v := range p {
			per[k] = append(per[k], v)
		}
	}
	out := map[string]any{"runs": *runs, "exit_code": code, "wall_s": math.Round(median(walls)*1000) / 1000}
	ms := map[string]float64{}
	for k, v := range per {
		ms[k] = round1(median(v))
	}
	out["pass_ms"] = ms
	bpSum := ms["check_btree_backpointers"] + ms["check_extents_to_backpointers"] + ms["check_backpointers_to_extents"]
	out["bp_passes_ms"] = round1(bpSum)
	out["bp_alloc_passes_ms"] = round1(bpSum + ms["check_allocations"])
	b, _ := json.MarshalIndent(out, "", " ")
	fmt.Println(string(b))
}
