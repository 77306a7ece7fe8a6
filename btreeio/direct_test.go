package btreeio

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"bpcheck/aio"
)

// TestDirectReads reads a file through the O_DIRECT path: aligned reads
// go direct, misaligned ones (offset or buffer) fall back to buffered
// reads, and every read returns the file's bytes.
func TestDirectReads(t *testing.T) {
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	path := filepath.Join(t.TempDir(), "dev.img")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &Device{Path: path, Size: int64(len(data)), r: f, f: f}
	defer d.Close()
	if err := d.enableDirect(); err != nil {
		t.Skipf("O_DIRECT not available in the temp directory: %v", err)
	}
	aligned := aio.AlignedBuf(64<<10, nodeAlign)
	for _, c := range []struct {
		name   string
		buf    []byte
		off    int64
		direct bool
	}{
		{"aligned", aligned, 128 << 10, true},
		{"odd offset", aligned, 128<<10 + 512*3, d.directAlign <= 512},
		{"odd buffer", make([]byte, 64<<10+1)[1:], 64 << 10, false},
		{"short length", aligned[:1000], 4096, false},
	} {
		before := d.directReads.Load()
		n, err := d.readNodeAt(c.buf, c.off)
		if err != nil || n != len(c.buf) {
			t.Fatalf("%s: read %d bytes, %v", c.name, n, err)
		}
		if !bytes.Equal(c.buf, data[c.off:c.off+int64(len(c.buf))]) {
			t.Errorf("%s: bytes differ from the file's", c.name)
		}
		if went := d.directReads.Load() > before; went != c.direct && d.directOff.Load() == 0 {
			t.Errorf("%s: direct read %v, want %v (alignment %d)", c.name, went, c.direct, d.directAlign)
		}
	}
	if _, err := d.readNodeAt(aligned, int64(len(data))); err == nil {
		t.Errorf("read past the end succeeded")
	}
}
