// Command realfsck checks the generator against the real bcachefs fsck:
// it generates filesystems with package gen (several shapes, with and
// without erasure coding, and one per fault kind), runs a bcachefs fsck
// binary on each (`fsck -n -K`, read-only), and reports whether the real
// tool accepts the fault-free images (exit 0) and names each injected
// fault as bpcheck does. It needs a bcachefs-tools build of the version
// gen writes (v1.36.1), which is not part of this repository:
//
//	go run ./bench/realfsck -fsck /usr/sbin/bcachefs
//
// The fault-free images are the generator's bar (docs/bench.md, gen/README.md).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"bpcheck/gen"
)

// shape is one fault-free filesystem to generate.
type shape struct {
	name string
	p    gen.Params
}

var shapes = []shape{
	{"1dev", gen.Params{Devices: 1, Extents: 2000, Seed: 1}},
	{"2dev-replicas2", gen.Params{Devices: 2, Replicas: 2, Extents: 20000, Seed: 2}},
	{"3dev-ec", gen.Params{Devices: 3, Replicas: 1, Extents: 2000, ECStripes: 4, Seed: 3}},
	{"4dev-replicas2-100k", gen.Params{Devices: 4, Replicas: 2, DeviceSize: 16 << 30, Extents: 100000, Seed: 4}},
}

// faultText is what the real fsck prints for each fault kind ("" when it
// is silent about it; see gen/README.md); "|" separates texts that must
// all appear.
var faultText = map[string]string{
	gen.KindMissingBP:             "missing backpointer",
	gen.KindDanglingBP:            "backpointer doesn't match extent it points to",
	gen.KindWrongBP:               "missing backpointer|backpointer doesn't match extent it points to",
	gen.KindMissingAlloc:          "backpointer for nonexistent alloc key",
	gen.KindMissingDevice:         "backpointer for missing device",
	gen.KindWrongDirty:            "has wrong dirty_sectors",
	gen.KindMissingNodeBP:         "missing backpointer",
	gen.KindDupBadCsum:            "extents pointing to same space, but first extent checksum bad",
	gen.KindWrongStripeSectors:    "has wrong stripe_sectors",
	gen.KindWrongParitySectors:    "has wrong dirty_sectors",
	gen.KindMissingStripeBP:       "",
	gen.KindWrongStripeBlockCount: "has wrong sector count",
}

func main() {
	fsck := flag.String("fsck", "", "bcachefs binary (bcachefs-tools v1.36.1)")
	keep := flag.String("keep", "", "directory for the images (kept); default a temp dir, removed")
	timeout := flag.Duration("timeout", 2*time.Minute, "time limit per fsck run")
	flag.Parse()
	if *fsck == "" {
		fmt.Fprintln(os.Stderr, "usage: realfsck -fsck /path/to/bcachefs [-keep DIR]")
		os.Exit(16)
	}
	base := *keep
	if base == "" {
		var err error
		if base, err = os.MkdirTemp("", "bpcheck-realfsck-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(8)
		}
		defer os.RemoveAll(base)
	}
	bad := 0
	fmt.Println("| image | faults | real fsck exit | expected | verdict |")
	fmt.Println("|---|---|---:|---|---|")
	for _, s := range shapes {
		code, out, err := genAndCheck(*fsck, filepath.Join(base, s.name), s.p, *timeout)
		ok := err == nil && code == 0
		if !ok {
			bad++
		}
		fmt.Printf("| %s | none | %d | exit 0 | %s |\n", s.name, code, verdict(ok, err, out))
	}
	for _, k := range gen.Kinds {
		p := gen.Params{Devices: 2, Replicas: 2, Extents: 3000, Seed: 11, Inject: map[string]int{k: 1}}
		if gen.NeedsEC(k) {
			p = gen.Params{Devices: 3, Replicas: 1, Extents: 2000, ECStripes: 8, Seed: 11, Inject: map[string]int{k: 1}}
		}
		code, out, err := genAndCheck(*fsck, filepath.Join(base, "fault-"+k), p, *timeout)
		want := faultText[k]
		var ok bool
		switch {
		case err != nil:
		case want == "":
			ok = code == 0 // the real fsck is silent about this one
		default:
			ok = true
			for _, w := range strings.Split(want, "|") {
				ok = ok && strings.Contains(out, w)
			}
		}
		if !ok {
			bad++
		}
		exp := fmt.Sprintf("%q", strings.ReplaceAll(want, "|", `" and "`))
		if want == "" {
			exp = "silent (exit 0)"
		}
		shape := fmt.Sprintf("%ddev-replicas%d", p.Devices, p.Replicas)
		if p.ECStripes > 0 {
			shape = fmt.Sprintf("%ddev-ec", p.Devices)
		}
		fmt.Printf("| %s | %s=1 | %d | %s | %s |\n", shape, k, code, exp, verdict(ok, err, out))
	}
	if bad > 0 {
		fmt.Printf("\n%d image(s) did not behave as expected\n", bad)
		os.Exit(4)
	}
}

func verdict(ok bool, err error, out string) string {
	switch {
	case err != nil:
		return "error: " + err.Error()
	case ok:
		return "as expected"
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return "NOT as expected: " + strings.Join(lines, " / ")
}

// genAndCheck generates p into dir and runs the real fsck on it.
func genAndCheck(fsck, dir string, p gen.Params, timeout time.Duration) (int, string, error) {
	if _, err := gen.Generate(dir, p); err != nil {
		return -1, "", fmt.Errorf("generate: %w", err)
	}
	p = p.WithDefaults()
	// As the test cases' fsck_command: -n (no changes), -K (no kernel
	// module), and check_backpointers_to_extents, which v1.36 runs only
	// when asked.
	args := []string{"fsck", "-n", "-K", "-o", "recovery_passes=check_backpointers_to_extents"}
	for i := 0; i < p.Devices; i++ {
		args = append(args, fmt.Sprintf("dev%d.img", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	name, cmdArgs := fsck, args
	if sb, err := exec.LookPath("stdbuf"); err == nil {
		// Unbuffered, so that a run cut by the time limit keeps its output.
		name, cmdArgs = sb, append([]string{"-o0", "-e0", fsck}, args...)
	}
	cmd := exec.CommandContext(ctx, name, cmdArgs...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok && ctx.Err() == nil {
		return ee.ExitCode(), out.String(), nil
	}
	if ctx.Err() != nil {
		// Cut by the time limit (exit -1 in the table): judged on its
		// output. v1.36.1 does not finish on the dup_bad_csum image.
		return -1, out.String(), nil
	}
	return 0, out.String(), err
}
