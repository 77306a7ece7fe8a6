package btreeio_test

import (
	"errors"
	"testing"

	"bpcheck/bp"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
	"bpcheck/listfmt"
	"bpcheck/unlock"
)

// countVisitor counts leaf keys and nodes, and fails on unreadable nodes.
type countVisitor struct {
	tb     testing.TB
	leaves int
	nodes  int
	bsets  int
}

func (c *countVisitor) Node(n *btreeio.Node) error {
	c.nodes++
	c.bsets += n.Bsets
	for _, p := range n.Problems {
		c.tb.Errorf("node problem: %v", p)
	}
	if n.Level == 0 {
		c.leaves += len(n.Keys)
	}
	return nil
}

func (c *countVisitor) NodeError(btree bp.BtreeID, level uint8, parent *bp.Key, err error) error {
	c.tb.Errorf("btree %s level %d: %v", btree, level, err)
	return nil
}

func openCase(tb testing.TB, name string) *btreeio.FS {
	tb.Helper()
	fs, err := btreeio.Open(casedata.CaseImages(tb, name))
	if err != nil {
		tb.Fatalf("open %s: %v", name, err)
	}
	tb.Cleanup(func() { fs.Close() })
	unlockCase(tb, fs, name)
	return fs
}

// unlockCase unseals the key of an encrypted case with its passphrase.
func unlockCase(tb testing.TB, fs *btreeio.FS, name string) {
	tb.Helper()
	if err := unlock.WithPassphrase(fs, casedata.Passphrase(tb, name)); err != nil {
		tb.Fatalf("case %s: %v", name, err)
	}
}

// TestKeyCounts walks every btree of every clean case and compares the
// number of leaf keys with what bcachefs list counted (case.json).
func TestKeyCounts(t *testing.T) {
	casedata.Require(t)
	for _, name := range casedata.Cases(t) {
		t.Run(name, func(t *testing.T) {
			c := casedata.LoadCase(t, name)
			fs := openCase(t, name)
			if err := fs.LoadRoots(); err != nil {
				if errors.Is(err, btreeio.ErrUnclean) {
					t.Skipf("needs journal replay: %v", err)
				}
				t.Fatal(err)
			}
			if !listfmt.ListsJournalKeys(fs.SB.Version) {
				fs.SkipJournalKeys() // the counts are those of the tools' list
			}
			nodes, bsets := 0, 0
			for btree, want := range c.KeyCounts {
				id, ok := bp.ParseBtreeID(btree)
				if !ok {
					t.Errorf("unknown btree name %q", btree)
					continue
				}
				v := &countVisitor{tb: t}
				if err := fs.Walk(id, 0, v); err != nil {
					t.Fatal(err)
				}
				if v.leaves != want {
					t.Errorf("btree %s: %d keys, bcachefs list counted %d", btree, v.leaves, want)
				}
				nodes += v.nodes
				bsets += v.bsets
			}
			t.Logf("%d nodes, %d bsets verified", nodes, bsets)
		})
	}
}
