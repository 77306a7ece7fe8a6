// Command encbench times `bpcheck check` (pipeline.Run) on an encrypted
// filesystem against the same filesystem unencrypted: package gen writes
// both from the same parameters (same seed and shape; the encrypted one
// with --encrypted and a passphrase), once, into a cache directory that
// later runs reuse. The check runs alternate between the two (plain,
// encrypted, encrypted, plain, …) so that a change in the machine's load
// hits both alike; each side reports the median, min and max of its wall
// and CPU times, ns per check, extents/s, and the ratio of the medians
// (and the median of the per-round ratios). It also measures ChaCha20 and
// Poly1305 alone (package csum, one node-sized buffer at a time), to say
// how much of the difference the cipher's own speed explains.
//
//	go run ./bench/encbench                        # 1 M extents, 15 rounds
//	go run ./bench/encbench -extents 100000 -rounds 3
//
// The images are sparse (about 0.4 GB of metadata per side at 1 M
// extents); -dir keeps them somewhere else than the temp directory,
// -regen writes them again. Opening the devices, unsealing the key
// (scrypt, timed once and reported apart) and loading the roots are not
// in the timed check: they are done before each timed run, as
// pipeline's BenchmarkCheck does. Page cache warm: one untimed check of
// each side comes first.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"bpcheck/aio"
	"bpcheck/btreeio"
	"bpcheck/csum"
	"bpcheck/gen"
	"bpcheck/pipeline"
)

const passphrase = "correct horse battery"

type side struct {
	name  string
	dir   string
	p     gen.Params
	m     *gen.Manifest
	pkey  *csum.Key // the passphrase's key (encrypted side)
	wall  []time.Duration
	cpu   []time.Duration
	stats pipeline.Stats
	finds int
}

