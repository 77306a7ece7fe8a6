package gen

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
)

// otherVersions are the versions besides the default that the tests
// generate.
var otherVersions = []string{MetadataVersion128, MetadataVersion139}

// forVersion returns p for metadata version v, its node size raised to
// the version's minimum.
func forVersion(p Params, v string) Params {
	p.MetadataVersion = v
	if f := formatOf(v); p.BtreeNodeSize != 0 && p.BtreeNodeSize < f.minNodeSize {
		p.BtreeNodeSize = f.minNodeSize
	}
	return p
}

// TestGenerateCheckVersions generates every case of TestGenerateCheck in
// metadata 1.28 and 1.39: bpcheck finds exactly the manifest's findings.
func TestGenerateCheckVersions(t *testing.T) {
	for _, v := range otherVersions {
		for _, c := range cases {
			t.Run(v+"/"+c.name, func(t *testing.T) { generateAndCheck(t, forVersion(c.p, v)) })
		}
	}
}

// TestVersionDeterministic: the same parameters give byte-identical
// images in every version, and the versions differ.
func TestVersionDeterministic(t *testing.T) {
	p := Params{Devices: 3, DeviceSize: 64 << 20, Extents: 800, ExtentMax: 32, ECStripes: 4, Seed: 9,
		Inject: map[string]int{KindMissingBP: 1, KindWrongStripeSectors: 1, KindDupBadCsum: 1}}
	byVersion := map[string]map[string][32]byte{}
	for _, v := range MetadataVersions {
		q := forVersion(p, v)
		var hashes []map[string][32]byte
		for i := 0; i < 2; i++ {
			dir := t.TempDir()
			if _, err := Generate(dir, q); err != nil {
				t.Fatal(err)
			}
			hashes = append(hashes, hashDir(t, dir))
		}
		for name, h := range hashes[0] {
			if hashes[1][name] != h {
				t.Errorf("%s %s differs between two runs", v, name)
			}
		}
		byVersion[v] = hashes[0]
	}
	if byVersion[MetadataVersion128]["dev0.img"] == byVersion[MetadataVersion139]["dev0.img"] {
		t.Errorf("1.28 and 1.39 images are the same")
	}
}

func TestVersionParams(t *testing.T) {
	for _, c := range []struct {
		p    Params
		want string
	}{
		{Params{DeviceSize: 64 << 20, MetadataVersion: "1.30"}, "metadata version"},
		{Params{DeviceSize: 64 << 20, BtreeNodeSize: 4096, MetadataVersion: MetadataVersion139}, "btree node size"},
		{Params{DeviceSize: 1 << 30, BtreeNodeSize: 1 << 20, MetadataVersion: MetadataVersion139}, "btree node size"},
		{Params{DeviceSize: 64 << 20, ExtentMax: 256, MetadataVersion: MetadataVersion128}, "extent size"},
	} {
		q := c.p.WithDefaults()
		err := q.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.p, err, c.want)
		}
	}
	for _, v := range append([]string{""}, MetadataVersions...) {
		q := Params{DeviceSize: 64 << 20, MetadataVersion: v}.WithDefaults()
		if err := q.Validate(); err != nil {
			t.Errorf("version %q: %v", v, err)
		}
		if q.MetadataVersion != v {
			t.Errorf("WithDefaults changed the version %q to %q", v, q.MetadataVersion)
		}
	}
}

// TestVersionDefaults follows each era's bcachefs format for the bucket
// and node sizes (the versions/ cases: 256 MiB devices).
func TestVersionDefaults(t *testing.T) {
	for _, c := range []struct {
		v                string
		devices          int
		size             int64
		bucket, nodeSize int64
	}{
		{MetadataVersion128, 1, 256 << 20, 256 << 10, 256 << 10}, // v128-small
		{MetadataVersion128, 2, 256 << 20, 256 << 10, 256 << 10}, // v128-two-dev
		{MetadataVersion128, 1, 64 << 20, 256 << 10, 256 << 10},
		{MetadataVersion128, 1, 16 << 20, 64 << 10, 64 << 10},
		{MetadataVersion139, 1, 256 << 20, 128 << 10, 128 << 10}, // v139-small
		{MetadataVersion139, 2, 256 << 20, 128 << 10, 128 << 10}, // v139-two-dev
		{MetadataVersion139, 1, 64 << 20, 32 << 10, 32 << 10},
		{MetadataVersion139, 1, 1 << 40, 1 << 20, 256 << 10},
	} {
		p := Params{Devices: c.devices, DeviceSize: c.size, MetadataVersion: c.v}.WithDefaults()
		if p.BucketSize != c.bucket || p.BtreeNodeSize != c.nodeSize {
			t.Errorf("%s %d × %d bytes: bucket %d node %d, want %d and %d", c.v, c.devices, c.size, p.BucketSize, p.BtreeNodeSize, c.bucket, c.nodeSize)
		}
	}
}

