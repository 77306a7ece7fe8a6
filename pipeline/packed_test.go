package pipeline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/csum"
	"bpcheck/internal/casedata"
	"bpcheck/report"
	"bpcheck/shard"
)

// rawLeaf is a leaf as read from its device, with what its parent pointer
// says of it.
type rawLeaf struct {
	buf []byte
	exp btreeio.NodeExpect
}

// rawLeaves collects the leaves of one btree: it notes where each was
// read from and reads its written sectors again from the device file.
type rawLeaves struct {
	tb     testing.TB
	leaves []rawLeaf
	max    int
}

func (r *rawLeaves) Node(n *btreeio.Node) error {
	if n.Level != 0 || len(r.leaves) >= r.max {
		return nil
	}
	f, err := os.Open(n.Dev)
	if err != nil {
		r.tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, int(n.SectorsWritten)*btreeio.SectorSize)
	if _, err := f.ReadAt(buf, n.Offset); err != nil {
		r.tb.Fatal(err)
	}
	r.leaves = append(r.leaves, rawLeaf{buf: buf, exp: btreeio.NodeExpect{
		Btree: n.BtreeID, Level: 0, Min: n.Min, Max: n.Max, Seq: n.Seq, V2: true, SectorsWritten: uint16(n.SectorsWritten),
	}})
	return nil
}

func (r *rawLeaves) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// fixFirstBset recomputes the checksum of a node's first bset after its
// bytes were changed (nothing for keyed or unknown checksum types or a
// bset running past buf).
func fixFirstBset(buf []byte) {
	le := binary.LittleEndian
	ct := csum.Type(le.Uint32(buf[152:]) & 0xf)
	end := btreeio.NodeHeaderBytes + 8*int(le.Uint16(buf[158:]))
	if end > len(buf) {
		return
	}
	s, err := csum.Compute(ct, buf[16:end])
	if err != nil {
		return
	}
	le.PutUint64(buf[0:], s.Lo)
	le.PutUint64(buf[8:], s.Hi)
}

// packedCase is a case opened for FuzzPackedLeaf: its checker and the raw
// leaves of its backpointers and extents btrees.
type packedCase struct {
	c      *checker
	leaves []rawLeaf
}

func openPackedCase(f *testing.F, name string) packedCase {
	fs, err := btreeio.Open(casedata.CaseImages(f, name))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { fs.Close() })
	if err := fs.LoadRoots(); err != nil {
		f.Fatal(err)
	}
	pc := packedCase{c: newChecker(fs, Options{Workers: 1})}
	for _, id := range []bp.BtreeID{bp.BtreeBackpointers, bp.BtreeExtents} {
		r := &rawLeaves{tb: f, max: 12}
		if err := fs.Walk(id, 0, r); err != nil {
			f.Fatal(err)
		}
		pc.leaves = append(pc.leaves, r.leaves...)
	}
	return pc
}

// hidePacked is a visitor that takes only decoded nodes.
type hidePacked struct{ v btreeio.Visitor }

func (h hidePacked) Node(n *btreeio.Node) error { return h.v.Node(n) }
func (h hidePacked) NodeError(id bp.BtreeID, level uint8, k *bp.Key, err error) error {
	return h.v.NodeError(id, level, k, err)
}

