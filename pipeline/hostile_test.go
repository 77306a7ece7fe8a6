package pipeline_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
	"bpcheck/pipeline"
)

// TestHostileCounts gives a member an absurd bucket count and the journal
// an absurd bucket range (superblock checksum recomputed, so they are
// believed): the check must finish with findings or errors and allocate
// memory for what is on the device, not for what the superblock claims.
// (Bit flips found this: a flipped nbuckets made the planner allocate GBs.)
func TestHostileCounts(t *testing.T) {
	casedata.Require(t)
	src := casedata.CaseImages(t, "tiny")[0]
	img, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	const sbOff = 4096
	u64s := binary.LittleEndian.Uint32(img[sbOff+124:])
	raw := img[sbOff : sbOff+752+int(u64s)*8]
	sb, err := btreeio.ParseSuperblock(append([]byte(nil), raw...))
	if err != nil {
		t.Fatal(err)
	}
	mf := sb.Field(btreeio.FieldMembersV2)
	jf := sb.Field(btreeio.FieldJournalV2)
	if mf == nil || jf == nil {
		t.Fatal("tiny has no members_v2 or journal_v2 field")
	}
	// member 0: nbuckets at member offset 16; journal_v2: {start, nr} at 8.
	binary.LittleEndian.PutUint64(raw[mf.Offset+16+16:], 1<<47)
	binary.LittleEndian.PutUint64(raw[jf.Offset+8+8:], 1<<46)
	if err := btreeio.SealSuperblock(raw); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dev0.img")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := btreeio.Open([]string{path})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer fs.Close()
	if got := fs.SB.Members[0].NBuckets; got != 1<<47 {
		t.Fatalf("the hostile count was not taken: nbuckets %d", got)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2, MemoryBudget: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
		t.Errorf("the check allocated %d MB for a 64 MB image", alloc>>20)
	}
	t.Logf("%d findings, %d errors, %d passes, estimate %d bytes, allocated %d MB", len(res.Findings), len(res.Errors), res.Passes, res.EstimatedBytes, (after.TotalAlloc-before.TotalAlloc)>>20)
}
