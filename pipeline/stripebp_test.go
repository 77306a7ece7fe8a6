package pipeline

import (
	"fmt"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/listfmt"
	"bpcheck/report"
)

// TestStripeBPJudgement: the backpointers of removed devices'
// erasure-coded pointers (stripe_backpointers, 1.37) are judged both
// ways: missing, different and unclaimed ones; none where unreadable
// nodes hid what would settle it.
func TestStripeBPJudgement(t *testing.T) {
	fs := &btreeio.FS{SB: &btreeio.Superblock{Version: bp.VersionKnown, Flags: [7]uint64{6: 16 << 40}}}
	c := &checker{fs: fs, formatB: true, printer: listfmt.NewPrinter(fs)}
	c.geo = &bp.Geometry{Version: bp.VersionKnown, Shift: 16, BucketSize: func(uint8) (uint32, bool) { return 0, false }}
	mk := func(idx uint64, block uint8, off uint64, size uint32) stripeBP {
		k := bp.Key{Type: bp.KeyExtent, Pos: bp.Pos{Inode: 4096, Offset: off + uint64(size), Snapshot: 1}, Size: size}
		d := bp.DecodedPtr{Ptr: bp.Ptr{Dev: 0xff, Offset: off}, HasStripe: true, Stripe: bp.StripePtr{Idx: idx, Block: block}}
		d.CRC.CompressedSize, d.CRC.UncompressedSize, d.CRC.LiveSize = size, size, size
		var v bp.Backpointer
		s := stripeBP{btree: bp.BtreeExtents, keyPos: k.Pos, keyType: k.Type}
		s.pos = c.geo.ExpectedBPInto(&v, bp.BtreeExtents, 0, &k, &d, 0)
		v.Encode(s.val[:], true)
		return s
	}
	a, b, d := mk(3, 1, 1000, 8), mk(3, 2, 2000, 16), mk(7, 0, 500, 8)
	if a.pos.Inode != 3<<8|1 || a.pos.Offset != 1000<<16 {
		t.Fatalf("position %s, want inode (3 << 8 | 1), offset 1000 << 16", a.pos)
	}
	v, _ := bp.DecodeBackpointer(a.val[:], true)
	if v.Flags != bp.BPFlagErasureCoded|bp.BPFlagStripePtr || v.DataType != bp.DataStripe {
		t.Fatalf("flags %#x data type %s, want ERASURE_CODED|STRIPE_PTR, stripe", v.Flags, v.DataType)
	}
	changed := b
	changed.val[8]++ // bucket_len
	run := func(want, stored []stripeBP, ownersLost, storedLost bool) string {
		c.findings = nil
		c.judgeStripeBPs(append([]stripeBP(nil), want...), append([]stripeBP(nil), stored...), ownersLost, storedLost)
		report.Sort(c.findings)
		var out []string
		for _, f := range c.findings {
			out = append(out, fmt.Sprintf("%s %d:%d", f.Code, f.BP.Inode, f.BP.Offset>>16))
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct {
		name                   string
		want, stored           []stripeBP
		ownersLost, storedLost bool
		out                    string
	}{
		{"all there", []stripeBP{a, b}, []stripeBP{b, a}, false, false, "[]"},
		{"missing", []stripeBP{a, b}, []stripeBP{a}, false, false, "[ptr_to_missing_backpointer 770:2000]"},
		{"unclaimed", []stripeBP{a}, []stripeBP{a, d}, false, false, "[backpointer_to_missing_ptr 1792:500]"},
		{"different", []stripeBP{a, b}, []stripeBP{a, changed}, false, false, "[backpointer_to_missing_ptr 770:2000 ptr_to_missing_backpointer 770:2000]"},
		{"stored part unreadable", []stripeBP{a, b}, []stripeBP{a}, false, true, "[]"},
		{"pointers unreadable", []stripeBP{a}, []stripeBP{a, d}, true, false, "[]"},
	} {
		if got := run(tc.want, tc.stored, tc.ownersLost, tc.storedLost); got != tc.out {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.out)
		}
	}
}