// FuzzPackedLeaf compares the packed-key paths of the backpointer loader
// and of the producer (PackedLeaf, through btreeio.VisitLeaf as walks
// call it) with their decoded-node paths (Node on ParseNode's node), on
// real leaves of a format B and a format A case whose first bset is
// mutated (checksum fixed): out-of-order, repeated, deleted and
// undecodable keys, invalid backpointers, other devices, a node range
// moved inside its keys. The loaders must hold the same backpointers in
// the same shards (compared through the findings Finish makes of them)
// and add the same findings and errors; the producers
// must emit the same records to the same shards, count the same
// statistics and report the same errors (in any order: a leaf handed over
// midway reports its problems after the errors of the keys already
// emitted).
func FuzzPackedLeaf(f *testing.F) {
	casedata.Require(f)
	cases := []packedCase{openPackedCase(f, "many-extents"), openPackedCase(f, "a-many-extents")}
	for ci, pc := range cases {
		for li := range pc.leaves {
			f.Add(uint8(ci), uint8(li), []byte{}, uint64(0), uint64(1))
			f.Add(uint8(ci), uint8(li), []byte{0, 0, 0x10, 2, 0, 1}, uint64(0), uint64(2))
			f.Add(uint8(ci), uint8(li), []byte{200, 0, 0xff, 40, 1, 7, 9, 0, 1}, uint64(1), uint64(3))
			f.Add(uint8(ci), uint8(li), []byte{}, uint64(0), uint64(3<<8|8|4)) // max moved to the 4th key
			f.Add(uint8(ci), uint8(li), []byte{}, uint64(0), uint64(1<<8|4))   // min moved to the 2nd key
		}
	}
	f.Fuzz(func(t *testing.T, which, leaf uint8, edits []byte, split, seed uint64) {
		pc := cases[int(which)%len(cases)]
		c := pc.c
		rl := pc.leaves[int(leaf)%len(pc.leaves)]
		buf := bytes.Clone(rl.buf)
		// edits: (offset lo, offset hi, xor) triples into the first
		// bset's keys; a triple with hi bit 7 set copies 8 bytes from
		// one key offset to another instead (repeats, reorders).
		end := btreeio.NodeHeaderBytes + 8*int(binary.LittleEndian.Uint16(buf[158:]))
		if end > len(buf) || end <= btreeio.NodeHeaderBytes {
			return
		}
		span := end - btreeio.NodeHeaderBytes
		for i := 0; i+2 < len(edits); i += 3 {
			at := btreeio.NodeHeaderBytes + int(binary.LittleEndian.Uint16(edits[i:])&0x7fff)%span
			if edits[i+1]&0x80 != 0 {
				from := btreeio.NodeHeaderBytes + int(edits[i+2])*8%span
				copy(buf[at:min(at+8, end)], buf[from:min(from+8, end)])
			} else {
				buf[at] ^= edits[i+2]
			}
		}
		fixFirstBset(buf)
		const dev, off = "fuzzdev", 1 << 20
		exp := rl.exp
		if seed&4 != 0 {
			// The node's range moved inside its keys (the pointer says
			// the same): keys outside it are dropped on the decoded path.
			if n, err := btreeio.ParseNode(c.fs.SB, dev, off, bytes.Clone(buf), exp); err == nil && len(n.Keys) > 0 {
				at := n.Keys[int(seed>>8%uint64(len(n.Keys)))].Key.Pos
				if seed&8 != 0 {
					at.Put(buf[52:])
					exp.Max = at
				} else {
					at.Put(buf[32:])
					exp.Min = at
				}
				fixFirstBset(buf)
			}
		}
		eager, errE := btreeio.ParseNode(c.fs.SB, dev, off, bytes.Clone(buf), exp)
		lazyNode := func() *btreeio.Node {
			n, err := btreeio.ParseNodePacked(c.fs.SB, dev, off, bytes.Clone(buf), exp)
			if (err == nil) != (errE == nil) {
				t.Fatalf("lazy parse error %v, eager %v", err, errE)
			}
			return n
		}
		if errE != nil {
			lazyNode()
			return
		}
		// Bucket ranges: the whole space, cut in two at split.
		end2 := endKey(c.fs)
		mid := shard.BucketKey(split % (uint64(end2) + 1))
		lo, hi := shard.BucketKey(0), ^shard.BucketKey(0)
		if seed%2 == 1 {
			hi = end2 // not open-ended
		}
		if mid > hi {
			mid = hi
		}
		if exp.Btree == bp.BtreeBackpointers {
			comparePackedLoad(t, c, lazyNode(), eager, lo, mid, hi)
		} else {
			comparePackedProduce(t, c, lazyNode(), eager, lo, mid, hi)
		}
	})
}

