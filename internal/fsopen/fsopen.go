// Package fsopen opens a one-device filesystem image for tests, reading it
// through a reader that the test wraps around the file (fault injection,
// recorded states).
package fsopen

import (
	"io"
	"os"
	"testing"

	"bpcheck/btreeio"
)

// Through opens the image at path as a one-device filesystem (its roots
// not loaded yet), reading it through wrap(file). The file is closed
// when the test ends; any error fails the test.
func Through(t testing.TB, path string, wrap func(io.ReaderAt) io.ReaderAt) *btreeio.FS {
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