func main() {
	extents := flag.Int64("extents", 1000000, "extents of the filesystem")
	devices := flag.Int("devices", 2, "member devices")
	replicas := flag.Int("replicas", 2, "replicas")
	devSize := flag.String("device-size", "64G", "size of each device (sparse)")
	seed := flag.Uint64("seed", 1, "seed")
	rounds := flag.Int("rounds", 15, "timed checks of each side (alternating)")
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "check workers")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "bpcheck-encbench"), "cache directory of the images")
	regen := flag.Bool("regen", false, "write the images again")
	cipherMB := flag.Int("cipher-mb", 256, "MiB to push through ChaCha20 and Poly1305 for their throughput")
	flag.Parse()

	size, err := gen.ParseSize(*devSize)
	if err != nil {
		fail(err)
	}
	base := gen.Params{Devices: *devices, Replicas: *replicas, DeviceSize: size, Extents: *extents, Seed: *seed}
	enc := base
	enc.Encrypted, enc.Passphrase = true, passphrase
	shape := fmt.Sprintf("%dext-%ddev-r%d-%s-seed%d", *extents, *devices, *replicas, *devSize, *seed)
	sides := []*side{
		{name: "plain", dir: filepath.Join(*dir, shape, "plain"), p: base},
		{name: "encrypted", dir: filepath.Join(*dir, shape, "encrypted"), p: enc},
	}
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel())
	fmt.Printf("filesystem: %s, %d extents, %d device(s) of %s, replicas %d, seed %d\n", shape, *extents, *devices, *devSize, *replicas, *seed)
	for _, s := range sides {
		if s.m, err = ensure(s.dir, s.p, *regen); err != nil {
			fail(fmt.Errorf("%s: %w", s.name, err))
		}
		fmt.Printf("  %-9s %s: metadata %d bytes\n", s.name, s.dir, s.m.MetadataBytes)
	}

	// The passphrase's key, once (scrypt, as `bpcheck check
	// --passphrase-file` pays it once per run).
	{
		fs, err := open(sides[1], nil)
		if err != nil {
			fail(err)
		}
		t0 := time.Now()
		k, err := fs.SB.Crypt.PassphraseKey([]byte(passphrase))
		if err != nil {
			fail(err)
		}
		fmt.Printf("unsealing the key: scrypt %s (once per check run, not in the times below)\n", fs.SB.Crypt.String())
		fmt.Printf("  scrypt took %.3f s\n", time.Since(t0).Seconds())
		fs.Close()
		sides[1].pkey = &k
	}

	opt := pipeline.Options{Workers: *workers, Prefetch: pipeline.DefaultPrefetch, Async: true, AsyncBackend: aio.Auto}
	// Warm-up: the page cache, and the findings every timed run must
	// repeat.
	for _, s := range sides {
		res, _, err := check(s, opt)
		if err != nil {
			fail(fmt.Errorf("%s: %w", s.name, err))
		}
		if len(res.Errors) > 0 || len(res.Findings) != len(s.m.Findings) || res.Stats.Extents != s.m.Extents {
			fail(fmt.Errorf("%s: warm-up check: %d errors, %d findings (manifest %d), %d extents (manifest %d)",
				s.name, len(res.Errors), len(res.Findings), len(s.m.Findings), res.Stats.Extents, s.m.Extents))
		}
		s.stats, s.finds = res.Stats, len(res.Findings)
	}
	// The same extents; the encrypted side has more metadata (crc64
	// entries of 80-bit MACs, key versions in the packed keys), so more
	// nodes and node pointers.
	if a, b := sides[0].stats, sides[1].stats; a.Extents != b.Extents {
		fail(fmt.Errorf("the two sides differ: plain %d extents, encrypted %d", a.Extents, b.Extents))
	}
	for _, s := range sides {
		st := &s.stats
		fmt.Printf("  %-9s check reads %d nodes with pointers (%d bytes) and %d backpointer/alloc leaves (%d bytes); %d pointers, %d backpointers, %d alloc keys\n",
			s.name, st.Nodes, st.NodeBytes, st.LoadNodes, st.LoadBytes, st.Pointers, st.Backpointers, st.AllocKeys)
	}
	var ratios []float64
	for r := 0; r < *rounds; r++ {
		order := []*side{sides[0], sides[1]}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		var w [2]time.Duration
		for _, s := range order {
			res, cpu, err := check(s, opt)
			if err != nil {
				fail(fmt.Errorf("%s: %w", s.name, err))
			}
			if len(res.Findings) != s.finds || res.Stats.Extents != s.stats.Extents || len(res.Errors) > 0 {
				fail(fmt.Errorf("%s: round %d checked something else than the warm-up", s.name, r))
			}
			s.wall = append(s.wall, res.Duration)
			s.cpu = append(s.cpu, cpu)
			if s == sides[0] {
				w[0] = res.Duration
			} else {
				w[1] = res.Duration
			}
		}
		ratios = append(ratios, w[1].Seconds()/w[0].Seconds())
		fmt.Printf("round %d: plain %.3f s, encrypted %.3f s (ratio %.2f)\n", r+1, w[0].Seconds(), w[1].Seconds(), ratios[r])
	}

	fmt.Printf("\n| side | wall median (min–max) | CPU median (min–max) | ns/op (median) | extents/s (median wall) | metadata read per check |\n|---|---|---|---:|---:|---:|\n")
	for _, s := range sides {
		wm, wl, wh := stat(s.wall)
		cm, cl, ch := stat(s.cpu)
		read := s.stats.NodeBytes + s.stats.LoadBytes
		fmt.Printf("| %s | %.3f s (%.3f–%.3f) | %.3f s (%.3f–%.3f) | %d | %.3g | %.1f MB |\n", s.name, wm.Seconds(), wl.Seconds(), wh.Seconds(),
			cm.Seconds(), cl.Seconds(), ch.Seconds(), wm.Nanoseconds(), float64(s.stats.Extents)/wm.Seconds(), float64(read)/1e6)
	}
	pw, _, _ := stat(sides[0].wall)
	ew, _, _ := stat(sides[1].wall)
	pc, _, _ := stat(sides[0].cpu)
	ec, _, _ := stat(sides[1].cpu)
	_, pwMin, _ := stat(sides[0].wall)
	_, ewMin, _ := stat(sides[1].wall)
	sort.Float64s(ratios)
	fmt.Printf("\nratio encrypted/plain: wall %.2f (medians), %.2f (minimums), per-round median %.2f (min %.2f, max %.2f); CPU %.2f (medians)\n",
		ew.Seconds()/pw.Seconds(), ewMin.Seconds()/pwMin.Seconds(), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1], ec.Seconds()/pc.Seconds())

	// The cipher alone.
	chacha, poly := cipherSpeed(*cipherMB << 20)
	read := float64(sides[1].stats.NodeBytes + sides[1].stats.LoadBytes)
	cost := read/chacha + read/poly
	fmt.Printf("\ncipher alone (csum, 256 KiB buffers, one core): ChaCha20 %.0f MB/s, Poly1305 %.0f MB/s, both %.0f MB/s\n",
		chacha/1e6, poly/1e6, 1/(1/chacha+1/poly)/1e6)
	fmt.Printf("one check decrypts and MACs %.1f MB: %.3f s of one core at that speed; measured extra CPU %.3f s, extra wall %.3f s (%d workers)\n",
		read/1e6, cost, (ec - pc).Seconds(), (ew - pw).Seconds(), *workers)
}

