package gen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/listfmt"
	"bpcheck/pipeline"
	"bpcheck/unlock"
)

// allFaults asks for every fault kind.
var allFaults = map[string]int{
	KindMissingBP: 3, KindDanglingBP: 2, KindWrongBP: 2, KindMissingAlloc: 2, KindMissingDevice: 1,
	KindWrongDirty: 2, KindMissingNodeBP: 2, KindDupBadCsum: 1,
}

var cases = []struct {
	name string
	p    Params
}{
	{"1dev", Params{DeviceSize: 256 << 20, Extents: 3000, Seed: 1}},
	{"1dev-deep-faults", Params{DeviceSize: 256 << 20, Extents: 4000, BtreeNodeSize: 4096, Seed: 2, Inject: allFaults}},
	{"2dev-r1-faults", Params{Devices: 2, DeviceSize: 256 << 20, Extents: 3000, Seed: 3, Inject: allFaults}},
	{"2dev-r2", Params{Devices: 2, Replicas: 2, DeviceSize: 256 << 20, Extents: 2500, Seed: 4}},
	{"2dev-r2-faults", Params{Devices: 2, Replicas: 2, DeviceSize: 256 << 20, Extents: 2500, BtreeNodeSize: 8192, Seed: 5, Inject: allFaults}},
	{"3dev-r2-shared-buckets-faults", Params{Devices: 3, Replicas: 2, DeviceSize: 128 << 20, BucketSize: 128 << 10, BtreeNodeSize: 16 << 10,
		Extents: 2000, ExtentMin: 8, ExtentMax: 64, ExtentsPerFile: 1, Seed: 6, Inject: allFaults}},
	{"3dev-ec", Params{Devices: 3, DeviceSize: 128 << 20, Extents: 2000, ECStripes: 6, Seed: 7}},
	{"4dev-ec-faults", Params{Devices: 4, DeviceSize: 128 << 20, BtreeNodeSize: 16 << 10, Extents: 3000, ExtentMax: 64,
		ECStripes: 10, Seed: 8, Inject: withFaults(allFaults, map[string]int{KindWrongStripeSectors: 2, KindWrongParitySectors: 2, KindMissingStripeBP: 3, KindWrongStripeBlockCount: 2})}},
	// The allocator's derived btrees and accounting, with the other faults.
	{"2dev-r2-allocator-faults", Params{Devices: 2, Replicas: 2, DeviceSize: 256 << 20, Extents: 2500, Seed: 13,
		Inject: withFaults(allFaults, map[string]int{KindMissingLRU: 2, KindFreespaceHole: 2, KindWrongAccounting: 1})}},
	{"3dev-ec-allocator-faults", Params{Devices: 3, DeviceSize: 128 << 20, Extents: 2000, ECStripes: 6, Seed: 14,
		Inject: map[string]int{KindMissingLRU: 2, KindFreespaceHole: 3, KindWrongAccounting: 1}}},
	// Keys past the devices' last buckets: a backpointer (its shard is
	// the one whose positions hold it, whatever the cuts) and alloc keys.
	{"2dev-past-end-faults", Params{Devices: 2, DeviceSize: 64 << 20, BtreeNodeSize: 16 << 10, Extents: 6000, ExtentMax: 16, Seed: 5,
		Inject: map[string]int{KindBPPastEnd: 4, KindAllocPastEnd: 2, KindMissingAlloc: 1}}},
	// Encrypted: the key sealed with a passphrase, or in plain text.
	{"2dev-r2-enc-faults", Params{Devices: 2, Replicas: 2, DeviceSize: 256 << 20, Extents: 2500, BtreeNodeSize: 8192, Seed: 9, Inject: allFaults,
		Encrypted: true, Passphrase: testPassphrase}},
	{"1dev-enc-plain-key", Params{DeviceSize: 256 << 20, Extents: 3000, Seed: 10, Encrypted: true}},
	{"3dev-ec-enc-faults", Params{Devices: 3, DeviceSize: 128 << 20, BtreeNodeSize: 16 << 10, Extents: 2000, ExtentMax: 64, ECStripes: 6, Seed: 12,
		Encrypted: true, Inject: map[string]int{KindMissingBP: 1, KindWrongStripeSectors: 1, KindWrongParitySectors: 1, KindMissingStripeBP: 1, KindWrongStripeBlockCount: 1}}},
}

// testPassphrase seals the key of the encrypted test filesystems.
const testPassphrase = "correct horse battery"

