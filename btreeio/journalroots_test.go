package btreeio

import (
	"errors"
	"testing"

	"bpcheck/bp"
	"bpcheck/internal/casedata"
)

// TestJournalEmptyRootEntry: a btree_root entry with no key, replayed
// after one with the root. Recovery from the tools of 1.14 on skips it
// (the root stays; it was dropped, so the btree read as empty); those
// of 1.13 and before mark the root unreadable (an error here).
func TestJournalEmptyRootEntry(t *testing.T) {
	casedata.Require(t)
	d, err := OpenDevice(casedata.CaseImages(t, "unclean")[0])
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fs, err := Assemble([]*Device{d})
	if err != nil {
		t.Fatal(err)
	}
	j := fs.ReadJournal()
	want, err := j.Roots()
	if err != nil {
		t.Fatal(err)
	}
	var ext *Root
	for i := range want {
		if want[i].Btree == bp.BtreeExtents {
			ext = &want[i]
		}
	}
	if ext == nil {
		t.Fatal("the unclean case's journal has no extents root")
	}
	j.Replay = append(j.Replay, &Jset{Dev: d.Path, Offset: 4096, Seq: j.End + 1,
		Entries: []JEntry{{Type: JEntryBtreeRoot, BtreeID: bp.BtreeExtents, Level: ext.Level}}})
	got, err := j.Roots()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d roots after an empty root entry, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Btree != want[i].Btree || got[i].Key != want[i].Key {
			t.Errorf("root %d: %v, want %v", i, got[i].Key, want[i].Key)
		}
	}
	j.version = bp.VersionMin // metadata 0.9..1.13: the root is unreadable
	if _, err := j.Roots(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("metadata %d: %v, want the root unreadable", j.version, err)
	}
}
