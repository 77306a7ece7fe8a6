package btreeio_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
)

// rawFacts are superblock facts read straight from the bytes (format.md
// §2.3, §2.4), independently of btreeio, to judge what Open should do.
type rawFacts struct {
	version   uint16
	clean     bool
	encrypted bool
	devIdx    int
	nrDevices int
	members   [][16]byte // member uuids by index (zero = unused slot)
}

// readFacts decodes rawFacts from a raw superblock.
func readFacts(t *testing.T, raw []byte) rawFacts {
	t.Helper()
	le := binary.LittleEndian
	f := rawFacts{
		version:   le.Uint16(raw[16:]),
		clean:     le.Uint64(raw[144:])>>1&1 != 0,
		encrypted: le.Uint64(raw[152:])>>10&0xf != 0 || sbField(raw, btreeio.FieldCrypt) >= 0,
		devIdx:    int(raw[122]),
		nrDevices: int(raw[123]),
	}
	start, size := 0, 0
	if off := sbField(raw, btreeio.FieldMembersV2); off >= 0 {
		start, size = off+16, int(le.Uint16(raw[off+8:]))
	} else if off := sbField(raw, btreeio.FieldMembersV1); off >= 0 {
		start, size = off+8, 56
	} else {
		t.Fatal("raw superblock has no members field")
	}
	for i := 0; i < f.nrDevices; i++ {
		var u [16]byte
		copy(u[:], raw[start+i*size:])
		f.members = append(f.members, u)
	}
	return f
}

// foundOutcome is what the README and format.md say about some found
// images; the test checks that the raw superblock agrees.
var foundOutcome = map[string]string{
	"syz2025_4":           "encrypted",   // N=4: encrypted, key stored unencrypted
	"ul_blkid_bcachefs-3": "device set",  // member 1 of a 2-device filesystem
	"ul_blkid_bcachefs-2": "unclean",     // roots only in the journal
	"ul_blkid_bcachefs":   "old version", // 0.13, pre-backpointers
}

// TestFoundImages opens every image in found/. Each either reads
// completely (every btree walks without node errors or problems; for
// format A images every backpointer key decodes and sits at the position
// its bucket_offset gives), or fails the way its superblock says it must:
// an incomplete device set names the missing members, an unclean
// filesystem without a usable journal gives ErrUnclean, and a pre-1.0
// version may be refused as unsupported.
func TestFoundImages(t *testing.T) {
	zsts, err := filepath.Glob(filepath.Join(casedata.Require(t), "found", "*.img.zst"))
	if err != nil || len(zsts) == 0 {
		t.Fatalf("no found images: %v", err)
	}
	seen := map[string]bool{}
	for _, zst := range zsts {
		name := strings.TrimSuffix(filepath.Base(zst), ".img.zst")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			img := casedata.Image(t, zst)
			facts := readFacts(t, readRawSB(t, img))
			switch foundOutcome[name] {
			case "encrypted":
				if !facts.encrypted {
					t.Fatal("documented as encrypted, superblock says not")
				}
			case "device set":
				if facts.nrDevices < 2 {
					t.Fatalf("documented as part of a multi-device filesystem, nr_devices %d", facts.nrDevices)
				}
			case "unclean":
				if facts.clean {
					t.Fatal("documented as unclean, superblock says clean")
				}
			case "old version":
				if facts.version >= bp.Version1_0 {
					t.Fatalf("documented as pre-1.0, version %s", bp.VersionString(facts.version))
				}
			}
			t.Logf("version %s, %d device(s), clean %v, encrypted %v", bp.VersionString(facts.version), facts.nrDevices, facts.clean, facts.encrypted)

			fs, err := btreeio.Open([]string{img})
			if facts.nrDevices > 1 {
				checkMissingMembers(t, err, facts)
				return
			}
			if err != nil {
				if facts.version < bp.Version1_0 && errors.Is(err, btreeio.ErrUnsupported) {
					t.Logf("refused as unsupported: %v", err)
					return
				}
				t.Fatalf("open: %v", err)
			}
			defer fs.Close()
			if fs.SB.Version != facts.version || fs.SB.IsClean() != facts.clean || fs.SB.Encrypted() != facts.encrypted {
				t.Errorf("superblock: version %s clean %v encrypted %v", bp.VersionString(fs.SB.Version), fs.SB.IsClean(), fs.SB.Encrypted())
			}
			if facts.encrypted && fs.SB.CryptKey == nil {
				t.Error("opened an encrypted filesystem without its key")
			}
			if err := fs.LoadRoots(); err != nil {
				if !facts.clean && errors.Is(err, btreeio.ErrUnclean) {
					t.Logf("unclean: %v", err)
					return
				}
				t.Fatalf("load roots: %v", err)
			}
			if !facts.clean {
				t.Logf("unclean: roots taken from the journal")
			}
			nodes, keys := 0, 0
			walks := map[bp.BtreeID]*recorder{}
			for _, r := range fs.Roots {
				rec := &recorder{}
				if err := fs.Walk(r.Btree, 0, rec); err != nil {
					t.Fatalf("walk %v: %v", r.Btree, err)
				}
				walks[r.Btree] = rec
				nodes += len(rec.nodes)
				keys += rec.leafKeys
			}
			requireClean(t, walks)
			msg := fmt.Sprintf("%d btrees, %d nodes, %d leaf keys", len(walks), nodes, keys)
			if rec := walks[bp.BtreeBackpointers]; rec != nil && !fs.SB.FormatB() {
				msg += fmt.Sprintf("; %d format A backpointers at their bucket_offset position", checkFormatABackpointers(t, fs, rec))
			}
			t.Log(msg)
		})
	}
	for name := range foundOutcome {
		if !seen[name] {
			t.Errorf("found image %s is missing", name)
		}
	}
}

