package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"bpcheck/aio"
	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
	"bpcheck/pipeline"
)

// benchCases are the cases BenchmarkCheck runs: the two large ones (format
// B and format A, the ones case.json has real fsck pass times for) and a
// small one.
var benchCases = []string{"small", "many-extents", "a-many-extents"}

// leafBytes sums the bytes written in the leaves of one btree.
type leafBytes struct{ bytes, nodes int64 }

func (l *leafBytes) Node(n *btreeio.Node) error {
	if n.Level == 0 {
		l.bytes += int64(n.SectorsWritten) * btreeio.SectorSize
		l.nodes++
	}
	return nil
}
func (l *leafBytes) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// BenchmarkCheck times pipeline.Run on real images, opened once, with 1
// and 2 workers, and with a memory budget of a sixth of the estimate
// (which forces several passes; the pass count is reported as a metric).
//
// Bytes per op (MB/s) are the metadata one check reads once:
// res.Stats.NodeBytes (every interior node and the extents/reflink leaves)
// plus the leaves of the backpointers and alloc btrees, which the loaders
// read and Stats does not count. A multi-pass run re-reads btrees per pass,
// so its MB/s is metadata checked per second, not I/O volume.
//
// Run it with bench/run.sh, or:
//
//	go test -run x -bench BenchmarkCheck -benchtime 20x ./pipeline/
func BenchmarkCheck(b *testing.B) {
	casedata.Require(b)
	for _, name := range benchCases {
		b.Run("case="+name, func(b *testing.B) {
			fs, err := btreeio.Open(casedata.CaseImages(b, name))
			if err != nil {
				b.Fatal(err)
			}
			defer fs.Close()
			if err := fs.LoadRoots(); err != nil {
				b.Fatal(err)
			}
			// One warm-up run: sizes for SetBytes and the budget, and the
			// page cache filled as for every later run.
			first, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 1})
			if err != nil {
				b.Fatal(err)
			}
			var loaded int64
			for _, id := range []bp.BtreeID{bp.BtreeBackpointers, bp.BtreeAlloc} {
				l := &leafBytes{}
				if err := fs.Walk(id, 0, l); err != nil {
					b.Fatal(err)
				}
				loaded += l.bytes
			}
			bytesPerRun := first.Stats.NodeBytes + loaded
			b.Logf("%s: %d extents, %d pointers, %d backpointers; %d node bytes + %d backpointers/alloc leaf bytes; estimate %d bytes",
				name, first.Stats.Extents, first.Stats.Pointers, first.Stats.Backpointers, first.Stats.NodeBytes, loaded, first.EstimatedBytes)

			bench := func(b *testing.B, opt pipeline.Options) {
				b.SetBytes(bytesPerRun)
				b.ReportAllocs()
				var res *pipeline.Result
				for b.Loop() {
					var err error
					res, err = pipeline.Run(context.Background(), fs, opt)
					if err != nil {
						b.Fatal(err)
					}
				}
				if len(res.Findings) != len(first.Findings) || res.Stats.Extents != first.Stats.Extents {
					b.Fatalf("%d findings, %d extents; the first run had %d, %d", len(res.Findings), res.Stats.Extents, len(first.Findings), first.Stats.Extents)
				}
				b.ReportMetric(float64(res.Stats.Extents)*float64(b.N)/b.Elapsed().Seconds(), "extents/s")
				b.ReportMetric(float64(res.Passes), "passes")
			}
			// The read path of `bpcheck check` by default: walks read
			// ahead through the async reader (and only such walks take
			// leaves with their keys packed).
			opts := func(w int) pipeline.Options {
				return pipeline.Options{Workers: w, Prefetch: pipeline.DefaultPrefetch, Async: true, AsyncBackend: aio.Auto}
			}
			for _, w := range []int{1, 2} {
				b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
					bench(b, opts(w))
				})
			}
			b.Run("budget=sixth", func(b *testing.B) {
				for _, w := range []int{1, 2} {
					b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
						opt := opts(w)
						opt.MemoryBudget = first.EstimatedBytes / 6
						bench(b, opt)
					})
				}
			})
		})
	}
}
