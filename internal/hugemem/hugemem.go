// Package hugemem allocates large arrays of pointer-free values outside
// the Go heap, in anonymous mappings advised to use transparent huge
// pages (MADV_HUGEPAGE), so that filling them takes one page fault per
// 2 MiB instead of one per 4 KiB: in a VM a fault costs microseconds, and
// a check of 10 M extents touched 140 000 pages of shard arrays.
//
// The Go runtime does not see this memory, so while a mapping is held the
// runtime's soft memory limit (debug.SetMemoryLimit), when one is set, is
// lowered by its size: the process as a whole stays within the limit.
// Mappings must be freed with Free; the memory is zeroed when mapped.
// Smaller arrays come from the Go heap, their pages populated at once.
package hugemem

import (
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"bpcheck/aio"
)

// MinBytes is the smallest allocation worth a mapping of its own; smaller
// ones come from the Go heap. A huge page is worth it well below its own
// size: on the 2-vCPU VM the checker is measured on, the first touch of
// fresh 4 KiB pages cost ~5 ms per MiB (a page fault shadowed by the
// hypervisor, ~20 µs, populated or not), of a huge page ~0.15–1.5 ms per
// 2 MiB (8 MiB of 32-byte entries filled in a fresh process: 42–64 ms on
// the heap, 14–43 ms more after MADV_POPULATE_WRITE's own 5–8 ms, 0.9–1.5
// ms mapped here). At 1 MiB an array pins at most 1 MiB more than on the
// heap.
const MinBytes = 1 << 20

const hugePage = 2 << 20

// minLimit is the lowest the runtime's memory limit is lowered to.
const minLimit = 64 << 20

// Array is an array of T, in a mapping or on the Go heap. T must hold no
// pointers (the garbage collector does not scan mappings).
type Array[T any] struct {
	// S is the array: length 0, capacity as asked.
	S       []T
	mapping []byte // the whole mapping, nil when S is on the Go heap
	cut     int64  // how much the runtime memory limit was lowered
}

var (
	mu     sync.Mutex
	mapped int64 // bytes mapped by this package and not freed
)

// Mapped returns the bytes currently held in mappings.
func Mapped() int64 {
	mu.Lock()
	defer mu.Unlock()
	return mapped
}

// Alloc returns an array with room for n values of T. Arrays of at least
// MinBytes are mapped; smaller ones, or when mapping fails, are made on
// the Go heap.
func Alloc[T any](n int) *Array[T] {
	var zero T
	size := int64(n) * int64(unsafe.Sizeof(zero))
	if n <= 0 || size < MinBytes || size > math.MaxInt64/2 {
		// A heap array is filled right after it is made, one 4 KiB page
		// fault at a time: populated at once instead (aio.Prefault: ~1 µs
		// a page against ~25 µs a fault on the VM measured; the two
		// shards of many-extents took ~1 200 faults).
		s := make([]T, 0, max(n, 0))
		aio.Prefault(s)
		return &Array[T]{S: s}
	}
	m, err := unix.Mmap(-1, 0, int(size)+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return &Array[T]{S: make([]T, 0, n)}
	}
	// Huge pages need 2 MiB-aligned memory: start at the first boundary.
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&m[0])) & (hugePage - 1)); r != 0 {
		skip = hugePage - r
	}
	body := m[skip : skip+int(size)]
	_ = unix.Madvise(body, unix.MADV_HUGEPAGE) // best effort: THP may be off
	a := &Array[T]{S: unsafe.Slice((*T)(unsafe.Pointer(&body[0])), n)[:0], mapping: m}
	mu.Lock()
	mapped += int64(len(m))
	if lim := debug.SetMemoryLimit(-1); lim != math.MaxInt64 {
		a.cut = min(int64(len(m)), max(lim-minLimit, 0))
		debug.SetMemoryLimit(lim - a.cut)
	}
	mu.Unlock()
	return a
}

// Free releases the mapping. The array (and every slice of it) must not be
// used afterwards. Free of a heap array, or a second Free, does nothing.
func (a *Array[T]) Free() error {
	if a == nil || a.mapping == nil {
		if a != nil {
			a.S = nil
		}
		return nil
	}
	m := a.mapping
	a.mapping, a.S = nil, nil
	mu.Lock()
	mapped -= int64(len(m))
	if a.cut > 0 {
		if lim := debug.SetMemoryLimit(-1); lim != math.MaxInt64 {
			debug.SetMemoryLimit(lim + a.cut)
		}
	}
	mu.Unlock()
	if err := unix.Munmap(m); err != nil {
		return fmt.Errorf("hugemem: munmap %d bytes: %w", len(m), err)
	}
	return nil
}