// fieldList is a superblock's field types and sizes in order.
func fieldList(sb *btreeio.Superblock) (types []uint32, sizes []int) {
	for _, f := range sb.Fields {
		types = append(types, f.Type)
		sizes = append(sizes, len(f.Data))
	}
	return types, sizes
}

func sbField(sb *btreeio.Superblock, typ uint32) []byte {
	if f := sb.Field(typ); f != nil {
		return f.Data
	}
	return nil
}

// TestVersionSuperblockLikeReal generates a filesystem of each real
// image's shape and compares the superblocks: version, field order and
// sizes, member size and flags, flag words, features, the downgrade
// table, the ext field and the data types of the replicas section; for
// the encrypted image also the crypt field's flags and the checksum
// types of the journal entry and the root nodes.
func TestVersionSuperblockLikeReal(t *testing.T) {
	for _, c := range []struct {
		real      string
		v         string
		devices   int
		replicas  int
		size      int64
		encrypted bool
	}{
		{"small", MetadataVersion136, 1, 1, 256 << 20, false},
		{"v128-small", MetadataVersion128, 1, 1, 256 << 20, false},
		{"v128-two-dev", MetadataVersion128, 2, 2, 256 << 20, false},
		{"v139-small", MetadataVersion139, 1, 1, 256 << 20, false},
		{"v139-two-dev", MetadataVersion139, 2, 2, 256 << 20, false},
		{"enc-small", MetadataVersion136, 1, 1, 128 << 20, true},
	} {
		t.Run(c.real, func(t *testing.T) {
			realFS := openImages(t, casedata.CaseImages(t, c.real))
			if c.encrypted {
				k, err := realFS.SB.Crypt.PassphraseKey(casedata.Passphrase(t, c.real))
				if err != nil {
					t.Fatal(err)
				}
				if err := realFS.Unlock(&k); err != nil {
					t.Fatal(err)
				}
			}
			dir := t.TempDir()
			p := Params{Devices: c.devices, Replicas: c.replicas, DeviceSize: c.size, Extents: 2000, Seed: 3}
			if c.encrypted {
				p.Encrypted, p.Passphrase = true, testPassphrase
			}
			if c.v != DefaultMetadataVersion {
				p.MetadataVersion = c.v
			}
			m, err := Generate(dir, p)
			if err != nil {
				t.Fatal(err)
			}
			genFS := open(t, dir, m)
			r, g := realFS.SB, genFS.SB
			if r.Version != g.Version || r.VersionMin != g.VersionMin {
				t.Errorf("version %#x/%#x, real %#x/%#x", g.Version, g.VersionMin, r.Version, r.VersionMin)
			}
			rt, rs := fieldList(r)
			gt, gs := fieldList(g)
			if len(rt) != len(gt) {
				t.Fatalf("fields %v (sizes %v), real %v (sizes %v)", gt, gs, rt, rs)
			}
			for i := range rt {
				replicas := rt[i] == btreeio.FieldReplicasV0 || rt[i] == btreeio.FieldReplicas
				if rt[i] != gt[i] || (rs[i] != gs[i] && !replicas) {
					t.Errorf("field %d: type %d size %d, real type %d size %d", i, gt[i], gs[i], rt[i], rs[i])
				}
			}
			// Member size and flags.
			rm, gm := sbField(r, btreeio.FieldMembersV2), sbField(g, btreeio.FieldMembersV2)
			mb := int(binary.LittleEndian.Uint16(rm[8:]))
			if gmb := int(binary.LittleEndian.Uint16(gm[8:])); gmb != mb || mb != mustFormat(&p).memberBytes {
				t.Errorf("member_bytes %d, real %d", gmb, mb)
			}
			for i := 0; i < c.devices; i++ {
				rf := binary.LittleEndian.Uint64(rm[16+i*mb+40:])
				gf := binary.LittleEndian.Uint64(gm[16+i*mb+40:])
				if rf != gf {
					t.Errorf("member %d flags %#x, real %#x", i, gf, rf)
				}
			}
			if v1 := sbField(r, btreeio.FieldMembersV1); v1 != nil {
				gv1 := sbField(g, btreeio.FieldMembersV1)
				if len(gv1) != len(v1) || !bytes.Equal(gv1[8:8+memberV1Bytes], gm[16:16+memberV1Bytes]) {
					t.Errorf("members_v1: %d bytes, real %d; not a copy of members_v2", len(gv1), len(v1))
				}
			}
			// Flag words: flags[6] bits 0-3 (shard_inums_nbits) depend on
			// the machine that mounted the real images.
			for i := range r.Flags {
				mask := ^uint64(0)
				if i == 6 {
					mask = ^uint64(0xf)
				}
				if r.Flags[i]&mask != g.Flags[i]&mask {
					t.Errorf("flags[%d] %#x, real %#x", i, g.Flags[i], r.Flags[i])
				}
			}
			if r.Features != g.Features || r.Compat != g.Compat {
				t.Errorf("features %#x compat %#x, real %#x %#x", g.Features, g.Compat, r.Features, r.Compat)
			}
			if !bytes.Equal(sbField(r, 14), sbField(g, 14)) {
				t.Errorf("downgrade % x\nreal      % x", sbField(g, 14), sbField(r, 14))
			}
			rx, gx := sbField(r, btreeio.FieldExt), sbField(g, btreeio.FieldExt)
			if len(rx) >= 104 && binary.LittleEndian.Uint64(rx[96:]) != binary.LittleEndian.Uint64(gx[96:]) {
				t.Errorf("ext flags0 %#x, real %#x", binary.LittleEndian.Uint64(gx[96:]), binary.LittleEndian.Uint64(rx[96:]))
			}
			// The data types in the replicas section (the sets depend
			// on where the data went).
			if rt, gt := replicaTypes(r), replicaTypes(g); rt != gt {
				t.Errorf("replicas data types %s, real %s", gt, rt)
			}
			// The journal entry's flags and version.
			rj, gj := realFS.ReadJournal(), genFS.ReadJournal()
			if len(rj.Errors)+len(gj.Errors) != 0 || len(gj.Replay) != 1 {
				t.Fatalf("journal: real %v, generated %v", rj.Errors, gj.Errors)
			}
			if !c.encrypted {
				return
			}
			rc, gc := sbField(r, btreeio.FieldCrypt), sbField(g, btreeio.FieldCrypt)
			if len(rc) != len(gc) || !bytes.Equal(rc[:24], gc[:24]) {
				t.Errorf("crypt field header, flags, kdf_flags % x, real % x", gc[:min(24, len(gc))], rc[:min(24, len(rc))])
			}
			// The checksum (and encryption) types of the newest jset and
			// of the extents root's first bset, as on disk.
			jsetFlags := func(fs *btreeio.FS) uint32 {
				d := fs.Devices[0]
				bucket := int64(d.SB.Members[0].BucketSize) * 512
				buf := make([]byte, 4096)
				le := binary.LittleEndian
				best, flags := uint64(0), uint32(0)
				for _, jr := range d.SB.Journal {
					for b := jr.Start; b < jr.Start+jr.Nr; b++ {
						for off := int64(0); off < bucket; off += 4096 {
							if _, err := d.ReadAt(buf, int64(b)*bucket+off); err != nil {
								t.Fatal(err)
							}
							// The newest flushed entry (not JSET_NO_FLUSH).
							if le.Uint64(buf[16:]) == fs.SB.JsetMagic() && le.Uint64(buf[24:]) >= best && le.Uint32(buf[36:])&(1<<5) == 0 {
								best, flags = le.Uint64(buf[24:]), le.Uint32(buf[36:])
							}
						}
					}
				}
				return flags
			}
			if rf, gf := jsetFlags(realFS), jsetFlags(genFS); rf != gf {
				t.Errorf("jset flags %#x, real %#x", gf, rf)
			}
			bsetFlags := func(fs *btreeio.FS) uint32 {
				for _, rt := range fs.Roots {
					if rt.Btree != bp.BtreeExtents {
						continue
					}
					it := bp.NewPtrIter(rt.Val[bp.BtreePtrV2Bytes:], 0, nil)
					d, ok, err := it.Next()
					if err != nil || !ok {
						t.Fatalf("extents root pointer: %v", err)
					}
					buf := make([]byte, 512)
					if _, err := fs.Devices[d.Ptr.Dev].ReadAt(buf, int64(d.Ptr.Offset)*512); err != nil {
						t.Fatal(err)
					}
					return binary.LittleEndian.Uint32(buf[152:])
				}
				t.Fatal("no extents root")
				return 0
			}
			if rf, gf := bsetFlags(realFS), bsetFlags(genFS); rf != gf {
				t.Errorf("bset flags %#x, real %#x", gf, rf)
			}
		})
	}
}