// withFaults returns the union of fault maps.
func withFaults(ms ...map[string]int) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		for k, n := range m {
			out[k] += n
		}
	}
	return out
}

// open opens the generated filesystem; an encrypted one is unlocked with
// its passphrase (m.Params, as Generate returned it), given in a file as
// to `bpcheck check --passphrase-file`.
func open(t *testing.T, dir string, m *Manifest) *btreeio.FS {
	t.Helper()
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, filepath.Join(dir, f))
	}
	if !m.Params.Encrypted {
		return openImages(t, paths)
	}
	fs, err := btreeio.Open(paths)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	if fs.KeySealed() != m.KeySealed || m.KeySealed != (m.Params.Passphrase != "") {
		t.Fatalf("key sealed %v, manifest %v, passphrase given %v", fs.KeySealed(), m.KeySealed, m.Params.Passphrase != "")
	}
	pf := filepath.Join(t.TempDir(), "passphrase.txt")
	if err := os.WriteFile(pf, []byte(m.Params.Passphrase+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := unlock.Unlock(fs, unlock.Options{PassphraseFile: pf, NoKeyring: true}); err != nil {
		t.Fatal(err)
	}
	if err := fs.LoadRoots(); err != nil {
		t.Fatal(err)
	}
	return fs
}

func findingKeys(fs []Finding) []string {
	out := make([]string, len(fs))
	for i := range fs {
		out[i] = fs[i].Key()
	}
	sort.Strings(out)
	return out
}

// TestGenerateCheck generates each case and checks it with bpcheck: the
// findings must be exactly the manifest's (none without faults), with no
// read errors, for one pass and for many.
func TestGenerateCheck(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { generateAndCheck(t, c.p) })
	}
}

// generateAndCheck generates p and checks it with bpcheck (findings
// exactly the manifest's, no read errors, one pass and several), its
// structure and its sparseness.
func generateAndCheck(t *testing.T, p Params) *Manifest {
	t.Helper()
	dir := t.TempDir()
	m, err := Generate(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Inject) == 0 && len(m.Findings) != 0 {
		t.Fatalf("no faults asked for, manifest lists %d findings", len(m.Findings))
	}
	for k, n := range p.Inject {
		if m.Injected[k] != n {
			t.Errorf("fault %s: asked %d, injected %d", k, n, m.Injected[k])
		}
	}
	fs := open(t, dir, m)
	if got, want := bp.VersionString(fs.SB.Version), mustFormat(&p).name; got != want || m.Version != want {
		t.Errorf("superblock version %s, manifest %s, want %s", got, m.Version, want)
	}
	want := findingKeys(m.Findings)
	for _, budget := range []int64{0, 64 << 10} {
		res, err := pipeline.Run(context.Background(), fs, pipeline.Options{Workers: 2, MemoryBudget: budget})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Errors {
			t.Errorf("read error: %v", e)
		}
		got := make([]Finding, len(res.Findings))
		for i := range res.Findings {
			got[i] = FindingFromReport(&res.Findings[i])
		}
		if g := findingKeys(got); strings.Join(g, "\n") != strings.Join(want, "\n") {
			t.Errorf("budget %d (%d passes): findings differ\ngot:\n  %s\nwant:\n  %s", budget, res.Passes,
				strings.Join(g, "\n  "), strings.Join(want, "\n  "))
		}
		if budget != 0 && res.Passes < 2 {
			t.Errorf("budget %d: %d pass(es), want several", budget, res.Passes)
		}
	}
	checkStructure(t, fs, m)
	checkSparse(t, dir, m)
	return m
}

// checkSparse: the images hold only what the manifest says was written
// (metadata), the data regions are holes.
func checkSparse(t *testing.T, dir string, m *Manifest) {
	t.Helper()
	var allocated int64
	for _, f := range m.Files {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != m.Params.DeviceSize {
			t.Errorf("%s: %d bytes, want %d", f, fi.Size(), m.Params.DeviceSize)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			allocated += st.Blocks * 512
		}
	}
	if slack := int64(len(m.Files)) * 64 << 10; allocated > m.MetadataBytes+slack {
		t.Errorf("%d bytes allocated on disk for %d bytes of metadata: data was written", allocated, m.MetadataBytes)
	}
}

// structureVisitor reads every node of a btree down to the leaves.
type structureVisitor struct {
	t      *testing.T
	keys   int64
	nodes  int
	levels map[uint8]int
}

