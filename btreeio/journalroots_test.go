package btreeio

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"bpcheck/bp"
	"bpcheck/internal/casedata"
)

// assembleCase opens the devices of case name into an FS (package
// internals: its journal is read by the test); they are closed when the
// test ends.
func assembleCase(tb testing.TB, name string) *FS {
	tb.Helper()
	var devs []*Device
	for _, p := range casedata.CaseImages(tb, name) {
		d, err := OpenDevice(p)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { d.Close() })
		devs = append(devs, d)
	}
	fs, err := Assemble(devs)
	if err != nil {
		tb.Fatal(err)
	}
	return fs
}

// TestJournalEmptyRootEntry: a btree_root entry with no key, replayed
// after one with the root. Recovery from the tools of 1.14 on skips it
// (the root stays; it was dropped, so the btree read as empty); those
// of 1.13 and before mark the root unreadable (an error here).
func TestJournalEmptyRootEntry(t *testing.T) {
	casedata.Require(t)
	fs := assembleCase(t, "unclean")
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
	j.Replay = append(j.Replay, &Jset{Dev: fs.Devices[0].Path, Offset: 4096, Seq: j.End + 1,
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
	// ... unless a later entry sets it again: the last entry decides.
	var payload []byte
	for _, js := range j.Replay {
		for _, e := range js.Entries {
			if e.Type == JEntryBtreeRoot && e.BtreeID == bp.BtreeExtents && len(e.Payload) > 0 {
				payload = e.Payload
			}
		}
	}
	j.Replay = append(j.Replay, &Jset{Dev: fs.Devices[0].Path, Offset: 8192, Seq: j.End + 2,
		Entries: []JEntry{{Type: JEntryBtreeRoot, BtreeID: bp.BtreeExtents, Level: ext.Level, Payload: payload}}})
	got, err = j.Roots()
	if err != nil {
		t.Fatalf("metadata %d, the root set again after an empty entry: %v", j.version, err)
	}
	for i := range got {
		if got[i].Btree == bp.BtreeExtents && got[i].Key != ext.Key {
			t.Errorf("extents root %v, want %v", got[i].Key, ext.Key)
		}
	}
}

// TestJournalProblemsSkipBlacklisted: damage to an entry of a
// blacklisted seq inside the replayed range is no problem (recovery never
// replays it; the kernel does not even report its checksum), damage to
// another entry of the range is.
func TestJournalProblemsSkipBlacklisted(t *testing.T) {
	casedata.Require(t)
	fs := assembleCase(t, "unclean")
	j := fs.readJournalForReplay()
	if len(j.blacklist) == 0 {
		t.Fatal("the unclean case has no blacklist")
	}
	var bl *JournalBucketRange
	for i := range j.blacklist {
		if r := &j.blacklist[i]; r.Start >= j.Start && r.Start <= j.End {
			bl = r
		}
	}
	if bl == nil {
		t.Fatalf("no blacklisted seq in the replay %d-%d: %v", j.Start, j.End, j.blacklist)
	}
	if p := j.Problems(); len(p) != 0 {
		t.Fatalf("problems of the undamaged journal: %v", p)
	}
	j.addErr(bl.Start, errBadCopy, errors.New("damaged blacklisted entry"))
	if p := j.Problems(); len(p) != 0 {
		t.Errorf("a blacklisted entry's damage is a problem: %v", p)
	}
	j.addErr(j.End, errInRange, errors.New("damaged replayed entry"))
	if p := j.Problems(); len(p) != 1 {
		t.Errorf("problems %v, want the replayed entry's", p)
	}
}

// TestJournalForReplayLikeFull: the journal read for a replay keeps the
// entries of the jsets from the newest flushed entries' last_seq on only,
// and replays exactly what a full read does (range, keys, notes,
// problems), on the unclean cases of 1.36 and 1.39.
func TestJournalForReplayLikeFull(t *testing.T) {
	casedata.Require(t)
	for _, name := range []string{"unclean", "v139-unclean"} {
		fs := assembleCase(t, name)
		full, part := fs.ReadJournal(), fs.readJournalForReplay()
		if part.Start != full.Start || part.End != full.End || len(part.Replay) != len(full.Replay) || len(part.All) != len(full.All) {
			t.Fatalf("%s: replays %d-%d (%d of %d jsets), full read %d-%d (%d of %d)", name, part.Start, part.End, len(part.Replay), len(part.All),
				full.Start, full.End, len(full.Replay), len(full.All))
		}
		for i := range part.Replay {
			if part.Replay[i].Seq != full.Replay[i].Seq || part.Replay[i].Pruned {
				t.Errorf("%s: replayed jset %d: seq %d (pruned %v), want %d", name, i, part.Replay[i].Seq, part.Replay[i].Pruned, full.Replay[i].Seq)
			}
		}
		if part.KeysRead != full.KeysRead || len(part.Keys) != len(full.Keys) {
			t.Fatalf("%s: %d keys (%d read), full read %d (%d)", name, len(part.Keys), part.KeysRead, len(full.Keys), full.KeysRead)
		}
		for i := range part.Keys {
			a, b := &part.Keys[i], &full.Keys[i]
			if a.Key != b.Key || a.Btree != b.Btree || a.Seq != b.Seq || !bytes.Equal(a.Val, b.Val) {
				t.Fatalf("%s: key %d: %v, full read %v", name, i, a.Key, b.Key)
			}
		}
		if fmt.Sprint(part.Notes) != fmt.Sprint(full.Notes) || fmt.Sprint(part.Problems()) != fmt.Sprint(full.Problems()) {
			t.Errorf("%s: notes %q problems %v; full read %q %v", name, part.Notes, part.Problems(), full.Notes, full.Problems())
		}
		pruned, kept := 0, 0
		for _, js := range part.All {
			switch {
			case js.Pruned:
				pruned++
				if js.Seq >= part.Start || js.Entries != nil {
					t.Errorf("%s: jset %d pruned (replay from %d), entries %d", name, js.Seq, part.Start, len(js.Entries))
				}
			case js.CsumGood:
				kept++
			}
		}
		t.Logf("%s: %d jsets, replay %d-%d, %d pruned, %d kept", name, len(part.All), part.Start, part.End, pruned, kept)
	}
}

// BenchmarkReadJournal reads the unclean case's journal whole (a
// listing) and for its replay; B/op is the memory each allocates.
func BenchmarkReadJournal(b *testing.B) {
	casedata.Require(b)
	fs := assembleCase(b, "unclean")
	d := fs.Devices[0]
	var journalBytes int64
	for _, r := range d.SB.Journal {
		journalBytes += int64(r.Nr) * int64(fs.SB.Members[d.SB.DevIdx].BucketSize) * SectorSize
	}
	for _, tc := range []struct {
		name string
		read func() *Journal
	}{{"whole", fs.ReadJournal}, {"replay", fs.readJournalForReplay}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(journalBytes)
			b.ReportAllocs()
			for b.Loop() {
				tc.read()
			}
		})
	}
}

// TestJournalHoleIsProblem: a seq missing from the replayed range (not
// blacklisted) is a problem of the check: its keys are not replayed.
func TestJournalHoleIsProblem(t *testing.T) {
	casedata.Require(t)
	fs := assembleCase(t, "unclean")
	j := fs.readJournalForReplay()
	if p := j.Problems(); len(p) != 0 {
		t.Fatalf("problems of the undamaged journal: %v", p)
	}
	// Drop the newest replayed entry but one.
	drop := j.Replay[len(j.Replay)-2].Seq
	var all []*Jset
	for _, js := range j.All {
		if js.Seq != drop {
			all = append(all, js)
		}
	}
	h := &Journal{All: all, version: j.version, blacklist: j.blacklist}
	fs.selectReplay(h)
	p := h.Problems()
	if len(p) != 1 || !strings.Contains(p[0].Error(), fmt.Sprintf("entries %d to %d", drop, drop)) {
		t.Errorf("replay without seq %d: problems %v", drop, p)
	}
}
