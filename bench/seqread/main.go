// Command seqread measures the sequential read bandwidth of the bytes a
// sparse image actually holds: it reads every data region of the given
// files (SEEK_DATA / SEEK_HOLE) front to back in 1 MiB reads, optionally
// with O_DIRECT, and prints the bytes read and MB/s. It is the "dd" of
// the cold-cache comparison in docs/bench.md: bpcheck reads the metadata
// of a generated image, which is exactly these regions (the data was
// never written), so the two rates compare like for like. Drop the page
// cache before each (echo 3 > /proc/sys/vm/drop_caches).
//
//	go run ./bench/seqread [-direct] dev0.img dev1.img
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"bpcheck/aio"
)

const block = 1 << 20

// dataRegions lists the [start, end) byte ranges of f that hold data.
func dataRegions(f *os.File, size int64) ([][2]int64, error) {
	var out [][2]int64
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return nil, fmt.Errorf("SEEK_DATA at %d: %w", off, err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("SEEK_HOLE at %d: %w", start, err)
		}
		out = append(out, [2]int64{start, end})
		off = end
	}
	return out, nil
}

func main() {
	direct := flag.Bool("direct", false, "read with O_DIRECT (4 KiB-aligned)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: seqread [-direct] FILE...")
		os.Exit(16)
	}
	buf := aio.AlignedBuf(block, 4096)
	var total int64
	t0 := time.Now()
	for _, path := range flag.Args() {
		flags := os.O_RDONLY
		if *direct {
			flags |= unix.O_DIRECT
		}
		f, err := os.OpenFile(path, flags, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "seqread:", err)
			os.Exit(8)
		}
		st, err := f.Stat()
		if err != nil {
			fmt.Fprintln(os.Stderr, "seqread:", err)
			os.Exit(8)
		}
		regions, err := dataRegions(f, st.Size())
		if err != nil {
			fmt.Fprintf(os.Stderr, "seqread: %s: %v\n", path, err)
			os.Exit(8)
		}
		for _, r := range regions {
			start := r[0] &^ 4095
			for off := start; off < r[1]; off += block {
				n := int64(block)
				if off+n > r[1] {
					n = (r[1] - off + 4095) &^ 4095
				}
				m, err := f.ReadAt(buf[:n], off)
				if err != nil && !errors.Is(err, io.EOF) {
					fmt.Fprintf(os.Stderr, "seqread: %s at %d: %v\n", path, off, err)
					os.Exit(8)
				}
				total += int64(m)
			}
		}
		f.Close()
	}
	sec := time.Since(t0).Seconds()
	fmt.Printf("%d bytes in %.3f s: %.0f MB/s\n", total, sec, float64(total)/sec/1e6)
}