func (v *structureVisitor) Node(n *btreeio.Node) error {
	v.nodes++
	v.levels[n.Level]++
	for _, p := range n.Problems {
		v.t.Errorf("btree %s level %d node %s: %v", n.BtreeID, n.Level, n.Max, p)
	}
	if n.Bsets != 1 {
		v.t.Errorf("btree %s node %s: %d bsets", n.BtreeID, n.Max, n.Bsets)
	}
	for i := range n.Keys {
		k := &n.Keys[i].Key
		if k.Pos.Less(n.Min) || n.Max.Less(k.Pos) {
			v.t.Errorf("btree %s node %s..%s holds key %s", n.BtreeID, n.Min, n.Max, k.Pos)
		}
		if k.Format != bp.FormatPacked {
			v.t.Errorf("btree %s key %s is not packed", n.BtreeID, k.Pos)
		}
	}
	if n.Level == 0 {
		v.keys += int64(len(n.Keys))
	}
	return nil
}

func (v *structureVisitor) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	v.t.Errorf("btree %s level %d: %v", btree, level, err)
	return nil
}

// checkStructure walks every btree to its leaves and compares the key and
// node counts with the manifest, checks the journal against the clean
// section as recovery does, and lists the extents like bcachefs list.
func checkStructure(t *testing.T, fs *btreeio.FS, m *Manifest) {
	t.Helper()
	if len(fs.Roots) != len(m.Btrees) {
		t.Errorf("%d roots, manifest has %d btrees", len(fs.Roots), len(m.Btrees))
	}
	for _, r := range fs.Roots {
		v := &structureVisitor{t: t, levels: map[uint8]int{}}
		if err := fs.Walk(r.Btree, 0, v); err != nil {
			t.Fatal(err)
		}
		c, ok := m.Btrees[r.Btree.String()]
		if !ok || c.Keys != v.keys || c.Nodes != v.nodes || c.RootLevel != int(r.Level) {
			t.Errorf("btree %s: %d keys %d nodes root level %d, manifest %+v", r.Btree, v.keys, v.nodes, r.Level, c)
		}
		if r.Key.Pos != bp.SPosMax || v.levels[r.Level] != 1 {
			t.Errorf("btree %s: root at %s, %d nodes at the root level", r.Btree, r.Key.Pos, v.levels[r.Level])
		}
	}
	if got := m.Btrees["extents"].Keys; got != m.Extents {
		t.Errorf("extents btree has %d keys, manifest says %d extents", got, m.Extents)
	}
	// The journal: one flushed entry whose seq is the clean section's and
	// whose roots are the clean section's, byte for byte.
	j := fs.ReadJournal()
	if len(j.Errors) != 0 || len(j.Replay) != 1 || j.End != fs.SB.Clean.JournalSeq {
		t.Errorf("journal: %s, errors %v", j.Summary(), j.Errors)
	} else {
		jr, err := j.Roots()
		if err != nil || len(jr) != len(fs.Roots) {
			t.Fatalf("journal roots: %v (%d, clean %d)", err, len(jr), len(fs.Roots))
		}
		for i := range jr {
			a, b := jr[i], fs.Roots[i]
			if a.Btree != b.Btree || a.Level != b.Level || a.Key != b.Key || !bytes.Equal(a.Val, b.Val) {
				t.Errorf("journal root %s differs from the clean section's", a.Btree)
			}
		}
	}
	// bcachefs list -b extents round trip.
	var out bytes.Buffer
	lv := &listVisitor{p: listfmt.NewPrinter(fs), w: &out}
	if err := fs.Walk(bp.BtreeExtents, 0, lv); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\nu64s ") + 1; int64(n) != m.Extents {
		t.Errorf("list -b extents: %d keys, want %d", n, m.Extents)
	}
	if !m.Params.Encrypted && !strings.Contains(out.String(), "csum crc32c 0:0  compress none") {
		t.Errorf("list -b extents: no crc32c entry of zeros in\n%.400s", out.String())
	}
	if m.Params.Encrypted && (!strings.Contains(out.String(), "csum chacha20_poly1305_80 ") ||
		!strings.Contains(out.String(), " ver 1  : durability") && !strings.Contains(out.String(), " ver 1: durability")) {
		t.Errorf("list -b extents: no chacha20_poly1305_80 checksum or no version 1 in\n%.400s", out.String())
	}
}

type listVisitor struct {
	p   *listfmt.Printer
	w   io.Writer
	buf []byte
}

