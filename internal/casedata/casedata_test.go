package casedata

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// bcachefsMagic is the superblock magic at offset 24 of the superblock,
// which starts at byte 4096 of a device.
var bcachefsMagic = []byte{0xc6, 0x85, 0x73, 0xf6, 0x66, 0xce, 0x90, 0xa9, 0xd9, 0x6a, 0x60, 0xcf, 0x80, 0x3d, 0xf7, 0xef}

func TestDir(t *testing.T) {
	dir := Require(t)
	if !filepath.IsAbs(dir) {
		t.Errorf("Dir() = %q, want an absolute path", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Errorf("testdata README: %v", err)
	}

	t.Run("env override", func(t *testing.T) {
		t.Setenv(EnvDir, dir)
		if got := Dir(); got != dir {
			t.Errorf("Dir() with $%s = %q, want %q", EnvDir, got, dir)
		}
		t.Setenv(EnvDir, filepath.Join(t.TempDir(), "missing"))
		if got := Dir(); got != "" {
			t.Errorf("Dir() with missing $%s = %q, want \"\"", EnvDir, got)
		}
	})
}

func TestCasesLoad(t *testing.T) {
	names := Cases(t)
	if len(names) == 0 {
		t.Fatal("no cases found")
	}
	for _, name := range []string{"tiny", "corrupt-mixed", "unclean", "a-corrupt"} {
		if !slices.Contains(names, name) {
			t.Errorf("case %q missing from %v", name, names)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			c := LoadCase(t, name)
			if c.Name != name || c.Dir == "" {
				t.Errorf("Name=%q Dir=%q", c.Name, c.Dir)
			}
			if c.Devices < 1 {
				t.Errorf("Devices = %d", c.Devices)
			}
			if len(c.KeyCounts) == 0 {
				t.Error("no key_counts")
			}
			if len(c.Raw) == 0 || c.Raw["name"] == nil {
				t.Error("Raw not filled")
			}
			if c.Superblock != nil && !json.Valid(c.Superblock) {
				t.Error("invalid superblock JSON")
			}
			files, err := caseImageFiles(c)
			if err != nil {
				t.Error(err)
			}
			if len(c.ImageFiles) != 0 && len(c.ImageFiles) != len(files) {
				t.Errorf("image_files %v, found %v", c.ImageFiles, files)
			}
			for i, s := range c.CorruptionSteps {
				if len(s.Raw) == 0 || s.DeletedKeyText() == "" {
					t.Errorf("step %d: Raw or deleted key empty: %+v", i, s)
				}
				// Every field of every step must be modelled by CorruptionStep.
				type plain CorruptionStep
				dec := json.NewDecoder(bytes.NewReader(s.Raw))
				dec.DisallowUnknownFields()
				if err := dec.Decode(new(plain)); err != nil {
					t.Errorf("step %d: %v", i, err)
				}
			}

			e := CaseExpect(t, name)
			checkExpect(t, e)
			if e.Case != name {
				t.Errorf("expect.json case = %q", e.Case)
			}
		})
	}
}

func TestCorruptionSteps(t *testing.T) {
	Require(t)
	steps := LoadCase(t, "corrupt-mixed").CorruptionSteps
	if len(steps) != 9 {
		t.Fatalf("corrupt-mixed: %d steps, want 9", len(steps))
	}
	s := steps[0]
	if s.What != "user backpointer" || s.Bucket != "1:481" || s.BpsInBucket != 9 ||
		s.TargetBtree != "extents" || s.Level != 0 || s.TargetPos != "2147485265:64:4294967295" ||
		s.OnlyBpOfBucketExpectedSilent || !strings.HasPrefix(s.DeletedKey, "u64s 9 type backpointer 1:8075608064:0") {
		t.Errorf("step 0 = %+v", s)
	}
	if got := steps[5].PtrBuckets; len(got) != 2 || got[0] != "1:71" || got[1] != "0:52" {
		t.Errorf("step 5 ptr_buckets = %v", got)
	}
	a := LoadCase(t, "a-corrupt")
	if a.Superblock != nil {
		t.Errorf("a-corrupt superblock = %s, want none", a.Superblock)
	}
	if s := a.CorruptionSteps[0]; s.Op != "delete" || s.Btree != "backpointers" || !strings.HasPrefix(s.Key, "u64s 9 type backpointer") {
		t.Errorf("a-corrupt step 0 = %+v", s)
	}
}

