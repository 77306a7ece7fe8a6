package pipeline_test

import (
	"context"
	"encoding/binary"
	"os"
	"testing"
	"time"

	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
	"bpcheck/internal/faultio"
	"bpcheck/pipeline"
)

// FuzzDigestImage mutates bit of a real image as FuzzImage does and checks
// it twice, with digest matching (and its rechecks) and with
// Options.Exact: the findings, errors and statistics must be the same.
// The first input byte picks the image, the layout (shards, passes) and
// whether rechecks are cut into parts.
func FuzzDigestImage(f *testing.F) {
	images := fuzzImages(f)
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte{1, 0, 0, 0, 0, 0, 0, 0, 3})
	f.Add(uint8(3), []byte{0x40, 0x10, 0, 0, 0, 0, 0, 0, 7, 0x80, 0x10, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, which uint8, muts []byte) {
		img := images[int(which)%len(images)]
		faults := img.faults(muts)
		run := func(exact bool) (*pipeline.Result, bool) {
			fs, ok := img.open(t, faults)
			if !ok {
				return nil, false
			}
			opt := pipeline.Options{Workers: 2, Exact: exact}
			switch which / 2 % 3 {
			case 1:
				opt.Shards = 3
			case 2:
				opt.Shards, opt.MemoryBudget = 3, 96<<10 // several passes
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := pipeline.Run(ctx, fs, opt)
			if err != nil {
				if ctx.Err() != nil {
					t.Fatalf("check did not finish in 20 s with faults %+v", faults)
				}
				return nil, false
			}
			return res, true
		}
		// The two checks get the same passes (the planner would give
		// the digest one fewer); some rechecks are cut into parts.
		defer pipeline.SetDigestPlanning(false)()
		if which/6%2 == 1 {
			defer pipeline.SetRecheckLimit(1)()
		}
		exact, ok := run(true)
		if !ok {
			return
		}
		digest, ok := run(false)
		if !ok {
			t.Fatalf("the exact check ran, the digest one failed (faults %+v)", faults)
		}
		if got, want := render(digest), render(exact); got != want {
			t.Fatalf("faults %+v: digest findings differ from exact ones:\n got: %s\nwant: %s", faults, got, want)
		}
		if len(digest.Errors) != len(exact.Errors) {
			t.Fatalf("faults %+v: %d errors, exact %d", faults, len(digest.Errors), len(exact.Errors))
		}
		g, w := digest.Stats, exact.Stats
		g.LoadNodes, g.LoadBytes, g.Rechecked, g.RecheckWalks, g.RecheckLeaves = w.LoadNodes, w.LoadBytes, w.Rechecked, w.RecheckWalks, w.RecheckLeaves
		if g != w {
			t.Fatalf("faults %+v: stats %+v, exact %+v", faults, digest.Stats, exact.Stats)
		}
	})
}

// fuzzImage is a real image whose metadata regions the fuzz targets
// mutate.
type fuzzImage struct {
	path    string
	size    int64
	regions [][2]int64
}

// fuzzImages lists the tiny and nocsum cases' images and their metadata
// regions (nodes, superblock).
func fuzzImages(f *testing.F) []fuzzImage {
	if casedata.Dir() == "" {
		f.Skip("test data not available")
	}
	var images []fuzzImage
	for _, name := range []string{"tiny", "nocsum"} {
		path := casedata.CaseImages(f, name)[0]
		st, err := os.Stat(path)
		if err != nil {
			f.Fatal(err)
		}
		fs, err := btreeio.Open([]string{path})
		if err != nil {
			f.Fatal(err)
		}
		if err := fs.LoadRoots(); err != nil {
			f.Fatal(err)
		}
		a := &allNodes{}
		for _, r := range fs.Roots {
			fs.Walk(r.Btree, 0, a)
		}
		a.ranges = append(a.ranges, [2]int64{4096, 4096 + int64(len(fs.SB.Raw))}, [2]int64{3584, 4096})
		fs.Close()
		images = append(images, fuzzImage{path, st.Size(), a.ranges})
	}
	return images
}

// faults turns a fuzz input into bit flips: (offset, bit) pairs, 9 bytes
// each, offsets folded into the image's metadata regions.
func (img fuzzImage) faults(muts []byte) []faultio.Fault {
	var faults []faultio.Fault
	for i := 0; i+9 <= len(muts) && len(faults) < 16; i += 9 {
		v := binary.LittleEndian.Uint64(muts[i:])
		r := img.regions[v%uint64(len(img.regions))]
		off := r[0] + int64((v>>16)%uint64(r[1]-r[0]))
		faults = append(faults, faultio.Fault{Kind: faultio.Flip, Off: off, Bit: muts[i+8]})
	}
	return faults
}

// open opens the image through a reader that applies faults; ok is false
// when it does not open (or its roots do not load).
func (img fuzzImage) open(t *testing.T, faults []faultio.Fault) (*btreeio.FS, bool) {
	file, err := os.Open(img.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	d, err := btreeio.NewDevice(img.path, &faultio.ReaderAt{R: file, Faults: faults}, img.size)
	if err != nil {
		return nil, false
	}
	fs, err := btreeio.Assemble([]*btreeio.Device{d})
	if err != nil {
		return nil, false
	}
	if err := fs.LoadRoots(); err != nil {
		return nil, false
	}
	return fs, true
}

// FuzzImage mutates bytes of a real image (the tiny case, and nocsum whose
// metadata has no checksums so mutations reach every decoder) through a
// bit-flipping reader and runs the whole check: it must end with findings
// or errors, never a panic, a hang or an unbounded allocation. The fuzz
// input is a list of (offset, bit) pairs, 9 bytes each; offsets are
// folded into the image's metadata regions.
func FuzzImage(f *testing.F) {
	images := fuzzImages(f)
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte{1, 0, 0, 0, 0, 0, 0, 0, 3})
	f.Add(uint8(1), []byte{0x40, 0x10, 0, 0, 0, 0, 0, 0, 7, 0x80, 0x10, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, which uint8, muts []byte) {
		img := images[int(which)%len(images)]
		faults := img.faults(muts)
		fs, ok := img.open(t, faults)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := pipeline.Run(ctx, fs, pipeline.Options{Workers: 2, MemoryBudget: 64 << 20})
		if err != nil && ctx.Err() != nil {
			t.Fatalf("check did not finish in 20 s with faults %+v", faults)
		}
		_ = res
	})
}
