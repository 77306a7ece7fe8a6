package pipeline_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/csum"
	"bpcheck/internal/casedata"
	"bpcheck/pipeline"
	"bpcheck/report"
)

// resum recomputes the checksum of every bset of the node at off in img.
func resum(t *testing.T, img []byte, off int64, nodeBytes, blockBytes int, seq uint64) {
	t.Helper()
	node := img[off : off+int64(nodeBytes)]
	for boff := 0; boff < nodeBytes; {
		var end int
		if boff == 0 {
			end = 160 + int(binary.LittleEndian.Uint16(node[158:]))*8
		} else {
			if binary.LittleEndian.Uint64(node[boff+16:]) != seq {
				return
			}
			end = boff + 40 + int(binary.LittleEndian.Uint16(node[boff+38:]))*8
		}
		flagsAt := boff + 32
		if boff == 0 {
			flagsAt = 152
		}
		ct := csum.Type(binary.LittleEndian.Uint32(node[flagsAt:]) & 0xf)
		s, err := csum.Compute(ct, node[boff+16:end])
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(node[boff:], s.Lo)
		binary.LittleEndian.PutUint64(node[boff+8:], s.Hi)
		boff += (end - boff + blockBytes - 1) / blockBytes * blockBytes
	}
}

// TestDuplicateClaims points one extent of the tiny case at the space of
// another (rewriting its leaf and the leaf's checksums in a copy): with
// the moved extent's own checksum it is dup_backpointer_to_bad_csum_extent;
// with a checksum that matches the data it now points at, both extents
// are good and it is dup_extents_to_reflink.
func TestDuplicateClaims(t *testing.T) {
	casedata.Require(t)
	src := casedata.CaseImages(t, "tiny")[0]
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	const bucket = 128 // sectors
	ptrWord := func(sector uint64) uint64 { return 1 | sector<<4 }
	a := uint64(55*bucket + 96)  // extent 2147483655:24 (24 sectors)
	b := uint64(55*bucket + 120) // extent 2147483656:8 (8 sectors)
	fs0, err := btreeio.Open([]string{src})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs0.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	r := fs0.Root(bp.BtreeExtents)
	if r.Level != 0 {
		t.Fatalf("tiny extents root at level %d; test expects a single leaf", r.Level)
	}
	n, err := fs0.ReadNode(bp.BtreeExtents, 0, &r.Key, r.Val)
	if err != nil {
		t.Fatal(err)
	}
	nodeBytes := int(fs0.SB.BtreeNodeSectors()) * 512
	blockBytes := int(fs0.SB.BlockSize) * 512
	fs0.Close()

	for _, tc := range []struct {
		name     string
		goodCsum bool
		want     string
	}{
		{"bad-csum", false, report.DupBackpointerToBadCsumExtent},
		{"both-good", true, report.DupExtentsToReflink},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := append([]byte(nil), orig...)
			node := img[n.Offset : n.Offset+int64(nodeBytes)]
			var old, repl [8]byte
			binary.LittleEndian.PutUint64(old[:], ptrWord(b))
			binary.LittleEndian.PutUint64(repl[:], ptrWord(a))
			i := bytes.Index(node, old[:])
			if i < 0 || bytes.Contains(node[i+1:], old[:]) {
				t.Fatal("pointer word of the extent not found exactly once")
			}
			copy(node[i:], repl[:])
			if tc.goodCsum {
				// The crc32 entry precedes the pointer: its csum is the
				// top 32 bits of the entry word (crc32c, 8 sectors).
				s, _ := csum.Compute(csum.CRC32C, img[a*512:(a+8)*512])
				w := binary.LittleEndian.Uint64(node[i-8:])
				w = w&(1<<32-1) | s.Lo<<32
				binary.LittleEndian.PutUint64(node[i-8:], w)
			}
			resum(t, img, n.Offset, nodeBytes, blockBytes, n.Seq)
			path := filepath.Join(t.TempDir(), "dev0.img")
			if err := os.WriteFile(path, img, 0o644); err != nil {
				t.Fatal(err)
			}
			fs, err := btreeio.Open([]string{path})
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			if err := fs.LoadRoots(); err != nil {
				t.Fatal(err)
			}
			res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			codes := map[string]int{}
			for _, f := range res.Findings {
				codes[f.Code]++
				t.Logf("%s %s %s", f.Code, f.Pos, f.Detail)
				if f.Code == tc.want && f.Pos.String() != "2147483656:8:4294967295" {
					t.Errorf("%s names %s, want the moved extent", f.Code, f.Pos)
				}
			}
			if codes[tc.want] != 1 {
				t.Errorf("want one %s, got %v", tc.want, codes)
			}
			if codes[report.BackpointerToMissingPtr] != 1 {
				t.Errorf("the moved extent's old backpointer must be backpointer_to_missing_ptr: %v", codes)
			}
		})
	}
}
