// Command realfsck checks the generator against the real bcachefs fsck:
// it generates filesystems with package gen (several shapes, with and
// without erasure coding, and one per fault kind), runs a bcachefs fsck
// binary on each (`fsck -n -K`, read-only), and reports whether the real
// tool accepts the fault-free images (exit 0) and names each injected
// fault as bpcheck does. It needs a bcachefs-tools build of the era of
// the metadata version gen writes (v1.36.1 for 1.36, v1.25.3 for 1.28,
// v1.39.2 for 1.39), which is not part of this repository:
//
//	go run ./bench/realfsck -fsck /usr/sbin/bcachefs
//	go run ./bench/realfsck -metadata-version 1.28 -fsck /path/to/v1.25.3/bcachefs
//
// A fault-free image must give exit 0 and no output but progress and the
// btree bitmap note; a faulty one the fault's message, and every finding
// of its manifest named in the output (backpointer key, bucket, stripe
// key or duplicate extent). -keep DIR keeps the images and each run's
// fsck.txt; -only runs the images whose name contains a string;
// -encrypted generates every image encrypted, its key sealed with the
// passphrase in passphrase.txt next to the images, which the fsck reads
// on stdin.
//
// The fault-free images are the generator's bar (docs/bench.md, gen/README.md).
package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	gen.KindBPPastEnd:             "backpointer for nonexistent alloc key",
	gen.KindAllocPastEnd:          "pointer to nonexistent bucket",
}

