// Command livecheck runs `bpcheck check --live` again and again on
// filesystem images while a real writer keeps them busy, and records what
// each check reported, for issue 17's judge: zero reported findings on a
// filesystem that the real fsck calls clean after the writer stops, and
// exactly the faults injected beforehand on one that has them.
//
//	go run ./bench/livecheck -bpcheck ./bpcheck -bcachefs /work/realtools/v1.36.1/bcachefs \
//	    -writer /work/realtools/v1.36.1/livewriter -seconds 30
//
// The writer (livewriter, a C program on the bcachefs-tools library; not
// in this repository, see bench/README.md) opens the images read-write
// in-process and creates, appends, overwrites, truncates and deletes
// files with journal flushes. For 1 and 2 devices, clean and with two
// backpointers of files the writer never touches deleted beforehand
// (bcachefs delete-key), it formats fresh images, starts the writer for
// -seconds and runs checks back to back until it exits; then it runs the
// real `fsck -n` and one plain check on the final images. It prints one
// line per configuration and writes every check's JSON summary to -out.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

type summary struct {
	Findings int            `json:"findings"`
	ByCode   map[string]int `json:"by_code"`
	Errors   int            `json:"errors"`
	ExitCode int            `json:"exit_code"`
	Seconds  float64        `json:"seconds"`
	Live     *struct {
		Transient       int            `json:"transient"`
		TransientByCode map[string]int `json:"transient_by_code"`
		Scans           int            `json:"scans"`
		NodeRetries     int64          `json:"node_retries"`
		Recovered       int64          `json:"node_retries_recovered"`
		DirectReads     int64          `json:"direct_reads"`
		Idle            bool           `json:"idle"`
	} `json:"live"`
}

type finding struct {
	Code string `json:"code"`
	BP   string `json:"bp"`
	Pos  string `json:"pos"`
}

func main() {
	bpcheck := flag.String("bpcheck", "bpcheck", "the bpcheck binary")
	bcachefs := flag.String("bcachefs", "/work/realtools/v1.36.1/bcachefs", "the real bcachefs tool (format, delete-key, list, fsck)")
	writer := flag.String("writer", "/work/realtools/v1.36.1/livewriter", "the real writer")
	seconds := flag.Float64("seconds", 30, "how long the writer runs per configuration")
	out := flag.String("out", "", "directory for the images and the JSON summaries (default: a temporary one)")
	size := flag.String("size", "64M", "size of each image")
	wopt := flag.String("writer-opts", "--files 600 --max-blocks 2 --mutations 30", "writer options")
	copt := flag.String("check-opts", "", "more options of the live checks (e.g. --max-read-rate 2M to make each scan last longer)")
	flag.Parse()
	dir := *out
	if dir == "" {
		d, err := os.MkdirTemp("", "livecheck")
		if err != nil {
			log.Fatal(err)
		}
		dir = d
	}
	static := filepath.Join(dir, "static")
	must(os.MkdirAll(static, 0o755))
	for i := range 3 {
		var b strings.Builder
		for j := range 3000 {
			fmt.Fprintf(&b, "static %d line %d the quick brown fox\n", i, j)
		}
		must(os.WriteFile(filepath.Join(static, fmt.Sprintf("s%d.txt", i)), []byte(b.String()), 0o644))
	}
	fmt.Printf("%-16s %6s %9s %10s %10s %8s %8s %9s %9s  %s\n", "config", "checks", "reported", "transient", "rescans", "retries", "recover", "scan s", "wall s", "after the writer: real fsck -n / plain check")
	for _, devs := range []int{1, 2} {
		for _, faulted := range []bool{false, true} {
			name := fmt.Sprintf("%d-dev-%s", devs, map[bool]string{false: "clean", true: "faulted"}[faulted])
			runConfig(dir, name, devs, faulted, static, *bpcheck, *bcachefs, *writer, *size, *seconds, strings.Fields(*wopt), strings.Fields(*copt))
		}
	}
}