// checkMissingMembers checks that opening one device of a multi-device
// filesystem failed with ErrDeviceSet naming each missing member by index
// and uuid.
func checkMissingMembers(t *testing.T, err error, facts rawFacts) {
	t.Helper()
	if !errors.Is(err, btreeio.ErrDeviceSet) {
		t.Fatalf("open one device of %d: %v, want ErrDeviceSet", facts.nrDevices, err)
	}
	var zero [16]byte
	for i, u := range facts.members {
		word := fmt.Sprintf("member %d (uuid %s)", i, btreeio.UUIDString(u))
		named := strings.Contains(err.Error(), word)
		if missing := i != facts.devIdx && u != zero; named != missing {
			t.Errorf("error %q: names %q %v, member missing %v", err, word, named, missing)
		}
	}
	t.Logf("device set: %v", err)
}

// checkFormatABackpointers decodes every backpointer key of a format A
// filesystem and checks that its position is the one its value gives:
// pos.offset == (bucket*bucket_size << 10) + bucket_offset with
// bucket = (pos.offset >> 10) / bucket_size, snapshot 0, on an existing
// member, inside the device. It returns the number checked.
func checkFormatABackpointers(t *testing.T, fs *btreeio.FS, rec *recorder) int {
	t.Helper()
	n := 0
	for _, node := range rec.nodes {
		if node.Level != 0 {
			continue
		}
		for _, k := range node.Keys {
			if k.Key.Type != bp.KeyBackpointer {
				t.Errorf("backpointers btree holds a %v key at %v", k.Key.Type, k.Key.Pos)
				continue
			}
			v, err := bp.DecodeBackpointer(k.Val, false)
			if err != nil {
				t.Errorf("backpointer at %v: %v", k.Key.Pos, err)
				continue
			}
			p := k.Key.Pos
			if p.Inode >= uint64(len(fs.SB.Members)) || fs.SB.Member(uint8(p.Inode)) == nil {
				t.Errorf("backpointer at %v: no member %d", p, p.Inode)
				continue
			}
			m := fs.SB.Member(uint8(p.Inode))
			bs := uint64(m.BucketSize)
			bucket := (p.Offset >> bp.ShiftA) / bs
			if want := bucket*bs<<bp.ShiftA + v.BucketOffset; p.Offset != want || p.Snapshot != 0 {
				t.Errorf("backpointer at %v: bucket %d, bucket_offset %d give offset %d", p, bucket, v.BucketOffset, want)
			}
			if v.BucketOffset>>bp.ShiftA >= bs || bucket >= m.NBuckets {
				t.Errorf("backpointer at %v: bucket_offset %d / bucket %d outside bucket size %d / %d buckets", p, v.BucketOffset, bucket, bs, m.NBuckets)
			}
			n++
		}
	}
	return n
}