func (v *listVisitor) Node(n *btreeio.Node) error {
	if n.Level != 0 {
		return nil
	}
	for i := range n.Keys {
		v.buf = v.p.AppendKey(v.buf[:0], n.BtreeID, &n.Keys[i].Key, n.Keys[i].Val)
		v.buf = append(v.buf, '\n')
		v.w.Write(v.buf)
	}
	return nil
}

func (v *listVisitor) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// extentVisitor collects the extents btree's keys.
type extentVisitor struct {
	keys []btreeio.NodeKey
}

func (v *extentVisitor) Node(n *btreeio.Node) error {
	if n.Level == 0 {
		for _, k := range n.Keys {
			k.Val = append([]byte(nil), k.Val...) // the node's buffer is reused
			v.keys = append(v.keys, k)
		}
	}
	return nil
}

func (v *extentVisitor) NodeError(bp.BtreeID, uint8, *bp.Key, error) error { return nil }

// TestExtentsRoundTrip replays the extent source and compares every key of
// the extents btree with what was generated: position, size, crc entry
// and pointers.
func TestExtentsRoundTrip(t *testing.T) {
	for _, c := range cases {
		if len(c.p.Inject) != 0 || c.p.ECStripes != 0 {
			continue // see TestECStructure for erasure-coded extents
		}
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			m, err := Generate(dir, c.p)
			if err != nil {
				t.Fatal(err)
			}
			fs := open(t, dir, m)
			v := &extentVisitor{}
			if err := fs.Walk(bp.BtreeExtents, 0, v); err != nil {
				t.Fatal(err)
			}
			p := c.p.WithDefaults()
			var devs []*device
			for i := 0; i < p.Devices; i++ {
				devs = append(devs, newDevice(i, &p))
			}
			src := newExtentSource(&p, devs)
			if int64(len(v.keys)) != p.Extents {
				t.Fatalf("%d extents on disk, %d generated", len(v.keys), p.Extents)
			}
			var x extent
			for i := range v.keys {
				if err := src.next(&x); err != nil {
					t.Fatal(err)
				}
				k := &v.keys[i]
				if k.Key.Type != bp.KeyExtent || k.Key.Pos != x.pos || k.Key.Size != x.size {
					t.Fatalf("extent %d: %s %s len %d, generated %s len %d", i, k.Key.Type, k.Key.Pos, k.Key.Size, x.pos, x.size)
				}
				// Encrypted: key versions 1, 2, … in key order, and the
				// MAC of the zeros under the key and that version.
				wantCRC := bp.CRC{Kind: bp.EntryCRC32, CsumType: dataCsumType}
				if p.Encrypted {
					if k.Key.Version != (bp.Version{Lo: uint64(i + 1)}) {
						t.Fatalf("extent %d: version %+v, want %d", i, k.Key.Version, i+1)
					}
					lo, hi, err := zerosMAC(fs.SB.CryptKey, uint64(i+1), x.size)
					if err != nil {
						t.Fatal(err)
					}
					wantCRC = bp.CRC{Kind: bp.EntryCRC64, CsumType: uint8(dataCsumEncrypted), CsumLo: lo, CsumHi: hi}
				} else if k.Key.Version != (bp.Version{}) {
					t.Fatalf("extent %d: version %+v", i, k.Key.Version)
				}
				it := bp.NewPtrIter(k.Val, k.Key.Size, nil)
				for j := 0; ; j++ {
					d, ok, err := it.Next()
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						if j != x.n {
							t.Fatalf("extent %d: %d pointers, want %d", i, j, x.n)
						}
						break
					}
					if d.Ptr.Dev != x.dev[j] || d.Ptr.Offset != x.off[j] || d.Ptr.Gen != 0 || d.Ptr.Cached ||
						d.CRC.Kind != wantCRC.Kind || d.CRC.CsumType != wantCRC.CsumType || d.CRC.CompressedSize != x.size ||
						d.CRC.CsumLo != wantCRC.CsumLo || d.CRC.CsumHi != wantCRC.CsumHi {
						t.Fatalf("extent %d pointer %d: %+v, want dev %d offset %d", i, j, d, x.dev[j], x.off[j])
					}
				}
			}
		})
	}
}

func hashDir(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][32]byte{}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		var s [32]byte
		copy(s[:], h.Sum(nil))
		out[e.Name()] = s
	}
	return out
}

// TestDeterministic: the same parameters give byte-identical images and
// manifests; another seed gives other images.
func TestDeterministic(t *testing.T) {
	checkDeterministic(t, Params{Devices: 2, Replicas: 2, DeviceSize: 64 << 20, Extents: 1500, ExtentMax: 32, BtreeNodeSize: 8192, Seed: 5, Inject: allFaults}, 3)
}

