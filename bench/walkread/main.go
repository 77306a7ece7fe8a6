// Command walkread measures bpcheck's read path alone: it walks the
// btrees a check reads (extents, reflink, backpointers, alloc) the way the
// check does (leaves read ahead in key order through package aio, one
// walk per btree, all at once), parses and checksums every node, and
// decodes no key. Its rate beside `go run ./bench/seqread` on the same
// files, both with the page cache dropped first, is the ceiling that the
// I/O path puts on a cold check; docs/bench.md compares the whole check
// with both.
//
//	go run ./bench/walkread [-direct] [-prefetch 8] dev0.img dev1.img
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"bpcheck/aio"
	"bpcheck/bp"
	"bpcheck/btreeio"
)

// counter is a visitor that takes every leaf as it lies packed and counts
// the bytes of the nodes it is handed.
type counter struct {
	nodes, bytes *atomic.Int64
	errs         *atomic.Int64
}

func (c counter) count(n *btreeio.Node) {
	c.nodes.Add(1)
	c.bytes.Add(int64(n.SectorsWritten) * btreeio.SectorSize)
}

func (c counter) Node(n *btreeio.Node) error { c.count(n); return nil }

func (c counter) PackedLeaf(n *btreeio.Node) (bool, error) { c.count(n); return true, nil }

func (c counter) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	c.errs.Add(1)
	fmt.Fprintf(os.Stderr, "walkread: %v\n", err)
	return nil
}

func main() {
	direct := flag.Bool("direct", false, "read nodes with O_DIRECT")
	prefetch := flag.Int("prefetch", 8, "leaves each walk reads ahead")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: walkread [-direct] [-prefetch N] DEVICE...")
		os.Exit(16)
	}
	fs, err := btreeio.Open(flag.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "walkread: %v\n", err)
		os.Exit(8)
	}
	defer fs.Close()
	if err := fs.LoadRoots(); err != nil {
		fmt.Fprintf(os.Stderr, "walkread: %v\n", err)
		os.Exit(8)
	}
	if *direct {
		if err := fs.EnableDirect(false); err != nil {
			fmt.Fprintf(os.Stderr, "walkread: -direct: %v\n", err)
			os.Exit(8)
		}
	}
	fs.Prefetch, fs.Async, fs.AsyncBackend = *prefetch, true, aio.Auto
	var nodes, bytes, errs atomic.Int64
	v := counter{&nodes, &bytes, &errs}
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, id := range []bp.BtreeID{bp.BtreeExtents, bp.BtreeReflink, bp.BtreeBackpointers, bp.BtreeAlloc} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fs.Walk(id, 0, v); err != nil {
				fmt.Fprintf(os.Stderr, "walkread: btree %d: %v\n", id, err)
				errs.Add(1)
			}
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	fs.CloseReaders()
	fmt.Printf("%d nodes, %d bytes in %.3f s: %.0f MB/s\n", nodes.Load(), bytes.Load(), d.Seconds(), float64(bytes.Load())/d.Seconds()/1e6)
	if errs.Load() != 0 {
		os.Exit(8)
	}
}
