package gen

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
)

// TestRealShapeCheck generates small real-shape filesystems, without and
// with faults, and checks them with bpcheck (generateAndCheck: findings
// exactly the manifest's, one pass and several, structure, sparseness);
// the manifest, in memory and on disk, names the shape.
func TestRealShapeCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Params
	}{
		{"1dev", Params{Shape: ShapeReal, Extents: 20000, Seed: 21}},
		// Not a multiple of 16 extents: the last data bucket is partly
		// filled (the only one: the others hold 16 blocks), for
		// missing_lru.
		{"1dev-faults", Params{Shape: ShapeReal, Extents: 6003, Seed: 22, Inject: withFaults(allFaults,
			map[string]int{KindMissingLRU: 1, KindFreespaceHole: 1, KindWrongAccounting: 1})}},
		{"2dev-r2", Params{Shape: ShapeReal, Devices: 2, Replicas: 2, DeviceSize: 1 << 30, Extents: 5000, Seed: 23}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := generateAndCheck(t, c.p)
			if m.Params.Shape != ShapeReal {
				t.Errorf("manifest params: shape %q", m.Params.Shape)
			}
		})
	}
	dir := t.TempDir()
	if _, err := Generate(dir, Params{Shape: ShapeReal, DeviceSize: 256 << 20, Extents: 100, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Params map[string]any `json:"params"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Params["shape"] != ShapeReal {
		t.Errorf("manifest.json params: shape %v", raw.Params["shape"])
	}
	// The default shape stays out of the manifest.
	dir = t.TempDir()
	if _, err := Generate(dir, Params{DeviceSize: 64 << 20, Extents: 100, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err != nil || strings.Contains(string(b), `"shape"`) {
		t.Errorf("default manifest names a shape (%v)", err)
	}
}

// shapeVisitor gathers the facts the real shape is about from the leaves
// of one btree.
type shapeVisitor struct {
	t        *testing.T
	leafKeys []int
	written  []uint32
	sizes    map[uint32]int
	perFile  map[uint64]int // extents of each inode
}

func (v *shapeVisitor) Node(n *btreeio.Node) error {
	if n.Level != 0 {
		return nil
	}
	v.leafKeys = append(v.leafKeys, len(n.Keys))
	v.written = append(v.written, n.SectorsWritten)
	for i := range n.Keys {
		k := &n.Keys[i].Key
		if n.BtreeID == bp.BtreeExtents {
			v.sizes[k.Size]++
			v.perFile[k.Pos.Inode]++
		}
	}
	return nil
}

func (v *shapeVisitor) NodeError(btree bp.BtreeID, level uint8, _ *bp.Key, err error) error {
	v.t.Errorf("btree %s level %d: %v", btree, level, err)
	return nil
}

// TestRealShapeLayout: the real shape has the facts measured on the
// real image: a 20 GiB device of 64 KiB buckets and nodes,
// encoded_extent_max 4 KiB, rotational; every extent one block; most
// files of one extent and a long tail; leaves filled to 2/5 of the node
// (821 extents or 656 backpointers on the real image, 56 sectors
// written).
func TestRealShapeLayout(t *testing.T) {
	p := Params{Shape: ShapeReal, Extents: 60000, Seed: 3}
	dir := t.TempDir()
	m, err := Generate(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	fs := open(t, dir, m)
	q := m.Params
	if q.DeviceSize != 20<<30 || q.BucketSize != 64<<10 || q.BtreeNodeSize != 64<<10 || q.ExtentMin != 8 || q.ExtentMax != 8 ||
		q.ExtentsPerFile != 65535 || q.Devices != 1 {
		t.Errorf("params %+v", q)
	}
	if b := fs.SB.EncodedExtentMaxBits(); b != 3 {
		t.Errorf("encoded_extent_max 2^%d sectors, want 4 KiB (2^3)", b)
	}
	if mb := fs.SB.Members[0]; !mb.Rotational() {
		t.Errorf("member 0 not rotational")
	}
	nodeU64s := (64<<10 - nodeHeaderBytes) / 8
	for _, c := range []struct {
		id       bp.BtreeID
		keyU64s  int // packed key and value
		wantKeys int // the real image's keys per leaf
		parts    int // runs of leaves that end in a node of their own
	}{
		{bp.BtreeExtents, 4, 821, 1},
		// The data's backpointers, then the nodes'.
		{bp.BtreeBackpointers, 5, 656, 2},
	} {
		v := &shapeVisitor{t: t, sizes: map[uint32]int{}, perFile: map[uint64]int{}}
		if err := fs.Walk(c.id, 0, v); err != nil {
			t.Fatal(err)
		}
		goal := nodeU64s * 2 / 5 / c.keyU64s
		other := 0
		for i, n := range v.leafKeys {
			if n != goal {
				// The last leaf of each part takes the rest.
				if other++; other > c.parts || n > goal {
					t.Errorf("%s leaf %d of %d: %d keys, want %d (2/5 of the node; real %d)", c.id, i, len(v.leafKeys), n, goal, c.wantKeys)
				}
			} else if v.written[i] != 56 {
				t.Errorf("%s leaf %d: %d sectors written, want 56", c.id, i, v.written[i])
			}
		}
		if c.id != bp.BtreeExtents {
			continue
		}
		if len(v.sizes) != 1 || v.sizes[8] != int(p.Extents) {
			t.Errorf("extent sizes %v, want all 8 sectors", v.sizes)
		}
		one, most := 0, 0
		for _, n := range v.perFile {
			if n == 1 {
				one++
			}
			most = max(most, n)
		}
		// 68 % of the real files have one extent; the mean is 10.2.
		files := len(v.perFile)
		if f := float64(one) / float64(files); f < 0.62 || f > 0.74 {
			t.Errorf("%d of %d files have one extent (%.2f), want about 0.68", one, files, f)
		}
		if mean := float64(p.Extents) / float64(files); mean < 5 || mean > 20 {
			t.Errorf("%.1f extents per file, want about 10", mean)
		}
		if most < 1000 {
			t.Errorf("the longest file has %d extents: no tail", most)
		}
	}
}

// TestRealShapeDeterministic: the same real-shape parameters give
// byte-identical images and manifests; another seed gives others.
func TestRealShapeDeterministic(t *testing.T) {
	checkDeterministic(t, Params{Shape: ShapeReal, DeviceSize: 256 << 20, Extents: 8000, Seed: 4, Inject: allFaults}, 2)
}

// TestRealShapeParams: the shape's defaults and its limits.
func TestRealShapeParams(t *testing.T) {
	for _, c := range []struct {
		p              Params
		size, bucket   int64
		extMin, extMax uint32
	}{
		{Params{Shape: ShapeReal}, 20 << 30, 64 << 10, 8, 8},
		// 10 M blocks of data need more than half of 20 and 40 GiB.
		{Params{Shape: ShapeReal, Extents: 10_000_000}, 80 << 30, 128 << 10, 8, 8},
		{Params{Shape: ShapeReal, DeviceSize: 1 << 30}, 1 << 30, 64 << 10, 8, 8},
		// Without the shape, the same size gets 1 MiB buckets.
		{Params{DeviceSize: 20 << 30}, 20 << 30, 1 << 20, 8, 128},
	} {
		q := c.p.WithDefaults()
		if err := q.Validate(); err != nil {
			t.Errorf("%+v: %v", c.p, err)
		}
		if q.DeviceSize != c.size || q.BucketSize != c.bucket || q.ExtentMin != c.extMin || q.ExtentMax != c.extMax {
			t.Errorf("%+v: device %d bucket %d extents %d-%d, want %d %d %d-%d", c.p, q.DeviceSize, q.BucketSize, q.ExtentMin, q.ExtentMax,
				c.size, c.bucket, c.extMin, c.extMax)
		}
	}
	for _, c := range []struct {
		p    Params
		want string
	}{
		{Params{Shape: "usr", DeviceSize: 64 << 20}, `shape "usr"`},
		{Params{Shape: ShapeReal, ExtentMax: 16}, "extent size"},
	} {
		if _, err := Generate(t.TempDir(), c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.p, err, c.want)
		}
	}
}

// TestRealFileLen: the file lengths follow the real distribution's
// classes and stay within the limit.
func TestRealFileLen(t *testing.T) {
	r := newRNG(1, 9)
	const n = 200000
	var one, ext uint64
	for range n {
		l := realFileLen(r, realMaxPerFile)
		if l < 1 || l > realMaxPerFile {
			t.Fatalf("file length %d", l)
		}
		if l == 1 {
			one++
		}
		ext += l
	}
	// Real: 89,723 of 131,766 files have one extent (0.681), 10.2
	// extents per file.
	if f := float64(one) / n; f < 0.67 || f > 0.69 {
		t.Errorf("one-extent files %.3f, want 0.681", f)
	}
	if mean := float64(ext) / n; mean < 8.5 || mean > 12 {
		t.Errorf("mean %.2f extents per file, want about 10.2", mean)
	}
	for range 1000 {
		if l := realFileLen(r, 3); l > 3 {
			t.Fatalf("file length %d above the limit 3", l)
		}
	}
}