// checkDeterministic generates p twice with its seed and once with the
// next: the files (files of them) must be byte-identical between the
// first two and all differ in the third.
func checkDeterministic(t *testing.T, p Params, files int) {
	t.Helper()
	var hashes []map[string][32]byte
	for _, seed := range []uint64{p.Seed, p.Seed, p.Seed + 1} {
		q := p
		q.Seed = seed
		dir := t.TempDir()
		if _, err := Generate(dir, q); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hashDir(t, dir))
	}
	if len(hashes[0]) != files {
		t.Fatalf("files: %v", hashes[0])
	}
	for name, h := range hashes[0] {
		if hashes[1][name] != h {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
		if hashes[2][name] == h {
			t.Errorf("%s is the same with another seed", name)
		}
	}
}

func TestParamErrors(t *testing.T) {
	for _, c := range []struct {
		p    Params
		want string
	}{
		{Params{DeviceSize: 32 << 20, ExtentMax: 64, Extents: 10000}, "device too small"},
		{Params{Devices: 1, Replicas: 2}, "replicas"},
		{Params{DeviceSize: 64 << 20, BucketSize: 64 << 10, BtreeNodeSize: 128 << 10}, "larger than the bucket size"},
		{Params{DeviceSize: 64 << 20, ExtentMin: 1, ExtentMax: 7}, "extent size"},
		{Params{DeviceSize: 64 << 20, Inject: map[string]int{"nope": 1}}, "unknown fault kind"},
		{Params{DeviceSize: 64 << 20, Extents: 2, Inject: map[string]int{KindMissingBP: 3}}, "only 2 extents"},
		{Params{Devices: 2, DeviceSize: 64 << 20, ECStripes: 1}, "ec stripes need 3..16 devices"},
		{Params{Devices: 3, Replicas: 2, DeviceSize: 64 << 20, ECStripes: 1}, "ec stripes need replicas 1"},
		{Params{DeviceSize: 64 << 20, ECStripes: -1}, "must not be negative"},
		{Params{DeviceSize: 64 << 20, Inject: map[string]int{KindMissingStripeBP: 1}}, "needs ec stripes"},
		{Params{Devices: 3, DeviceSize: 64 << 20, ECStripes: 2, Inject: map[string]int{KindWrongParitySectors: 3}}, "only 2 stripe blocks"},
		{Params{DeviceSize: 64 << 20, Passphrase: "x"}, "a passphrase is for an encrypted filesystem"},
	} {
		_, err := Generate(t.TempDir(), c.p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.p, err, c.want)
		}
	}
	if _, err := Generate(t.TempDir(), Params{DeviceSize: 32 << 20, ExtentMax: 64, Extents: 10000}); !errors.Is(err, ErrDeviceFull) {
		t.Errorf("full device: %v", err)
	}
}

// TestDefaults follows bcachefs format's choices for the sizes of the
// real images in the test data.
func TestDefaults(t *testing.T) {
	for _, c := range []struct {
		devices          int
		size             int64
		bucket, nodeSize int64
	}{
		{1, 64 << 20, 64 << 10, 64 << 10},    // tiny
		{1, 256 << 20, 128 << 10, 128 << 10}, // small
		{2, 256 << 20, 128 << 10, 128 << 10}, // two-dev
		{1, 1 << 40, 1 << 20, 256 << 10},
	} {
		p := Params{Devices: c.devices, DeviceSize: c.size}.WithDefaults()
		if p.BucketSize != c.bucket || p.BtreeNodeSize != c.nodeSize {
			t.Errorf("%d × %d bytes: bucket %d node %d, want %d and %d", c.devices, c.size, p.BucketSize, p.BtreeNodeSize, c.bucket, c.nodeSize)
		}
	}
	d := newDevice(0, &Params{DeviceSize: 64 << 20, BucketSize: 64 << 10})
	if d.journalStart != 33 || d.journalNr != 8 || d.sbOffsets != [3]uint64{8, 2056, 129024} || d.sbSectorsIn(32) != 8 {
		t.Errorf("tiny layout: journal %d+%d, sb %v, bucket 32 sb sectors %d", d.journalStart, d.journalNr, d.sbOffsets, d.sbSectorsIn(32))
	}
	if got := fmt.Sprint(ParseSize("4G")); got != "4294967296 <nil>" {
		t.Errorf("ParseSize: %s", got)
	}
}