func runConfig(dir, name string, devs int, faulted bool, static, bpcheck, bcachefs, writer, size string, seconds float64, wopt, copt []string) {
	cdir := filepath.Join(dir, name)
	must(os.RemoveAll(cdir))
	must(os.MkdirAll(cdir, 0o755))
	var imgs []string
	for d := range devs {
		p := filepath.Join(cdir, fmt.Sprintf("dev%d.img", d))
		run("truncate", "-s", size, p)
		imgs = append(imgs, p)
	}
	fargs := []string{"format", "--force"}
	if devs > 1 {
		fargs = append(fargs, "--replicas=2")
	}
	run(bcachefs, append(fargs, imgs...)...)
	run(writer, append(append(append([]string{}, wopt...), "--seconds", "0.5", "--seed", "1", "--static", static), imgs...)...)
	var want []string
	if faulted {
		want = injectFaults(bcachefs, imgs)
	}
	wargs := append(append(append([]string{}, wopt...), "--seconds", fmt.Sprint(seconds), "--seed", fmt.Sprint(time.Now().UnixNano()%1000), "--static", static), imgs...)
	w := exec.Command(writer, wargs...)
	var wlog bytes.Buffer
	w.Stderr, w.Stdout = &wlog, &wlog
	must(w.Start())
	done := make(chan error, 1)
	go func() { done <- w.Wait() }()
	sums, err := os.Create(filepath.Join(cdir, "checks.jsonl"))
	must(err)
	defer sums.Close()
	var checks, reported, transient, rescans int
	var retries, recovered int64
	var secs float64
	wrong := map[string]int{}
	running := true
	start := time.Now()
	var elapsed time.Duration
	for running {
		select {
		case err := <-done:
			if err != nil {
				log.Fatalf("%s: writer: %v\n%s", name, err, wlog.String())
			}
			running = false
			continue
		default:
		}
		s, fs, code := check(bpcheck, imgs, true, copt...)
		elapsed = time.Since(start)
		b, _ := json.Marshal(s)
		fmt.Fprintf(sums, "%s\n", b)
		checks++
		secs += s.Seconds
		reported += s.Findings
		if s.Live != nil {
			transient += s.Live.Transient
			rescans += s.Live.Scans - 1
			retries += s.Live.NodeRetries
			recovered += s.Live.Recovered
		}
		got := ids(fs)
		if fmt.Sprint(got) != fmt.Sprint(want) || s.Errors > 0 {
			wrong[fmt.Sprintf("exit %d, findings %v, errors %d", code, got, s.Errors)]++
		}
	}
	verdict := fsckVerdict(bcachefs, imgs)
	ps, pf, _ := check(bpcheck, imgs, false)
	var wall float64
	if checks > 0 {
		wall = elapsed.Seconds() / float64(checks)
	}
	fmt.Printf("%-16s %6d %9d %10d %10d %8d %8d %9.3f %9.3f  fsck: %s; plain: %d finding(s) %v\n", name, checks, reported, transient, rescans, retries, recovered, secs/float64(max(checks, 1)), wall, verdict, ps.Findings, ids(pf))
	if len(wrong) > 0 {
		keys := make([]string, 0, len(wrong))
		for k := range wrong {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("    %d check(s) did not report exactly the injected faults (%v): %s\n", wrong[k], want, k)
		}
	}
}

// injectFaults deletes the first backpointer of static/s0.txt and the
// second of static/s2.txt, which the writer never changes, and returns
// the findings they must cause.
func injectFaults(bcachefs string, imgs []string) []string {
	dirents := output(bcachefs, append([]string{"list", "-b", "dirents"}, imgs...)...)
	ino := func(name string) string {
		m := regexp.MustCompile(`: ` + regexp.QuoteMeta(name) + ` -> (\d+) `).FindStringSubmatch(dirents)
		if m == nil {
			log.Fatalf("no dirent %s", name)
		}
		return m[1]
	}
	bps := output(bcachefs, append([]string{"list", "-b", "backpointers"}, imgs...)...)
	var del []string
	var want []string
	for _, f := range []struct {
		ino string
		nth int
	}{{ino("s0.txt"), 0}, {ino("s2.txt"), 1}} {
		var hits []string
		sc := bufio.NewScanner(strings.NewReader(bps))
		for sc.Scan() {
			if strings.Contains(sc.Text(), " pos="+f.ino+":") {
				hits = append(hits, sc.Text())
			}
		}
		if len(hits) <= f.nth {
			log.Fatalf("inode %s has %d backpointers", f.ino, len(hits))
		}
		fields := strings.Fields(hits[f.nth])
		pos := fields[4]
		del = append(del, "-b", "backpointers", "-p", pos)
		want = append(want, "ptr_to_missing_backpointer "+pos)
	}
	run(bcachefs, append(append([]string{"delete-key"}, del...), imgs...)...)
	sort.Strings(want)
	return want
}

// check runs one check and returns its summary, findings and exit code.
func check(bpcheck string, imgs []string, live bool, more ...string) (summary, []finding, int) {
	args := []string{"check", "--json", "--no-progress"}
	if live {
		args = append(args, "--live")
	}
	args = append(args, more...)
	c := exec.Command(bpcheck, append(args, imgs...)...)
	var out bytes.Buffer
	c.Stdout = &out
	c.Stderr = os.Stderr
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		log.Fatal(err)
	}
	var s summary
	var fs []finding
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var m struct {
			Type string `json:"message_type"`
		}
		_ = json.Unmarshal(sc.Bytes(), &m)
		switch m.Type {
		case "summary":
			must(json.Unmarshal(sc.Bytes(), &s))
		case "finding":
			var f finding
			must(json.Unmarshal(sc.Bytes(), &f))
			fs = append(fs, f)
		}
	}
	return s, fs, code
}

func ids(fs []finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code+" "+f.BP)
	}
	sort.Strings(out)
	return out
}

// fsckVerdict runs the real fsck -n and sums up what it says beyond the
// inode sector counts the writer's copy_fs leaves wrong.
func fsckVerdict(bcachefs string, imgs []string) string {
	c := exec.Command(bcachefs, append([]string{"fsck", "-n"}, imgs...)...)
	b, _ := c.CombinedOutput()
	code := c.ProcessState.ExitCode()
	counts := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(line, "incorrect i_sectors"):
			counts["i_sectors (writer)"]++
		case strings.Contains(line, "missing backpointer"), strings.Contains(line, "buckets with no backpointers"),
			strings.Contains(line, "backpointer"), strings.Contains(line, "alloc key"), strings.Contains(line, "bucket"):
			counts[strings.TrimSpace(line)]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, counts[k]))
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing")
	}
	return fmt.Sprintf("exit %d, %s", code, strings.Join(parts, "; "))
}

func run(name string, args ...string) {
	c := exec.Command(name, args...)
	if b, err := c.CombinedOutput(); err != nil {
		log.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
}

func output(name string, args ...string) string {
	c := exec.Command(name, args...)
	b, err := c.Output()
	if err != nil {
		log.Fatalf("%s %v: %v", name, args, err)
	}
	return string(b)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
