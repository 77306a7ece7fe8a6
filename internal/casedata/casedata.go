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

// Cases lists the names of the case directories under cases/, sorted.
func Cases(tb testing.TB) []string {
	tb.Helper()
	casesDir := filepath.Join(Require(tb), "cases")
	entries, err := os.ReadDir(casesDir)
	if err != nil {
		tb.Fatalf("testdata: listing cases: %v", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names // os.ReadDir returns entries sorted by name
}

// CaseDir returns the directory of the named case, failing the test if it
// does not exist.
func CaseDir(tb testing.TB, name string) string {
	tb.Helper()
	dir := filepath.Join(Require(tb), "cases", name)
	if !isDir(dir) {
		tb.Fatalf("testdata: case %q: directory %s not found", name, dir)
	}
	return dir
}
