// Package casedata gives tests access to the shared bcachefs test images
// and the reference output of the real bcachefs tools that comes with them.
//
// The data lives outside the module, in <project root>/../shared/testdata
// (or wherever $BPCHECK_TESTDATA points). Compressed images are decompressed
// once into a cache below os.TempDir() and reused by later test runs and by
// test processes running in parallel. (The package is not called
// testdata: the go tool skips directories of that name, so its own tests
// would never run.)
package casedata

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// EnvDir is the environment variable that overrides the testdata location.
const EnvDir = "BPCHECK_TESTDATA"

// moduleName is the module whose root anchors the default testdata location.
const moduleName = "bpcheck"

// Dir returns the testdata root directory.
//
// If $BPCHECK_TESTDATA is set, it is used (and "" is returned when it is not
// a directory). Otherwise Dir walks up from the current working directory to
// the project root, the first directory whose go.mod declares
// `module bpcheck`, and returns <root>/../shared/testdata if that directory
// exists. It returns "" when no testdata directory can be found.
func Dir() string {
	if env := os.Getenv(EnvDir); env != "" {
		abs, err := filepath.Abs(env)
		if err != nil || !isDir(abs) {
			return ""
		}
		return abs
	}
	root := projectRoot()
	if root == "" {
		return ""
	}
	dir := filepath.Join(filepath.Dir(root), "shared", "testdata")
	if !isDir(dir) {
		return ""
	}
	return dir
}

// projectRoot returns the nearest ancestor of the working directory (itself
// included) holding the go.mod of module bpcheck, or "".
func projectRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; {
		if isModuleRoot(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// isModuleRoot reports whether the go.mod file at path declares module bpcheck.
func isModuleRoot(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) != 2 || fields[0] != "module" {
			continue
		}
		name := fields[1]
		if unq, err := strconv.Unquote(name); err == nil {
			name = unq
		}
		return name == moduleName
	}
	return false
}

// isDir reports whether path exists and is a directory.
func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// Require returns Dir(). When the testdata directory is missing it skips the
// test, or fails it when the environment variable CI is "true".
func Require(tb testing.TB) string {
	tb.Helper()
	dir := Dir()
	if dir != "" {
		return dir
	}
	var msg string
	if env := os.Getenv(EnvDir); env != "" {
		msg = fmt.Sprintf("testdata: $%s=%q is not a directory", EnvDir, env)
	} else {
		msg = fmt.Sprintf("testdata: shared test images not found: expected ../shared/testdata next to the root of module %s (or set $%s)", moduleName, EnvDir)
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// caseGroups are the folders of the testdata root that hold cases judged
// by the real fsck of the tools that made them: cases/ (bcachefs-tools
// v1.36.1 and, the a-* ones, v1.9.4), versions/ (v1.25.3, the v128-*
// ones, and v1.39.2, the v139-* ones) and encrypted/ (v1.36.1, sealed
// with the passphrase in passphrase.txt: see Passphrase). Case names are
// unique across them.
var caseGroups = []string{"cases", "versions", "encrypted"}

// Passphrase returns the passphrase of an encrypted case (the first line
// of its passphrase.txt), or nil for a case without one.
func Passphrase(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(CaseDir(tb, name), "passphrase.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		tb.Fatalf("testdata: case %s: %v", name, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return []byte(line)
}

// repoGroups are the case groups this repository holds itself, under
// testdata/ at the module root: cases made here with the real
// bcachefs-tools of their era (bench/mkcase), judged by that era's fsck,
// in the layout of the shared ones.
var repoGroups = []string{"versions"}

// groupDirs returns every case group directory, the shared ones first
// (cases/, versions/, encrypted/), then the repository's, with a label
// for messages.
func groupDirs(tb testing.TB) []string {
	tb.Helper()
	root := Require(tb)
	var dirs []string
	for _, g := range caseGroups {
		dirs = append(dirs, filepath.Join(root, g))
	}
	if pr := projectRoot(); pr != "" {
		for _, g := range repoGroups {
			dirs = append(dirs, filepath.Join(pr, "testdata", g))
		}
	}
	return dirs
}

// Cases lists the names of the case directories of every case group
// (shared cases/, versions/, encrypted/, then the repository's
// testdata/versions/), each group sorted by name.
func Cases(tb testing.TB) []string {
	tb.Helper()
	var names []string
	for i, dir := range groupDirs(tb) {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) && i > 0 {
			continue // an older copy of the test data, or no cases of the repository's yet
		}
		if err != nil {
			tb.Fatalf("testdata: listing %s: %v", dir, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
	}
	return names // os.ReadDir returns entries sorted by name
}

// CaseDir returns the directory of the named case, whichever case group
// holds it, failing the test if none does.
func CaseDir(tb testing.TB, name string) string {
	tb.Helper()
	dirs := groupDirs(tb)
	for _, g := range dirs {
		dir := filepath.Join(g, name)
		if isDir(dir) {
			return dir
		}
	}
	tb.Fatalf("testdata: case %q: no directory of that name in %v", name, dirs)
	return ""
}
