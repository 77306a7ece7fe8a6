// Package btreeiotest helps tests of packages that read filesystems
// through btreeio: it opens a one-device image through a reader that the
// test wraps around the file (fault injection, recorded states).
package btreeiotest

import (
	"io"
	"os"
	"testing"

	"bpcheck/btreeio"
)

// OpenThrough opens the image at path as a one-device filesystem (its roots
// not loaded yet), reading it through wrap(file). The file is closed
// when the test ends; any error fails the test.
func OpenThrough(t testing.TB, path string, wrap func(io.ReaderAt) io.ReaderAt) *btreeio.FS {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	d, err := btreeio.NewDevice(path, wrap(f), st.Size())
	if err != nil {
		t.Fatal(err)
	}
	fs, err := btreeio.Assemble([]*btreeio.Device{d})
	if err != nil {
		t.Fatal(err)
	}
	return fs
}
