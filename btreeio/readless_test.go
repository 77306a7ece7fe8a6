package btreeio

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"bpcheck/bp"
	"bpcheck/internal/casedata"
)

// ptrCollector keeps copies of every btree node pointer of a walk: the
// pointers in interior nodes, with the level of the node they point to.
type ptrCollector struct {
	ptrs []nodePtr
}

type nodePtr struct {
	btree bp.BtreeID
	level uint8
	key   bp.Key
	val   []byte
}

func (c *ptrCollector) Node(n *Node) error {
	if n.Level == 0 {
		return nil
	}
	for _, k := range n.Keys {
		if k.Key.Type == bp.KeyBtreePtrV2 || k.Key.Type == bp.KeyBtreePtr {
			c.ptrs = append(c.ptrs, nodePtr{n.BtreeID, n.Level - 1, k.Key, append([]byte(nil), k.Val...)})
		}
	}
	return nil
}

func (c *ptrCollector) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// renderParse describes everything a parse produced, for comparison.
func renderParse(n *Node, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "btree %d level %d %s-%s seq %x written %d bsets %d\n", n.BtreeID, n.Level, n.Min, n.Max, n.Seq, n.SectorsWritten, n.Bsets)
	if _, packed, ok := n.Packed(); ok {
		fmt.Fprintf(&b, "packed %x\n", packed)
	}
	for _, k := range n.Keys {
		fmt.Fprintf(&b, "%+v %x\n", k.Key, k.Val)
	}
	for _, p := range n.Problems {
		fmt.Fprintf(&b, "problem %v\n", p)
	}
	return b.String()
}

// TestPartialNodeReads checks what reading only the sectors a btree_ptr_v2
// says were written (readBytes) relies on: parsing a node never looks
// past them. Every node of every case and found image is parsed whole and
// with the bytes past readBytes overwritten by garbage (the stale bytes
// of a pooled buffer), eagerly and lazily: the nodes must be the same.
func TestPartialNodeReads(t *testing.T) {
	dir := casedata.Require(t)
	images := map[string][]string{}
	for _, name := range casedata.Cases(t) {
		images[name] = casedata.CaseImages(t, name)
	}
	found, _ := filepath.Glob(filepath.Join(dir, "found", "syz2024_*.img.zst"))
	for _, zst := range found {
		images[strings.TrimSuffix(filepath.Base(zst), ".img.zst")] = []string{casedata.Image(t, zst)}
	}
	partial, total := 0, 0
	for name, paths := range images {
		fs, err := Open(paths)
		if err != nil {
			continue // device sets and the like: not about node reads
		}
		if err := fs.LoadRoots(); err != nil {
			fs.Close()
			continue
		}
		c := &ptrCollector{}
		for _, r := range fs.Roots {
			c.ptrs = append(c.ptrs, nodePtr{r.Btree, r.Level, r.Key, append([]byte(nil), r.Val...)})
			if err := fs.Walk(r.Btree, 1, c); err != nil {
				t.Fatalf("%s: walk %v: %v", name, r.Btree, err)
			}
		}
		nodeBytes := int(fs.SB.BtreeNodeSectors()) * SectorSize
		for _, p := range c.ptrs {
			exp, err := ExpectFromKey(p.btree, p.level, &p.key, p.val)
			if err != nil {
				continue
			}
			if fs.Journal != nil {
				exp.MaxJournalSeq = fs.Journal.End
			}
			entries, _, err := bp.ValueEntries(p.key.Type, p.val)
			if err != nil {
				continue
			}
			it := bp.NewPtrIter(entries, p.key.Size, nil)
			for {
				d, ok, _ := it.Next()
				if !ok {
					break
				}
				dev := fs.deviceOf(d.Ptr.Dev)
				if dev == nil {
					continue
				}
				whole := make([]byte, nodeBytes)
				if _, err := dev.ReadAt(whole, int64(d.Ptr.Offset)*SectorSize); err != nil {
					continue
				}
				want := readBytes(exp, nodeBytes)
				if want > nodeBytes || want%nodeAlign != 0 && want != nodeBytes {
					t.Fatalf("%s: readBytes %d for a node of %d bytes", name, want, nodeBytes)
				}
				total++
				if want < nodeBytes {
					partial++
				}
				stale := bytes.Clone(whole)
				for i := want; i < len(stale); i++ {
					stale[i] = 0xa5 ^ byte(i)
				}
				for _, lazy := range []bool{false, true} {
					off := int64(d.Ptr.Offset) * SectorSize
					a, errA := parseNodeInto(&Node{}, fs.SB, dev.Path, off, bytes.Clone(whole), exp, lazy)
					// (clones: an encrypted node is decrypted in place)
					b, errB := parseNodeInto(&Node{}, fs.SB, dev.Path, off, bytes.Clone(stale), exp, lazy)
					if ra, rb := renderParse(a, errA), renderParse(b, errB); ra != rb {
						t.Fatalf("%s: %v level %d node at %d (lazy %v, %d of %d bytes read): parse differs with stale bytes past the read:\nwhole: %s\nread:  %s",
							name, p.btree, p.level, off, lazy, want, nodeBytes, ra, rb)
					}
				}
			}
		}
		fs.Close()
	}
	if partial == 0 {
		t.Fatalf("none of %d nodes was read in part: the test shows nothing", total)
	}
	t.Logf("%d nodes, %d of them read in part", total, partial)
}

// TestCountKeys counts a bset's keys by their u64s, up to a key of u64s 0.
func TestCountKeys(t *testing.T) {
	for _, c := range []struct {
		data []byte
		want int
	}{
		{nil, 0},
		{append([]byte{1}, make([]byte, 7)...), 1},
		{append(append([]byte{2}, make([]byte, 15)...), append([]byte{1}, make([]byte, 7)...)...), 2},
		{append(append([]byte{1}, make([]byte, 7)...), make([]byte, 8)...), 1}, // u64s 0 ends it
		{[]byte{3, 0, 0}, 1}, // runs past the end: counted, the decoder drops it
	} {
		if got := countKeys(c.data); got != c.want {
			t.Errorf("countKeys(% x) = %d, want %d", c.data, got, c.want)
		}
	}
}
