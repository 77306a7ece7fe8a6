package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bpcheck/gen"
)

// TestGenShapeReal: `bpcheck gen --shape real` writes an image of the
// real shape (its defaults where no option is given, the options given
// where they are), which `bpcheck check` finds clean, and a manifest
// that names the shape.
func TestGenShapeReal(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, "gen", "--out", dir, "--shape", "real", "--extents", "5000", "--seed", "3")
	if r.code != exitClean || !strings.Contains(r.stdout, "shape real") {
		t.Fatalf("gen: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m gen.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	p := m.Params
	if p.Shape != gen.ShapeReal || p.DeviceSize != 20<<30 || p.BucketSize != 64<<10 || p.BtreeNodeSize != 64<<10 ||
		p.ExtentMin != 8 || p.ExtentMax != 8 || p.ExtentsPerFile != 65535 || m.Extents != 5000 {
		t.Errorf("manifest: %d extents, params %+v", m.Extents, p)
	}
	r = runCLI(t, append([]string{"check", "--json"}, append(stableCheckArgs, filepath.Join(dir, "dev0.img"))...)...)
	if r.code != exitClean || !strings.Contains(r.stdout, `"findings":0`) || !strings.Contains(r.stdout, `"extents":5000`) {
		t.Errorf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Options given override the shape's defaults.
	dir = t.TempDir()
	r = runCLI(t, "gen", "--out", dir, "--shape", "real", "--extents", "500", "--device-size", "1G", "--extents-per-file", "3")
	if r.code != exitClean {
		t.Fatalf("gen: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, err = os.ReadFile(filepath.Join(dir, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	m = gen.Manifest{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if p := m.Params; p.DeviceSize != 1<<30 || p.ExtentsPerFile != 3 || p.ExtentMax != 8 || m.Inodes < 500/3 {
		t.Errorf("manifest: %d files, params %+v", m.Inodes, p)
	}

	for _, args := range [][]string{
		{"--shape", "usr"},
		// Extents above encoded_extent_max (4 KiB) do not fit the shape.
		{"--shape", "real", "--extent-size", "8-128"},
	} {
		r := runCLI(t, append([]string{"gen", "--out", t.TempDir()}, args...)...)
		if r.code != exitUsage {
			t.Errorf("gen %v: exit %d, want %d\n%s", args, r.code, exitUsage, r.stderr)
		}
	}
}

// TestGenSizes: the default device size grows with the extents (the
// README's 1 M-extent example failed, device full, exit 8, leaving two
// 1 GiB images); extents that do not fit an explicit size are a usage
// error that leaves no image behind; a symlink where an image goes is
// not followed (its target was truncated to the device size).
func TestGenSizes(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "big")
	r := runCLI(t, "gen", "--out", out, "--devices", "2", "--extents", "200000", "--inject", "missing_bp=3")
	if r.code != exitClean {
		t.Fatalf("gen of 200k extents with the default size: exit %d, stderr %s", r.code, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(out, "dev0.img")); err != nil || fi.Size() <= 1<<30 {
		t.Errorf("default device size for 200k extents: %v %v", fi.Size(), err)
	}

	full := filepath.Join(dir, "full")
	r = runCLI(t, "gen", "--out", full, "--device-size", "64M", "--extents", "100000")
	if r.code != exitUsage || !strings.Contains(r.stderr, "give a larger --device-size") {
		t.Errorf("extents that do not fit: exit %d, stderr %s", r.code, r.stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(full, "dev*.img")); len(left) != 0 {
		t.Errorf("images left behind: %v", left)
	}

	link := filepath.Join(dir, "link")
	if err := os.MkdirAll(link, 0o755); err != nil {
		t.Fatal(err)
	}
	precious := filepath.Join(dir, "precious.txt")
	if err := os.WriteFile(precious, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(precious, filepath.Join(link, "dev0.img")); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "gen", "--out", link, "--extents", "100")
	if r.code == exitClean {
		t.Error("gen wrote through a symlink")
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "keep me\n" {
		t.Errorf("the symlink's target was changed: %q %v", b, err)
	}
}
