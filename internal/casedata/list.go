package casedata

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// listSuffix is the file name suffix of the `bcachefs list` dumps.
const listSuffix = ".txt.zst"

// nodesDump is the dump of btree node info, which is not a key listing.
const nodesDump = "btree_nodes"

// ListDump returns the decompressed text of <case>/list/<btree>.txt.zst
// (or the repository's testdata/lists/<case>/<btree>.txt.zst), the
// `bcachefs list -b <btree>` output of a case. ok is false when the case
// has no such dump. Use btree "btree_nodes" for the node-level dump.
func ListDump(tb testing.TB, name, btree string) (dump string, ok bool) {
	tb.Helper()
	path := filepath.Join(listDir(tb, name), btree+listSuffix)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "", false
	} else if err != nil {
		tb.Fatalf("testdata: case %s: list dump %s: %v", name, btree, err)
	}
	data, err := decompressFile(path)
	if err != nil {
		tb.Fatalf("testdata: case %s: list dump %s: %v", name, btree, err)
	}
	return string(data), true
}

// ListDumps returns the sorted names of the btrees that have a list dump in
// a case, excluding btree_nodes. It returns nil when the case has no list/
// directory.
func ListDumps(tb testing.TB, name string) []string {
	tb.Helper()
	dir := listDir(tb, name)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		tb.Fatalf("testdata: case %s: %v", name, fmt.Errorf("listing dumps: %w", err))
	}
	var btrees []string
	for _, e := range entries {
		btree, ok := strings.CutSuffix(e.Name(), listSuffix)
		if !ok || e.IsDir() || btree == nodesDump {
			continue
		}
		btrees = append(btrees, btree)
	}
	sort.Strings(btrees)
	return btrees
}

// SplitKeys splits a `bcachefs list` dump into keys. A key starts with a
// line beginning with "u64s " and continues with the following lines that
// begin with a space or tab; all other lines are dropped. Each key is
// returned as its lines joined by "\n", without a trailing newline.
func SplitKeys(dump string) []string {
	var keys []string
	var cur []string
	flush := func() {
		if cur != nil {
			keys = append(keys, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	for line := range strings.Lines(dump) {
		line = strings.TrimSuffix(line, "\n")
		line = strings.TrimSuffix(line, "\r")
		switch {
		case strings.HasPrefix(line, "u64s "):
			flush()
			cur = []string{line}
		case cur != nil && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
			cur = append(cur, line)
		default:
			flush()
		}
	}
	flush()
	return keys
}

// listDir is where a case's `bcachefs list` dumps are: its own list/
// folder, else the repository's testdata/lists/<name>/ (dumps made here
// by the real tools of the case's era for shared cases that come without
// them, such as the encrypted ones).
func listDir(tb testing.TB, name string) string {
	tb.Helper()
	dir := filepath.Join(CaseDir(tb, name), "list")
	if isDir(dir) {
		return dir
	}
	if pr := projectRoot(); pr != "" {
		if d := filepath.Join(pr, "testdata", "lists", name); isDir(d) {
			return d
		}
	}
	return dir
}