// replicaTypes names the data types of a replicas section's entries.
func replicaTypes(sb *btreeio.Superblock) string {
	seen := map[bp.DataType]bool{}
	for _, typ := range []uint32{btreeio.FieldReplicasV0, btreeio.FieldReplicas} {
		f := sbField(sb, typ)
		if f == nil {
			continue
		}
		b := f[8:]
		for len(b) >= 2 && b[0] != 0 {
			seen[bp.DataType(b[0])] = true
			n := 2 + int(b[1])
			if typ == btreeio.FieldReplicas {
				n++
			}
			b = b[min(n, len(b)):]
		}
	}
	var out []string
	for dt := bp.DataType(0); dt < 12; dt++ {
		if seen[dt] {
			out = append(out, dt.String())
		}
	}
	return strings.Join(out, ",")
}

// TestVersionFsValuesLikeReal compares the snapshot and subvolume values
// with the real images of each version (times zeroed: gen writes none).
func TestVersionFsValuesLikeReal(t *testing.T) {
	for _, c := range []struct {
		real string
		f    *format
		// byte ranges holding times: snapshot btime, subvolume otime
		snapTime, subvolTime [2]int
	}{
		{"v128-small", format128, [2]int{40, 56}, [2]int{24, 40}},
		{"v139-small", format139, [2]int{40, 56}, [2]int{24, 40}},
	} {
		t.Run(c.real, func(t *testing.T) {
			fs := openImages(t, casedata.CaseImages(t, c.real))
			for _, k := range []struct {
				id   bp.BtreeID
				val  []byte
				time [2]int
			}{
				{btreeSnapshots, snapshotVal(c.f), c.snapTime},
				{btreeSubvolumes, subvolumeVal(c.f), c.subvolTime},
			} {
				keys := btreeKeys(t, fs, k.id)
				if len(keys) != 1 {
					t.Fatalf("btree %d: %d keys", k.id, len(keys))
				}
				got := append([]byte(nil), keys[0].Val...)
				if len(got) >= k.time[1] {
					clear(got[k.time[0]:k.time[1]])
				}
				if !bytes.Equal(got, k.val) {
					t.Errorf("btree %d: real % x\ngen  % x", k.id, got, k.val)
				}
			}
		})
	}
}

