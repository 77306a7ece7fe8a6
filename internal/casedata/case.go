package casedata

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Case is the parsed case.json of a test case. Fields missing from a
// case.json (the a-* cases have fewer) are left at their zero values; Raw
// keeps every top-level field for anything not modelled here.
type Case struct {
	// Name is the case name (the "name" field, equal to the directory name).
	Name string `json:"name"`
	// Dir is the absolute path of the case directory (not from the JSON).
	Dir string `json:"-"`
	// Devices is the number of member devices (dev0.img.zst, dev1.img.zst, ...).
	Devices int `json:"devices"`
	// BaseCase names the case the image was derived from, if any (free text
	// in some a-* cases).
	BaseCase string `json:"base_case"`
	// ImageFiles lists the compressed device images in device order (absent
	// in some a-* cases).
	ImageFiles []string `json:"image_files"`
	// KeyCounts is the number of leaf keys per btree as listed by
	// `bcachefs list` (after any corruption and journal overlay).
	KeyCounts map[string]int `json:"key_counts"`
	// CorruptionSteps lists every key deleted to make the case (empty for
	// clean cases).
	CorruptionSteps []CorruptionStep `json:"corruption_steps"`
	// ExpectedCounts is the per-code count of backpointer findings of the
	// real fsck (nil when absent).
	ExpectedCounts map[string]int `json:"expected_counts"`
	// OtherCounts is the per-code count of the other fsck findings; the
	// key "None" counts messages whose code is unknown (nil when absent).
	OtherCounts map[string]int `json:"other_counts"`
	// Superblock holds the superblock facts object (nil when absent).
	Superblock json.RawMessage `json:"superblock"`
	// Raw holds every top-level field of case.json.
	Raw map[string]json.RawMessage `json:"-"`
}

// CorruptionStep is one key deletion of case.json "corruption_steps". Which
// fields are set depends on the kind of step and the tool generation; Raw
// holds the complete object.
type CorruptionStep struct {
	// Cmd is the command that deleted the key (v1.36 cases, a-corrupt-mixed).
	Cmd string `json:"cmd"`
	// DeletedKey is the deleted key as printed by bcachefs.
	DeletedKey string `json:"deleted_key"`
	// What describes the kind of key deleted ("user backpointer", "extent
	// key", "alloc key of bucket with backpointers", ...).
	What string `json:"what"`
	// Bucket is the "dev:bucket" of a deleted backpointer or alloc key.
	Bucket string `json:"bucket"`
	// BpsInBucket is the number of backpointers the bucket had before the
	// deletion.
	BpsInBucket int `json:"bps_in_bucket"`
	// BucketEmptied is set when the step left the bucket without any
	// backpointers.
	BucketEmptied bool `json:"bucket_emptied"`
	// TargetBtree is the btree a deleted backpointer points into.
	TargetBtree string `json:"target_btree"`
	// Level is the btree level a deleted backpointer points at (0 = leaf
	// extent, >= 1 = btree node); zero when the step has no level.
	Level int `json:"level"`
	// TargetPos is the position a deleted backpointer points at, with
	// U32_MAX etc. expanded to numbers.
	TargetPos string `json:"target_pos"`
	// OnlyBpOfBucketExpectedSilent is set when the deleted backpointer was
	// the only one of its bucket, so the real fsck repairs it silently.
	OnlyBpOfBucketExpectedSilent bool `json:"only_bp_of_bucket_expected_silent"`
	// PtrBuckets lists the "dev:bucket" of each pointer of a deleted extent.
	PtrBuckets []string `json:"ptr_buckets"`
	// Op is the operation of an a-corrupt step ("delete").
	Op string `json:"op"`
	// Btree is the btree of the deleted key of an a-corrupt step.
	Btree string `json:"btree"`
	// Key is the deleted key of an a-corrupt step, as printed by bcachefs.
	Key string `json:"key"`
	// Raw is the complete JSON object of the step.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a step and keeps a copy of its JSON in Raw.
func (s *CorruptionStep) UnmarshalJSON(data []byte) error {
	type plain CorruptionStep // no methods: avoids recursion
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("corruption step: %w", err)
	}
	*s = CorruptionStep(p)
	s.Raw = append(json.RawMessage(nil), data...)
	return nil
}

// DeletedKeyText returns the text of the deleted key, whichever field holds
// it (DeletedKey, or Key in a-corrupt).
func (s *CorruptionStep) DeletedKeyText() string {
	if s.DeletedKey != "" {
		return s.DeletedKey
	}
	return s.Key
}

// LoadCase reads and parses cases/<name>/case.json, failing the test on
// error.
func LoadCase(tb testing.TB, name string) *Case {
	tb.Helper()
	c, err := parseCase(CaseDir(tb, name), name)
	if err != nil {
		tb.Fatalf("testdata: %v", err)
	}
	return c
}

// parseCase reads dir/case.json of the case called name.
func parseCase(dir, name string) (*Case, error) {
	path := filepath.Join(dir, "case.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("case %s: %w", name, err)
	}
	var c Case
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("case %s: parsing %s: %w", name, path, err)
	}
	if err := json.Unmarshal(data, &c.Raw); err != nil {
		return nil, fmt.Errorf("case %s: parsing %s: %w", name, path, err)
	}
	if c.Name == "" {
		c.Name = name
	} else if c.Name != name {
		return nil, fmt.Errorf("case %s: %s names the case %q", name, path, c.Name)
	}
	c.Dir = dir
	return &c, nil
}

// CaseImages returns the paths of the decompressed device images of a case,
// in device order dev0, dev1, ... (see Image).
func CaseImages(tb testing.TB, name string) []string {
	tb.Helper()
	c := LoadCase(tb, name)
	zsts, err := caseImageFiles(c)
	if err != nil {
		tb.Fatalf("testdata: %v", err)
	}
	paths := make([]string, len(zsts))
	for i, z := range zsts {
		paths[i] = Image(tb, z)
	}
	return paths
}

// caseImageFiles returns the compressed device images of c in device order,
// checking that exactly c.Devices of them exist.
func caseImageFiles(c *Case) ([]string, error) {
	var files []string
	for i := 0; ; i++ {
		p := filepath.Join(c.Dir, fmt.Sprintf("dev%d.img.zst", i))
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("case %s: device %d: %w", c.Name, i, err)
		}
		files = append(files, p)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("case %s: no dev0.img.zst in %s", c.Name, c.Dir)
	}
	if c.Devices != 0 && len(files) != c.Devices {
		return nil, fmt.Errorf("case %s: case.json says %d devices, found %d images", c.Name, c.Devices, len(files))
	}
	return files, nil
}