func main() {
	fsck := flag.String("fsck", "", "bcachefs binary (bcachefs-tools of the version's era: v1.36.1 for 1.36)")
	version := flag.String("metadata-version", gen.DefaultMetadataVersion, "metadata version to generate: "+strings.Join(gen.MetadataVersions, ", "))
	only := flag.String("only", "", "run only the images whose name or fault kind contains this")
	keep := flag.String("keep", "", "directory for the images (kept); default a temp dir, removed")
	timeout := flag.Duration("timeout", 2*time.Minute, "time limit per fsck run")
	encrypted := flag.Bool("encrypted", false, "generate encrypted images (passphrase on the fsck's stdin)")
	flag.Parse()
	if *encrypted {
		passphrase = "correct horse battery"
	}
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
	fmt.Println("| image | faults | real fsck exit | expected (besides naming every finding of the manifest) | verdict |")
	fmt.Println("|---|---|---:|---|---|")
	ver := *version
	if ver == gen.DefaultMetadataVersion {
		ver = ""
	}
	for _, s := range shapes {
		if *only != "" && !strings.Contains(s.name, *only) {
			continue
		}
		s.p.MetadataVersion = ver
		code, out, err := genAndCheck(*fsck, filepath.Join(base, s.name), s.p, *timeout)
		extra := extraLines(out)
		ok := err == nil && code == 0 && len(extra) == 0
		if !ok {
			bad++
		}
		v := verdict(ok, err, out)
		if len(extra) > 0 {
			v = "NOT as expected: " + strings.Join(extra, " / ")
		}
		fmt.Printf("| %s | none | %d | exit 0, no message but progress and the btree bitmap note | %s |\n", s.name, code, v)
	}
	type faultCase struct {
		name  string
		kinds []string
		p     gen.Params
	}
	var cases []faultCase
	for _, k := range gen.Kinds {
		p := gen.Params{Devices: 2, Replicas: 2, Extents: 3000, Seed: 11, Inject: map[string]int{k: 1}, MetadataVersion: ver}
		if gen.NeedsEC(k) {
			p = gen.Params{Devices: 3, Replicas: 1, Extents: 2000, ECStripes: 8, Seed: 11, Inject: map[string]int{k: 1}, MetadataVersion: ver}
		}
		if k == gen.KindMissingNodeBP {
			// Several nodes per bucket: a bucket whose only backpointer
			// is dropped is not looked at by the real fsck (see
			// gen/README.md), and 1.28's default node size is the
			// bucket size.
			q := p.WithDefaults()
			p.BtreeNodeSize = min(q.BtreeNodeSize, q.BucketSize/4)
		}
		cases = append(cases, faultCase{name: "fault-" + k, kinds: []string{k}, p: p})
	}
	// Every fault kind in one image (erasure coded, so replicas 1), and
	// every kind but dup_bad_csum, at which the real fsck of 1.28 and
	// 1.36 stops.
	all, allButDup := map[string]int{}, map[string]int{}
	var butDup []string
	for _, k := range gen.Kinds {
		all[k] = 1
		if k != gen.KindDupBadCsum {
			allButDup[k] = 1
			butDup = append(butDup, k)
		}
	}
	allP := gen.Params{Devices: 4, Replicas: 1, Extents: 20000, ECStripes: 12, BtreeNodeSize: 64 << 10, Seed: 12, Inject: all, MetadataVersion: ver}
	cases = append(cases, faultCase{name: "fault-all", kinds: gen.Kinds, p: allP})
	allP.Inject = allButDup
	cases = append(cases, faultCase{name: "fault-all-but-dup", kinds: butDup, p: allP})
	for _, c := range cases {
		if *only != "" && !strings.Contains(c.name, *only) {
			continue
		}
		p := c.p
		code, out, err := genAndCheck(*fsck, filepath.Join(base, c.name), p, *timeout)
		var ok bool
		var exps []string
		missing, notReached := 0, 0
		if err == nil {
			ok = true
			silentOnly := true
			for _, k := range c.kinds {
				want := textFor(k, ver)
				if want == "" {
					exps = append(exps, k+": silent")
					continue
				}
				silentOnly = false
				exps = append(exps, fmt.Sprintf("%s: %q", k, strings.ReplaceAll(want, "|", `" and "`)))
				for _, w := range strings.Split(want, "|") {
					ok = ok && strings.Contains(out, w)
				}
			}
			if silentOnly {
				ok = code == 0 // the real fsck is silent about these
			}
			// Every finding of the manifest must be named (its
			// backpointer, bucket, stripe or extent) in the output,
			// unless the real fsck is silent about its kind.
			m, merr := readManifest(filepath.Join(base, c.name))
			if merr != nil {
				err = merr
				ok = false
			} else {
				for _, f := range m.Findings {
					if kindSilent(&f, ver) || located(&f, out) {
						continue
					}
					if p.Inject[gen.KindDupBadCsum] > 0 && stopsAtDup(ver) &&
						(f.Code == "ptr_to_missing_backpointer" || f.Code == "dup_backpointer_to_bad_csum_extent") {
						// Not reached: check_extents_to_backpointers
						// stops at the duplicate.
						notReached++
						continue
					}
					missing++
					ok = false
				}
			}
		}
		if c.name == "fault-all" && p.Inject[gen.KindDupBadCsum] > 0 && stopsAtDup(ver) && code != 0 && missing == 0 {
			// The duplicate ends the run with an error (1.28) or cuts
			// it (1.36): judged on the findings named.
			ok = err == nil
		}
		if !ok {
			bad++
		}
		faults := gen.InjectString(p.Inject)
		shape := fmt.Sprintf("%ddev-replicas%d", p.Devices, p.Replicas)
		if p.ECStripes > 0 {
			shape = fmt.Sprintf("%ddev-ec", p.Devices)
		}
		v := verdict(ok, err, out)
		if missing > 0 {
			v += fmt.Sprintf(" (%d finding(s) of the manifest not named)", missing)
		}
		if notReached > 0 {
			v += fmt.Sprintf(" (%d finding(s) of check_extents_to_backpointers not reached: the fsck stops at the duplicate extent)", notReached)
		}
		fmt.Printf("| %s | %s | %d | %s | %s |\n", shape, faults, code, strings.Join(exps, "; "), v)
	}
	if bad > 0 {
		fmt.Printf("\n%d image(s) did not behave as expected\n", bad)
		os.Exit(4)
	}
}

// textFor is what the real fsck of version v's era prints for fault kind
// k ("" when it is silent).
func textFor(k, v string) string {
	if k == gen.KindDupBadCsum && v == gen.MetadataVersion139 {
		return "duplicate extents pointing to same space|checksum bad"
	}
	return faultText[k]
}

// kindSilent reports whether the real fsck is silent about finding f:
// a stripe block's dropped backpointer (bucket_len 0, see gen/README.md).
func kindSilent(f *gen.Finding, v string) bool {
	return f.Code == "ptr_to_missing_backpointer" && f.Btree == "stripes"
}

// stopsAtDup reports whether the real fsck of version v's era stops at
// the first duplicate extent (v1.25.3: fsck_repair_unimplemented; v1.36.1
// does not finish), so that the rest of check_extents_to_backpointers is
// not reached.
func stopsAtDup(v string) bool { return v != gen.MetadataVersion139 }

