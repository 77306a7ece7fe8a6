package shard

import (
	"testing"
	"unsafe"
)

// TestEntrySizes keeps the planner's per-entry costs true to the structs.
func TestEntrySizes(t *testing.T) {
	if n := unsafe.Sizeof(BPEntry{}); n != BPEntrySize {
		t.Errorf("BPEntry is %d bytes, BPEntrySize says %d", n, BPEntrySize)
	}
	if n := unsafe.Sizeof(bucketState{}); n > AllocEntrySize {
		t.Errorf("bucketState is %d bytes, AllocEntrySize says %d", n, AllocEntrySize)
	}
	if n := unsafe.Sizeof(Ref{}); n > 96 {
		t.Errorf("Ref grew to %d bytes", n)
	}
}