func TestFoundExpect(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(Require(t), "found", "*.expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no found/*.expect.json")
	}
	for _, p := range paths {
		e := LoadExpect(t, p)
		checkExpect(t, e)
		if e.Image == "" || e.Counts["ptr_to_missing_backpointer"] != 6 {
			t.Errorf("%s: image %q counts %v", p, e.Image, e.Counts)
		}
	}
}

// checkExpect checks an Expect for internal consistency and that its file
// has no fields the structs do not model.
func checkExpect(t *testing.T, e *Expect) {
	t.Helper()
	data, err := os.ReadFile(e.Path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(new(Expect)); err != nil {
		t.Errorf("%s: %v", e.Path, err)
	}
	counts := map[string]int{}
	for _, f := range e.Findings {
		counts[f.Code]++
		if f.Code == "" || f.BP == "" || f.Bucket == "" || f.Btree == "" || f.Pos == "" {
			t.Errorf("%s: incomplete finding %+v", e.Path, f)
		}
	}
	if len(counts) != len(e.Counts) {
		t.Errorf("%s: findings give %v, counts %v", e.Path, counts, e.Counts)
	}
	for code, n := range e.Counts {
		if counts[code] != n {
			t.Errorf("%s: %d findings of %s, counts says %d", e.Path, counts[code], code, n)
		}
	}
	other := map[string]int{}
	for _, o := range e.Other {
		code := "None"
		if o.Code != nil {
			code = *o.Code
		}
		other[code]++
	}
	for code, n := range e.OtherCounts {
		if other[code] != n {
			t.Errorf("%s: %d other findings of %s, other_counts says %d", e.Path, other[code], code, n)
		}
	}
}

func TestImage(t *testing.T) {
	Require(t)
	zst := filepath.Join(CaseDir(t, "tiny"), "dev0.img.zst")
	path := Image(t, zst)

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 64<<20 {
		t.Errorf("size = %d, want %d", st.Size(), 64<<20)
	}
	if st.Mode().Perm() != 0o444 {
		t.Errorf("mode = %v, want 0444", st.Mode().Perm())
	}
	if base := filepath.Base(path); base != "dev0.img" {
		t.Errorf("cached name = %q, want dev0.img", base)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	magic := make([]byte, 16)
	if _, err := f.ReadAt(magic, 4096+24); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(magic, bcachefsMagic) {
		t.Errorf("magic = % x, want % x", magic, bcachefsMagic)
	}

	// The copy must be identical to a plain decompression.
	in, err := os.Open(zst)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dec, err := newDecoder(in)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	want, err := io.ReadAll(dec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("cached image differs from the decompressed stream")
	}

	hits, decs := cacheHits.Load(), decompressions.Load()
	again := Image(t, zst)
	if again != path {
		t.Errorf("second call: %q, first %q", again, path)
	}
	if cacheHits.Load() != hits+1 || decompressions.Load() != decs {
		t.Errorf("second call was not a cache hit: hits %d->%d, decompressions %d->%d",
			hits, cacheHits.Load(), decs, decompressions.Load())
	}
	st2, err := os.Stat(again)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(st, st2) || !st2.ModTime().Equal(st.ModTime()) {
		t.Error("second call replaced the cached file")
	}

	imgs := CaseImages(t, "tiny")
	if len(imgs) != 1 || imgs[0] != path {
		t.Errorf("CaseImages(tiny) = %v, want [%s]", imgs, path)
	}
}

func TestWriteSparse(t *testing.T) {
	// Data with zero and non-zero blocks, a partial zero tail and a
	// non-block-aligned chunk boundary.
	var data []byte
	data = append(data, make([]byte, 3*sparseBlock)...)
	data = append(data, bytes.Repeat([]byte{1}, sparseBlock+17)...)
	data = append(data, make([]byte, readChunk+5*sparseBlock)...)
	data = append(data, 2)
	data = append(data, make([]byte, 100)...)

	f, err := os.Create(filepath.Join(t.TempDir(), "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := writeSparse(f, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) {
		t.Fatalf("writeSparse = %d, want %d", n, len(data))
	}
	if err := f.Truncate(n); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Error("sparse copy differs")
	}
}

func TestListDumps(t *testing.T) {
	Require(t)
	c := LoadCase(t, "tiny")
	btrees := ListDumps(t, "tiny")
	if !slices.Contains(btrees, "extents") || !slices.Contains(btrees, "backpointers") || slices.Contains(btrees, nodesDump) {
		t.Errorf("ListDumps(tiny) = %v", btrees)
	}
	for _, btree := range btrees {
		dump, ok := ListDump(t, "tiny", btree)
		if !ok {
			t.Errorf("ListDump(tiny, %s) missing", btree)
			continue
		}
		keys := SplitKeys(dump)
		if want, ok := c.KeyCounts[btree]; ok && len(keys) != want {
			t.Errorf("%s: %d keys, key_counts says %d", btree, len(keys), want)
		}
	}
	dump, ok := ListDump(t, "tiny", "extents")
	if !ok {
		t.Fatal("no extents dump for tiny")
	}
	keys := SplitKeys(dump)
	if len(keys) != c.KeyCounts["extents"] || len(keys) != 30 {
		t.Errorf("tiny extents: %d keys, key_counts %d", len(keys), c.KeyCounts["extents"])
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "u64s ") || strings.HasSuffix(k, "\n") || !strings.Contains(k, "\n  ptr: dev0.img ") {
			t.Errorf("bad key %q", k)
		}
	}
	if _, ok := ListDump(t, "tiny", "no_such_btree"); ok {
		t.Error("ListDump of a missing btree reported ok")
	}
	if _, ok := ListDump(t, "many-extents", "extents"); ok {
		t.Error("many-extents has no list dumps, but ListDump reported ok")
	}
	if got := ListDumps(t, "many-extents"); got != nil {
		t.Errorf("ListDumps(many-extents) = %v, want nil", got)
	}
}

func TestSplitKeys(t *testing.T) {
	dump := "header line\n" +
		"u64s 7 type extent 1:8:0 len 8 ver 0  : durability: 1 \n" +
		"  crc32: c_size 8\n" +
		"\tptr: dev0.img 0:1:0 gen 0\n" +
		"log line\n" +
		"  orphan continuation\n" +
		"u64s 5 type deleted 1:16:0 len 0 ver 0\r\n" +
		"u64s 6 type inode 2:0:0\n" +
		"  mode 0755"
	want := []string{
		"u64s 7 type extent 1:8:0 len 8 ver 0  : durability: 1 \n  crc32: c_size 8\n\tptr: dev0.img 0:1:0 gen 0",
		"u64s 5 type deleted 1:16:0 len 0 ver 0",
		"u64s 6 type inode 2:0:0\n  mode 0755",
	}
	got := SplitKeys(dump)
	if len(got) != len(want) {
		t.Fatalf("SplitKeys = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("key %d = %q, want %q", i, got[i], want[i])
		}
	}
	if got := SplitKeys(""); got != nil {
		t.Errorf("SplitKeys(\"\") = %q", got)
	}
}

// TestImageKeyedByContent: two copies of one .zst at different paths (as
// in two checkouts) share one cache entry, and entries unused for longer
// than staleAfter are pruned when a new one is made, but not the new one.
func TestImageKeyedByContent(t *testing.T) {
	Require(t)
	src, err := os.ReadFile(filepath.Join(CaseDir(t, "tiny"), "dev0.img.zst"))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, d := range []string{t.TempDir(), t.TempDir()} {
		p := filepath.Join(d, "dev0.img.zst")
		if err := os.WriteFile(p, src, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, Image(t, p))
	}
	if paths[0] != paths[1] {
		t.Errorf("copies at two paths cached apart: %s, %s", paths[0], paths[1])
	}

	root := t.TempDir()
	old, recent, keep := filepath.Join(root, "old"), filepath.Join(root, "recent"), filepath.Join(root, "keep")
	for _, d := range []string{old, recent, keep} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for _, d := range []string{old, keep} {
		if err := os.Chtimes(d, now.Add(-2*staleAfter), now.Add(-2*staleAfter)); err != nil {
			t.Fatal(err)
		}
	}
	pruneStale(root, keep, now)
	for d, want := range map[string]bool{old: false, recent: true, keep: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}
