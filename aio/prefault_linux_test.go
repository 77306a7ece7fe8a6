package aio

import (
	"bytes"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of b that are mapped in (mincore).
func resident(t *testing.T, b []byte) (in, pages int) {
	t.Helper()
	p := uintptr(unsafe.Pointer(&b[0]))
	start := p &^ pageMask
	end := (p + uintptr(len(b)) + pageMask) &^ pageMask
	vec := make([]byte, (end-start)/(pageMask+1))
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, start, end-start, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	for _, v := range vec {
		in += int(v & 1)
	}
	return in, len(vec)
}

// TestPrefault populates fresh memory without changing it, and leaves
// written memory as it was.
func TestPrefault(t *testing.T) {
	if noPopulate.Load() {
		t.Skip("MADV_POPULATE_WRITE not available")
	}
	// Fresh pages outside the Go heap: none is mapped in before.
	m, err := unix.Mmap(-1, 0, 64*os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	defer unix.Munmap(m)
	_ = unix.Madvise(m, unix.MADV_NOHUGEPAGE)
	if in, _ := resident(t, m); in != 0 {
		t.Skipf("%d pages of a fresh mapping already resident", in)
	}
	Prefault(m[: 0 : len(m)/2]) // the capacity counts
	in, pages := resident(t, m)
	if noPopulate.Load() {
		t.Skip("MADV_POPULATE_WRITE refused by the kernel")
	}
	if in != pages/2 {
		t.Errorf("%d of %d pages resident after prefaulting the first half", in, pages)
	}
	if !bytes.Equal(m, make([]byte, len(m))) {
		t.Errorf("prefaulting changed fresh memory")
	}

	// Written Go memory keeps its bytes.
	b := make([]uint64, 1<<16)
	for i := range b {
		b[i] = uint64(i) * 0x9e3779b97f4a7c15
	}
	Prefault(b)
	for i := range b {
		if b[i] != uint64(i)*0x9e3779b97f4a7c15 {
			t.Fatalf("word %d changed by prefaulting", i)
		}
	}
	// Small and empty slices are left alone.
	Prefault([]byte{})
	Prefault(make([]byte, 100))
	Prefault[int](nil)
}