func readManifest(dir string) (*gen.Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var m gen.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// located reports whether the real fsck's output names what finding f
// names: the backpointer's key position, the bucket, the stripe key or
// the duplicate extent, in the real tools' text.
func located(f *gen.Finding, out string) bool {
	pos := strings.ReplaceAll(f.Pos, ":4294967295", ":U32_MAX")
	bucket := ""
	if f.Dev != nil {
		bucket = fmt.Sprintf("%d:%d", *f.Dev, *f.Bucket)
	}
	switch f.Code {
	case "ptr_to_missing_backpointer", "backpointer_to_missing_ptr", "backpointer_to_missing_alloc", "backpointer_to_missing_device":
		return strings.Contains(out, "type backpointer "+f.BP+" ")
	case "alloc_key_dirty_sectors_wrong", "alloc_key_stripe_sectors_wrong":
		return strings.Contains(out, "bucket "+bucket+" gen")
	case "alloc_key_to_missing_dev_bucket":
		// check_alloc_key's own message, or (v1.36.1: the fsck stops
		// there, before check_alloc_info) the alloc trigger's of
		// check_allocations, which names the bucket and the device.
		return strings.Contains(out, "alloc key for invalid device:bucket "+bucket) ||
			strings.Contains(out, fmt.Sprintf("pointer to nonexistent bucket %d on device", *f.Bucket))
	case "stripe_sector_count_wrong":
		return strings.Contains(out, "type stripe "+pos+" ")
	case "dup_backpointer_to_bad_csum_extent":
		// One message per replica from 1.39 (on dev N); before, the
		// fsck stops at the first.
		return strings.Contains(out, "type extent "+pos+" ") && strings.Contains(out, "same space on dev ")
	}
	return false
}

// benign are the lines the real fsck prints on a clean filesystem:
// progress, options, the journal, and the note that the btree bitmap of
// a member covers more than its btree buckets (gen/README.md, known
// differences 2), which only schedules btree_bitmap_gc.
var benign = []string{"Running userspace offline fsck", "starting version ", "opts=", "with options:",
	"with devices", "Using encoding defined by superblock", "recovering from clean shutdown", "Journal keys:",
	"going read-write", "clean shutdown complete", "... done", " btree buckets and ", "scheduling recovery pass btree_bitmap_gc",
	"WARNING: kernel does not have CONFIG_RUST", "please alert your distribution"}

// extraLines returns the lines of out that a clean run does not print.
func extraLines(out string) []string {
	var extra []string
	for _, line := range strings.Split(out, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t == "done" {
			continue
		}
		known := false
		for _, b := range benign {
			known = known || strings.Contains(line, b)
		}
		if !known {
			extra = append(extra, t)
		}
	}
	return extra
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

// passphrase, when set (-encrypted), encrypts every image: it seals the
// key and is given to the fsck on stdin.
var passphrase string

// genAndCheck generates p into dir and runs the real fsck on it.
func genAndCheck(fsck, dir string, p gen.Params, timeout time.Duration) (int, string, error) {
	if passphrase != "" {
		p.Encrypted, p.Passphrase = true, passphrase
	}
	if _, err := gen.Generate(dir, p); err != nil {
		return -1, "", fmt.Errorf("generate: %w", err)
	}
	p = p.WithDefaults()
	// As the test cases' fsck_command: -n (no changes), -K (no kernel
	// module), and check_backpointers_to_extents, which v1.36 runs only
	// when asked; v1.39 also needs -o fsck to run the fsck passes.
	opts := "recovery_passes=check_backpointers_to_extents"
	if p.MetadataVersion == gen.MetadataVersion139 {
		opts = "fsck," + opts
	}
	args := []string{"fsck", "-n", "-K", "-o", opts}
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
	if passphrase != "" {
		pf := filepath.Join(dir, "passphrase.txt")
		if err := os.WriteFile(pf, []byte(passphrase+"\n"), 0o600); err != nil {
			return -1, "", err
		}
		cmd.Stdin = strings.NewReader(passphrase + "\n")
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	// Kept with the images (when -keep names a directory) for reading.
	_ = os.WriteFile(filepath.Join(dir, "fsck.txt"), out.Bytes(), 0o644)
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