// comparePackedLoad loads lazy through VisitLeaf and eager through Node.
func comparePackedLoad(t *testing.T, c *checker, lazy, eager *btreeio.Node, lo, mid, hi shard.BucketKey) {
	t.Helper()
	load := func(n *btreeio.Node, v func(l *bpLoader) btreeio.Visitor) ([]string, []int, []string) {
		shards := []*shard.Shard{shard.New(c.cfg, lo, mid), shard.New(c.cfg, mid, hi)}
		l := &bpLoader{c: c, shards: shards, lo: lo, hi: hi}
		l.plo, l.phi = c.bpRange(lo, hi)
		l.open = hi == ^shard.BucketKey(0)
		before, errsBefore := len(c.findings), len(c.errs)
		c.problemNodes = nil // both parses are of the same node
		if err := btreeio.VisitLeaf(v(l), n); err != nil {
			t.Fatal(err)
		}
		added := findingStrings(c.findings[before:])
		c.findings = c.findings[:before]
		for _, err := range c.errs[errsBefore:] {
			added = append(added, "error: "+err.Error())
		}
		c.errs = c.errs[:errsBefore]
		var counts []int
		var left []string
		for _, sh := range shards {
			nb, _ := sh.Counts()
			counts = append(counts, nb)
			left = append(left, findingStrings(sh.Finish(nil))...)
		}
		return added, counts, left
	}
	fa, ca, la := load(lazy, func(l *bpLoader) btreeio.Visitor { return l })
	fb, cb, lb := load(eager, func(l *bpLoader) btreeio.Visitor { return hidePacked{l} })
	if !slices.Equal(fa, fb) {
		t.Fatalf("findings differ\npacked  %q\ndecoded %q", fa, fb)
	}
	if !slices.Equal(ca, cb) || !slices.Equal(la, lb) {
		t.Fatalf("shards differ: packed %v backpointers, decoded %v\npacked  %q\ndecoded %q", ca, cb, la, lb)
	}
}

// comparePackedProduce produces lazy through VisitLeaf and eager through
// Node, into emitters of the same shards.
func comparePackedProduce(t *testing.T, c *checker, lazy, eager *btreeio.Node, lo, mid, hi shard.BucketKey) {
	t.Helper()
	produce := func(n *btreeio.Node, packed bool) ([][]shard.Ref, Stats, []string) {
		e := testEmitter(c, lo, mid, hi, 0)
		before := len(c.errs)
		p := &producer{e: e, dataBtree: true}
		var v btreeio.Visitor = p
		if !packed {
			v = hidePacked{p}
		}
		if err := btreeio.VisitLeaf(v, n); err != nil {
			t.Fatal(err)
		}
		var errs []string
		for _, err := range c.errs[before:] {
			errs = append(errs, err.Error())
		}
		c.errs = c.errs[:before]
		slices.Sort(errs)
		recs := make([][]shard.Ref, len(e.bufs))
		for i := range e.bufs {
			for len(e.chans[i]) > 0 {
				recs[i] = append(recs[i], <-e.chans[i]...)
			}
			recs[i] = append(recs[i], e.bufs[i]...)
		}
		return recs, e.stats, errs
	}
	ra, sa, ea := produce(lazy, true)
	rb, sb, eb := produce(eager, false)
	if !slices.Equal(ea, eb) {
		t.Fatalf("errors differ\npacked  %q\ndecoded %q", ea, eb)
	}
	if !reflect.DeepEqual(sa, sb) {
		t.Fatalf("stats differ: packed %+v, decoded %+v", sa, sb)
	}
	for i := range ra {
		if len(ra[i]) != len(rb[i]) {
			t.Fatalf("shard %d: packed %d records, decoded %d", i, len(ra[i]), len(rb[i]))
		}
		for j := range ra[i] {
			if ra[i][j] != rb[i][j] {
				t.Fatalf("shard %d record %d: packed %+v, decoded %+v", i, j, ra[i][j], rb[i][j])
			}
		}
	}
}

// findingStrings renders findings for comparison.
func findingStrings(fs []report.Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = fmt.Sprintf("%+v", f)
	}
	return out
}
