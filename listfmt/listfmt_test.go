package listfmt_test

import (
	"errors"
	"strings"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
	"bpcheck/listfmt"
	"bpcheck/unlock"
)

// fullText lists the btrees whose values bpcheck prints in full; for the
// others only the key header is compared.
var fullText = map[string]bool{"extents": true, "alloc": true, "backpointers": true, "reflink": true}

type collect struct {
	tb   testing.TB
	p    *listfmt.Printer
	keys []string
}

func (c *collect) Node(n *btreeio.Node) error {
	for _, e := range n.Problems {
		c.tb.Errorf("node problem: %v", e)
	}
	if n.Level != 0 {
		return nil
	}
	for i := range n.Keys {
		c.keys = append(c.keys, string(c.p.AppendKey(nil, n.BtreeID, &n.Keys[i].Key, n.Keys[i].Val)))
	}
	return nil
}

func (c *collect) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	c.tb.Errorf("btree %s level %d: %v", btree, level, err)
	return nil
}

// header cuts a key's text at its value separator.
func header(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if i := strings.Index(s, " : "); i >= 0 {
		s = s[:i]
	} else if i := strings.Index(s, ": "); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(s, " ")
}

// TestListMatchesBcachefs compares `bpcheck list` output with the dumps of
// the real `bcachefs list`, key for key.
func TestListMatchesBcachefs(t *testing.T) {
	casedata.Require(t)
	for _, name := range casedata.Cases(t) {
		dumps := casedata.ListDumps(t, name)
		if len(dumps) == 0 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			fs, err := btreeio.Open(casedata.CaseImages(t, name))
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			if err := unlock.WithPassphrase(fs, casedata.Passphrase(t, name)); err != nil {
				t.Fatal(err)
			}
			if err := fs.LoadRoots(); err != nil {
				if errors.Is(err, btreeio.ErrUnclean) {
					t.Skipf("journal replay not implemented: %v", err)
				}
				t.Fatal(err)
			}
			if !listfmt.ListsJournalKeys(fs.SB.Version) {
				fs.SkipJournalKeys() // as the tools of the dialect list
			}
			p := listfmt.NewPrinter(fs)
			for _, btree := range dumps {
				dump, _ := casedata.ListDump(t, name, btree)
				want := casedata.SplitKeys(dump)
				id, ok := bp.ParseBtreeID(btree)
				if !ok {
					t.Errorf("unknown btree %q", btree)
					continue
				}
				c := &collect{tb: t, p: p}
				if err := fs.Walk(id, 0, c); err != nil {
					t.Fatal(err)
				}
				if len(c.keys) != len(want) {
					t.Errorf("%s: %d keys, bcachefs list printed %d", btree, len(c.keys), len(want))
				}
				bad := 0
				for i := 0; i < len(want) && i < len(c.keys); i++ {
					got, w := c.keys[i], want[i]
					if !fullText[btree] {
						got, w = header(got), header(w)
					}
					if got != w {
						bad++
						if bad <= 3 {
							t.Errorf("%s key %d:\n got: %q\nwant: %q", btree, i, got, w)
						}
					}
				}
				if bad > 0 {
					t.Errorf("%s: %d of %d keys differ", btree, bad, len(want))
				}
				mode := "headers"
				if fullText[btree] {
					mode = "full text"
				}
				t.Logf("%s: %d keys compared (%s)", btree, len(want), mode)
			}
		})
	}
}

// TestListedWhiteouts: the v1.9 tools hide whiteouts outside the btrees
// with a snapshot field, the v1.36 tools show them everywhere.
func TestListedWhiteouts(t *testing.T) {
	w := bp.Key{Type: bp.KeyWhiteout}
	e := bp.Key{Type: bp.KeyExtent}
	const a, b = 1<<10 | 9, 1<<10 | 36
	for _, tc := range []struct {
		v    uint16
		id   bp.BtreeID
		k    *bp.Key
		want bool
	}{
		{a, bp.BtreeExtents, &w, true}, {a, bp.BtreeAlloc, &w, false}, {a, bp.BtreeAlloc, &e, true},
		{b, bp.BtreeAlloc, &w, true}, {a, 20, &w, true}, {a, bp.BtreeBackpointers, &w, false},
	} {
		if got := listfmt.Listed(tc.v, tc.id, tc.k); got != tc.want {
			t.Errorf("Listed(%s, %s, %s) = %v", bp.VersionString(tc.v), tc.id, tc.k.Type, got)
		}
	}
}

// TestDialectFor: each metadata version gets the text of the tools of its
// era (the v128-* dumps are v1.25's, the v131-* ones v1.31's, the v133-*
// ones v1.33's, the v135-* ones v1.35's, the v139-* ones v1.39's).
func TestDialectFor(t *testing.T) {
	for _, tc := range []struct {
		v    uint16
		want listfmt.Dialect
	}{
		{1<<10 | 9, listfmt.DialectV19}, {1<<10 | 12, listfmt.DialectV19}, {1<<10 | 13, listfmt.DialectV113},
		{1<<10 | 14, listfmt.DialectV120}, {1<<10 | 20, listfmt.DialectV120}, {1<<10 | 24, listfmt.DialectV120},
		{1<<10 | 25, listfmt.DialectV125}, {1<<10 | 28, listfmt.DialectV125},
		{1<<10 | 29, listfmt.DialectV131}, {1<<10 | 30, listfmt.DialectV131}, {1<<10 | 31, listfmt.DialectV131},
		{1<<10 | 32, listfmt.DialectV133}, {1<<10 | 33, listfmt.DialectV133}, {1<<10 | 34, listfmt.DialectV133},
		{1<<10 | 35, listfmt.DialectV135}, {1<<10 | 36, listfmt.DialectV136}, {1<<10 | 37, listfmt.DialectV136},
		{1<<10 | 38, listfmt.DialectV138}, {1<<10 | 39, listfmt.DialectV136},
	} {
		if got := listfmt.DialectFor(tc.v); got != tc.want {
			t.Errorf("DialectFor(%s) = %s, want %s", bp.VersionString(tc.v), got, tc.want)
		}
	}
}

// TestBackpointerStripeFlag: the v1.37+ tools end a backpointer whose
// STRIPE_PTR flag is set with " stripe" (the flag exists from 1.37).
func TestBackpointerStripeFlag(t *testing.T) {
	v := bp.Backpointer{BtreeID: bp.BtreeExtents, DataType: bp.DataStripe, BucketLen: 8,
		Flags: bp.BPFlagErasureCoded | bp.BPFlagStripePtr, Pos: bp.Pos{Inode: 4096, Offset: 8, Snapshot: 1}}
	val := make([]byte, bp.BackpointerBytes)
	v.Encode(val, true)
	k := bp.Key{U64s: 9, Type: bp.KeyBackpointer, Pos: bp.Pos{Inode: 5 << 8, Offset: 16 << 16}}
	for _, tc := range []struct {
		version uint16
		suffix  bool
	}{{1<<10 | 36, false}, {1<<10 | 39, true}} {
		fs := &btreeio.FS{SB: &btreeio.Superblock{Version: tc.version, Flags: [7]uint64{6: 16 << 40}}}
		got := string(listfmt.NewPrinter(fs).AppendKey(nil, bp.BtreeBackpointers, &k, val))
		if strings.HasSuffix(got, " stripe") != tc.suffix {
			t.Errorf("metadata %s: %q", bp.VersionString(tc.version), got)
		}
	}
}
