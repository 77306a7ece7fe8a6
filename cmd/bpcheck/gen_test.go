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
