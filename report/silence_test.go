package report

import (
	"fmt"
	"testing"
)

// TestSilencer: errors_silent silences its codes; an unfinished upgrade
// silences the codes of the upgrade steps between version_upgrade_complete
// and the version, and no others.
func TestSilencer(t *testing.T) {
	v := func(minor uint16) uint16 { return 1<<10 | minor }
	codes := []string{PtrToMissingBackpointer, BackpointerToMissingPtr, AllocKeyDirtySectorsWrong}
	for _, tc := range []struct {
		complete, version uint16
		silent            func(int) bool
		want              string
	}{
		{v(36), v(36), nil, "[false false false]"},
		{v(13), v(36), nil, "[true true false]"},
		{v(14), v(36), nil, "[true false false]"},  // cached_backpointers, stripe_backpointers
		{v(22), v(36), nil, "[false false false]"}, // all steps done
		{v(13), v(13), nil, "[false false false]"}, // format A: no step applies
		{v(36), v(36), func(id int) bool { return id == 108 }, "[false false true]"},
	} {
		fs := make([]Finding, len(codes))
		for i, c := range codes {
			fs[i].Code = c
		}
		s := Silencer{Silent: tc.silent, UpgradeComplete: tc.complete, Version: tc.version}
		n := s.Mark(fs)
		var got []bool
		m := 0
		for _, f := range fs {
			got = append(got, f.Silenced != "")
			if f.Silenced != "" {
				m++
			}
		}
		if fmt.Sprint(got) != tc.want || n != m {
			t.Errorf("complete %#x version %#x: silenced %v (count %d), want %s", tc.complete, tc.version, got, n, tc.want)
		}
	}
}
