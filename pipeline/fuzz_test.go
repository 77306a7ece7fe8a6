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

// FuzzImage mutates bytes of a real image (the tiny case, and nocsum whose
// metadata has no checksums so mutations reach every decoder) through a
// bit-flipping reader and runs the whole check: it must end with findings
// or errors, never a panic, a hang or an unbounded allocation. The fuzz
// input is a list of (offset, bit) pairs, 9 bytes each; offsets are
// folded into the image's metadata regions.
func FuzzImage(f *testing.F) {
	if casedata.Dir() == "" {
		f.Skip("test data not available")
	}
	type image struct {
		path    string
		size    int64
		regions [][2]int64
	}
	var images []image
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
		images = append(images, image{path, st.Size(), a.ranges})
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte{1, 0, 0, 0, 0, 0, 0, 0, 3})
	f.Add(uint8(1), []byte{0x40, 0x10, 0, 0, 0, 0, 0, 0, 7, 0x80, 0x10, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, which uint8, muts []byte) {
		img := images[int(which)%len(images)]
		var faults []faultio.Fault
		for i := 0; i+9 <= len(muts) && len(faults) < 16; i += 9 {
			v := binary.LittleEndian.Uint64(muts[i:])
			r := img.regions[v%uint64(len(img.regions))]
			off := r[0] + int64((v>>16)%uint64(r[1]-r[0]))
			faults = append(faults, faultio.Fault{Kind: faultio.Flip, Off: off, Bit: muts[i+8]})
		}
		file, err := os.Open(img.path)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		d, err := btreeio.NewDevice(img.path, &faultio.ReaderAt{R: file, Faults: faults}, img.size)
		if err != nil {
			return
		}
		fs, err := btreeio.Assemble([]*btreeio.Device{d})
		if err != nil {
			return
		}
		if err := fs.LoadRoots(); err != nil {
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