// ensure generates p into dir unless a manifest with the same
// parameters is there.
func ensure(dir string, p gen.Params, regen bool) (*gen.Manifest, error) {
	if !regen {
		if b, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err == nil {
			var m gen.Manifest
			want := p.WithDefaults()
			if json.Unmarshal(b, &m) == nil && sameParams(m.Params, want) {
				return &m, nil
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	t0 := time.Now()
	m, err := gen.Generate(dir, p)
	if err != nil {
		return nil, err
	}
	fmt.Printf("  generated %s in %.1f s\n", dir, time.Since(t0).Seconds())
	return m, nil
}

func sameParams(a, b gen.Params) bool {
	a.Passphrase, b.Passphrase = "", ""
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func open(s *side, pkey *csum.Key) (*btreeio.FS, error) {
	var paths []string
	for _, f := range s.m.Files {
		paths = append(paths, filepath.Join(s.dir, f))
	}
	fs, err := btreeio.Open(paths)
	if err != nil {
		return nil, err
	}
	if pkey != nil {
		if err := fs.Unlock(pkey); err != nil {
			fs.Close()
			return nil, err
		}
	}
	return fs, nil
}

// check opens the side's filesystem (unlocked with the passphrase's key)
// and times one pipeline.Run: its wall time is res.Duration, its CPU time
// the process's user+system time around it.
func check(s *side, opt pipeline.Options) (*pipeline.Result, time.Duration, error) {
	fs, err := open(s, s.pkey)
	if err != nil {
		return nil, 0, err
	}
	defer fs.Close()
	if fs.KeySealed() && s.pkey == nil {
		return nil, 0, errors.New("sealed key and no passphrase")
	}
	if err := fs.LoadRoots(); err != nil {
		return nil, 0, err
	}
	runtime.GC()
	c0 := cpuTime()
	res, err := pipeline.Run(context.Background(), fs, opt)
	c1 := cpuTime()
	if err != nil {
		return nil, 0, err
	}
	return res, c1 - c0, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stat returns the median, min and max.
func stat(d []time.Duration) (med, lo, hi time.Duration) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[0], s[len(s)-1]
}

// cipherSpeed measures ChaCha20 (csum.Crypt) and Poly1305
// (csum.ComputeKeyed) in bytes per second over total bytes, one 256 KiB
// node-sized buffer at a time (a new nonce each, as for nodes), on one
// core; the best of three.
func cipherSpeed(total int) (chacha, poly float64) {
	var key csum.Key
	for i := range key {
		key[i] = byte(i*31 + 7)
	}
	buf := make([]byte, 256<<10)
	n := max(1, total/len(buf))
	best := func(f func(i int)) float64 {
		var b time.Duration
		for rep := 0; rep < 3; rep++ {
			t0 := time.Now()
			for i := 0; i < n; i++ {
				f(i)
			}
			if d := time.Since(t0); rep == 0 || d < b {
				b = d
			}
		}
		return float64(n*len(buf)) / b.Seconds()
	}
	chacha = best(func(i int) {
		csum.Crypt(&key, csum.Nonce{0, uint32(i), 0, csum.NonceBtree}, buf)
	})
	poly = best(func(i int) {
		if _, err := csum.ComputeKeyed(csum.ChaCha20Poly1305_128, &key, csum.Nonce{0, uint32(i), 0, csum.NonceBtree}, buf); err != nil {
			fail(err)
		}
	})
	return chacha, poly
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "?"
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "encbench:", err)
	os.Exit(1)
}
