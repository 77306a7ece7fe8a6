package pipeline_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
	"bpcheck/internal/faultio"
	"bpcheck/pipeline"
)

// allNodes collects the byte ranges of every node of every btree.
type allNodes struct {
	ranges [][2]int64
}

func (a *allNodes) Node(n *btreeio.Node) error {
	a.ranges = append(a.ranges, [2]int64{n.Offset, n.Offset + int64(n.SectorsWritten)*512})
	return nil
}
func (a *allNodes) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// TestBitFlips checks images read through a reader that flips random bits
// in their metadata (btree nodes, superblock, journal): every run must end
// with findings or clean errors, never a panic or a hang. The nocsum case
// has no metadata checksums, so its flips reach the key decoders.
// BPCHECK_FLIPS sets the number of runs per image (default 500).
func TestBitFlips(t *testing.T) {
	casedata.Require(t)
	runs := 500
	if v, err := strconv.Atoi(os.Getenv("BPCHECK_FLIPS")); err == nil {
		runs = v
	}
	if testing.Short() {
		runs = 20
	}
	for _, name := range []string{"nocsum", "tiny", "a-tiny", "unclean"} {
		t.Run(name, func(t *testing.T) {
			path := casedata.CaseImages(t, name)[0]
			fs, _ := openFaulty(t, path, nil)
			a := &allNodes{}
			for _, r := range fs.Roots {
				fs.Walk(r.Btree, 0, a)
			}
			a.ranges = append(a.ranges, [2]int64{4096, 4096 + int64(len(fs.SB.Raw))})
			m := &fs.SB.Members[0]
			for _, jr := range fs.SB.Journal {
				start := int64(jr.Start) * int64(m.BucketSize) * 512
				a.ranges = append(a.ranges, [2]int64{start, start + 16384})
			}
			rng := rand.New(rand.NewPCG(uint64(len(name)), 42))
			outcomes := map[string]int{}
			for i := 0; i < runs; i++ {
				var faults []faultio.Fault
				for n := 1 + rng.IntN(4); n > 0; n-- {
					r := a.ranges[rng.IntN(len(a.ranges))]
					faults = append(faults, faultio.Fault{Kind: faultio.Flip, Off: r[0] + rng.Int64N(r[1]-r[0]), Bit: uint8(rng.IntN(8))})
				}
				outcomes[runFlipped(t, path, faults)]++
			}
			t.Logf("%d runs: %v", runs, outcomes)
		})
	}
}

// runFlipped runs the whole check through flipped bits and classifies the
// outcome. A panic fails the test with the faults that caused it.
func runFlipped(t *testing.T, path string, faults []faultio.Fault) (outcome string) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic with faults %+v: %v", faults, r)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	d, err := btreeio.NewDevice(path, &faultio.ReaderAt{R: f, Faults: faults}, st.Size())
	if err != nil {
		return "superblock error"
	}
	fs, err := btreeio.Assemble([]*btreeio.Device{d})
	if err != nil {
		return "device set error"
	}
	if err := fs.LoadRoots(); err != nil {
		return "roots error"
	}
	res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2})
	if err != nil {
		return "run error"
	}
	switch {
	case len(res.Errors) > 0:
		return "read errors"
	case len(res.Findings) > 0:
		return "findings"
	}
	return "clean"
}
