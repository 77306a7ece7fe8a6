package hugemem

import (
	"math"
	"runtime/debug"
	"testing"
)

type entry struct {
	A uint64
	B [5]uint64
}

// TestAllocFree maps a large array, fills it, checks the runtime memory
// limit is lowered while it is held and restored after Free; small arrays
// come from the heap.
func TestAllocFree(t *testing.T) {
	old := debug.SetMemoryLimit(1 << 40)
	defer debug.SetMemoryLimit(old)

	small := Alloc[entry](10)
	if small.mapping != nil || cap(small.S) != 10 || len(small.S) != 0 {
		t.Fatalf("small array: mapped %v, len %d cap %d", small.mapping != nil, len(small.S), cap(small.S))
	}
	small.Free()

	const n = 300000 // 14.4 MB
	a := Alloc[entry](n)
	if a.mapping == nil {
		t.Skip("anonymous mmap refused here; arrays come from the heap")
	}
	if cap(a.S) != n || len(a.S) != 0 {
		t.Fatalf("len %d cap %d, want 0 %d", len(a.S), cap(a.S), n)
	}
	if got := Mapped(); got < n*48 {
		t.Errorf("Mapped() = %d, want at least %d", got, n*48)
	}
	if lim := debug.SetMemoryLimit(-1); lim != 1<<40-a.cut || a.cut < n*48 {
		t.Errorf("memory limit %d while mapped (cut %d), want %d", lim, a.cut, 1<<40-a.cut)
	}
	s := a.S[:n]
	for i := range s {
		if s[i].A != 0 || s[i].B[4] != 0 {
			t.Fatalf("entry %d not zero", i)
		}
		s[i].A, s[i].B[4] = uint64(i), uint64(i)*3
	}
	for i := range s {
		if s[i].A != uint64(i) || s[i].B[4] != uint64(i)*3 {
			t.Fatalf("entry %d reads back %+v", i, s[i])
		}
	}
	if err := a.Free(); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(); err != nil {
		t.Fatalf("second Free: %v", err)
	}
	if got := Mapped(); got != 0 {
		t.Errorf("Mapped() = %d after Free", got)
	}
	if lim := debug.SetMemoryLimit(-1); lim != 1<<40 {
		t.Errorf("memory limit %d after Free, want %d", lim, int64(1<<40))
	}
}

// TestNoLimit: without a memory limit none is set.
func TestNoLimit(t *testing.T) {
	old := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(old)
	a := Alloc[entry](200000)
	if lim := debug.SetMemoryLimit(-1); lim != math.MaxInt64 {
		t.Errorf("limit %d set by Alloc", lim)
	}
	a.Free()
}