// TestVersionLRU: the fragmentation lru entries are in lru 0xffff before
// 1.39 and in the device's own lru (8192 + dev) from 1.39.
func TestVersionLRU(t *testing.T) {
	for _, v := range MetadataVersions {
		t.Run(v, func(t *testing.T) {
			p := forVersion(Params{Devices: 3, Replicas: 2, DeviceSize: 64 << 20, Extents: 3000, ExtentMax: 64,
				BtreeNodeSize: 8192, Seed: 4}, v)
			dir := t.TempDir()
			m, err := Generate(dir, p)
			if err != nil {
				t.Fatal(err)
			}
			fs := open(t, dir, m)
			keys := btreeKeys(t, fs, btreeLRU)
			if len(keys) == 0 {
				t.Fatal("no lru keys")
			}
			devs := map[uint64]bool{}
			for _, k := range keys {
				id, dev := k.Key.Pos.Inode>>48, k.Key.Pos.Offset>>48
				want := uint64(0xffff)
				if v == MetadataVersion139 {
					want = 8192 + dev
				}
				if id != want {
					t.Errorf("lru key %s: id %d, want %d", k.Key.Pos, id, want)
				}
				devs[dev] = true
			}
			if len(devs) < 2 {
				t.Errorf("lru entries on %d device(s)", len(devs))
			}
		})
	}
}

