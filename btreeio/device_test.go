package btreeio

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages counts the pages of the first size bytes of path that the
// page cache holds (mincore on a read-only mapping).
func residentPages(t *testing.T, path string, size int) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (size+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// evict drops the clean pages of path from the page cache, or skips the
// test where the filesystem keeps them (tmpfs).
func evict(t *testing.T, path string, size int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Skipf("fadvise DONTNEED: %v", err)
	}
	if n := residentPages(t, path, size); n != 0 {
		t.Skipf("the page cache keeps %d pages of %s after DONTNEED (tmpfs?): readahead cannot be observed here", n, path)
	}
}

// readFront reads the first n bytes of f in 64 KiB reads, front to back:
// the pattern that makes the kernel read ahead.
func readFront(t *testing.T, f *os.File, n int) []byte {
	t.Helper()
	out := make([]byte, n)
	for off := 0; off < n; off += 64 << 10 {
		if _, err := f.ReadAt(out[off:off+64<<10], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestOpenRandomReadsOnlyWhatIsAsked reads the first MiB of a file that
// is not in the page cache, front to back, through a file opened as
// OpenDevice opens it, and counts the pages the reads brought in: without
// the random advice the kernel reads ahead of them (logged for
// comparison), with it they bring in only their own pages.
func TestOpenRandomReadsOnlyWhatIsAsked(t *testing.T) {
	const size = 8 << 20
	path := filepath.Join(t.TempDir(), "dev.img")
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil { // dirty pages cannot be dropped
		t.Fatal(err)
	}
	f.Close()
	const front = 1 << 20
	pages := front / os.Getpagesize()

	evict(t, path, size)
	plain, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	readFront(t, plain, front)
	plain.Close()
	t.Logf("plain open: reading %d pages brought in %d", pages, residentPages(t, path, size))

	evict(t, path, size)
	rf, err := openRandom(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	if got := readFront(t, rf, front); string(got) != string(data[:front]) {
		t.Fatal("the reads returned other bytes")
	}
	// A filesystem with large folios may fill a page or two past the
	// last read; readahead fills hundreds.
	if n := residentPages(t, path, size); n > pages+16 {
		t.Errorf("with the random advice reading %d pages brought in %d: the kernel read ahead", pages, n)
	}
}
