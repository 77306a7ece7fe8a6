package btreeio

import "testing"

// TestMemberBucketOf: the shift for power-of-two bucket sizes and the
// division otherwise give the same bucket; a zero bucket size gives 0.
func TestMemberBucketOf(t *testing.T) {
	for _, bs := range []uint16{1, 8, 128, 1024, 4096, 32768, 3, 24, 1000, 65535} {
		m := Member{BucketSize: bs}
		for _, s := range []uint64{0, 1, uint64(bs) - 1, uint64(bs), uint64(bs)*7 + 5, 1<<44 - 1} {
			if got, want := m.BucketOf(s), s/uint64(bs); got != want {
				t.Fatalf("bucket size %d, sector %d: bucket %d, want %d", bs, s, got, want)
			}
		}
	}
	if got := (&Member{}).BucketOf(12345); got != 0 {
		t.Fatalf("bucket size 0: bucket %d, want 0", got)
	}
}

// TestMemberDeletedSlot: from 1.27 a removed member's slot keeps the
// deleted UUID (BCH_SB_MEMBER_DELETED_UUID); such a slot, like an empty
// one, is no member.
func TestMemberDeletedSlot(t *testing.T) {
	live := Member{UUID: [16]byte{1, 2, 3}}
	deleted := Member{UUID: [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xd9, 0x6a, 0x60, 0xcf, 0x80, 0x3d, 0xf7, 0xef}}
	nearly := deleted
	nearly.UUID[15] = 0xee
	for _, tc := range []struct {
		name string
		m    Member
		want bool
	}{{"live", live, true}, {"empty", Member{}, false}, {"deleted", deleted, false}, {"one byte off the deleted uuid", nearly, true}} {
		if got := tc.m.Exists(); got != tc.want {
			t.Errorf("%s: Exists() = %v, want %v", tc.name, got, tc.want)
		}
	}
}