// TestVersionECAlloc: the alloc keys of stripe blocks name their stripe
// and its redundancy in 1.28 and hold a refcount of 1 from 1.35; the
// backpointers of erasure-coded extents carry ERASURE_CODED from 1.37.
func TestVersionECAlloc(t *testing.T) {
	for _, v := range MetadataVersions {
		t.Run(v, func(t *testing.T) {
			p := forVersion(Params{Devices: 3, DeviceSize: 64 << 20, Extents: 500, ExtentMax: 64, ECStripes: 3, Seed: 5}, v)
			dir := t.TempDir()
			m, err := Generate(dir, p)
			if err != nil {
				t.Fatal(err)
			}
			fs := open(t, dir, m)
			f := mustFormat(&p)
			stripeOf := map[[2]uint64]uint64{}
			for _, k := range btreeKeys(t, fs, bp.BtreeStripes) {
				_, ptrs, err := bp.DecodeStripe(k.Val)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < len(ptrs)/8; i++ {
					ptr := bp.DecodePtr(binary.LittleEndian.Uint64(ptrs[8*i:]))
					stripeOf[[2]uint64{uint64(ptr.Dev), ptr.Offset / (uint64(m.Devices[0].BucketSize) / sectorSize)}] = k.Key.Pos.Offset
				}
			}
			n := 0
			for _, k := range btreeKeys(t, fs, bp.BtreeAlloc) {
				a, err := bp.DecodeAllocV4(k.Val)
				if err != nil {
					t.Fatal(err)
				}
				if a.DataType != bp.DataStripe && a.DataType != bp.DataParity {
					continue
				}
				n++
				idx := stripeOf[[2]uint64{k.Key.Pos.Inode, k.Key.Pos.Offset}]
				want, red := uint32(1), uint8(0)
				if f.allocStripeIdx {
					want, red = uint32(idx), 1
				}
				if a.StripeRefcount != want || a.StripeRedundancy != red {
					t.Errorf("alloc %s: stripe field %d redundancy %d, want %d %d", k.Key.Pos, a.StripeRefcount, a.StripeRedundancy, want, red)
				}
			}
			if n != 3*p.ECStripes {
				t.Errorf("%d stripe block alloc keys, want %d", n, 3*p.ECStripes)
			}
			for _, k := range btreeKeys(t, fs, bp.BtreeBackpointers) {
				v, err := bp.DecodeBackpointer(k.Val, true)
				if err != nil {
					t.Fatal(err)
				}
				if v.DataType != bp.DataStripe {
					continue
				}
				want := uint32(0)
				if f.ecBPFlags {
					want = bp.BPFlagErasureCoded
				}
				if v.Flags != want {
					t.Errorf("backpointer %s of an erasure-coded extent: flags %d", k.Key.Pos, v.Flags)
				}
			}
		})
	}
}

// TestVersionNamespace: lost+found is inode 4097 in 1.28 (inodes_32bit),
// 2^31 otherwise; the 1.39 snapshot accounting is per btree.
func TestVersionNamespace(t *testing.T) {
	for _, v := range MetadataVersions {
		t.Run(v, func(t *testing.T) {
			p := forVersion(Params{DeviceSize: 64 << 20, Extents: 300, Seed: 6}, v)
			dir := t.TempDir()
			m, err := Generate(dir, p)
			if err != nil {
				t.Fatal(err)
			}
			fs := open(t, dir, m)
			want := uint64(1 << 31)
			if v == MetadataVersion128 {
				want = 4097
			}
			var found bool
			for _, k := range btreeKeys(t, fs, btreeDirents) {
				if k.Key.Pos.Inode == rootIno && bytes.HasPrefix(k.Val[9:], lostFoundName) {
					found = binary.LittleEndian.Uint64(k.Val) == want
				}
			}
			if !found {
				t.Errorf("no dirent lost+found -> %d", want)
			}
			perBtree := 0
			for _, k := range btreeKeys(t, fs, btreeAccounting) {
				if k.Key.Pos.Inode>>56 == accSnapshot && len(k.Val) == 24 {
					perBtree++
				}
			}
			if wantN := map[bool]int{true: 3, false: 0}[v == MetadataVersion139]; perBtree != wantN {
				t.Errorf("%d per-btree snapshot accounting keys, want %d", perBtree, wantN)
			}
		})
	}
}
