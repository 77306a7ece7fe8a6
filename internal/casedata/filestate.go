package casedata

import (
	"crypto/sha256"
	"io"
	"os"
	"testing"
	"time"
)

// FileState is what any write to a file would change: its content hash,
// size, modification time and mode. Tests compare it before and after
// bpcheck reads an image, to show that nothing was written.
type FileState struct {
	Sum   [sha256.Size]byte
	Size  int64
	MTime time.Time
	Mode  os.FileMode
}

// StateOf hashes and stats the file at path.
func StateOf(tb testing.TB, path string) FileState {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		tb.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	var s FileState
	h.Sum(s.Sum[:0])
	s.Size, s.MTime, s.Mode = st.Size(), st.ModTime(), st.Mode()
	return s
}
