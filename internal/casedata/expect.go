package casedata

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Expect is a parsed expect.json: the normalized findings of the real fsck,
// either of a case (cases/<name>/expect.json) or of a found image
// (found/syz2024_N.expect.json). Absent fields stay at their zero values.
type Expect struct {
	// Path is the file the Expect was read from (not from the JSON).
	Path string `json:"-"`
	// Case is the case name (case expect.json files only).
	Case string `json:"case"`
	// Image is the compressed image name (found/*.expect.json only).
	Image string `json:"image"`
	// Source describes which fsck output the findings were parsed from.
	Source string `json:"source"`
	// Findings are the backpointer findings, in fsck output order.
	Findings []Finding `json:"findings"`
	// Counts is the number of findings per code.
	Counts map[string]int `json:"counts"`
	// Other are the messages of other (non-backpointer) fsck passes.
	Other []OtherFinding `json:"other"`
	// OtherCounts is the number of Other messages per code; "None" counts
	// those of unknown code.
	OtherCounts map[string]int `json:"other_counts"`
	// ErrorsTxtCounts is the per-error counter of the superblock of the
	// repaired copy (errors.txt).
	ErrorsTxtCounts map[string]int `json:"errors_txt_counts"`
	// ConsistencyCheck compares Counts with ErrorsTxtCounts (nil when
	// absent).
	ConsistencyCheck *ConsistencyCheck `json:"consistency_check"`
}

// Finding is one backpointer finding of the real fsck.
type Finding struct {
	// Code is the error name, e.g. "ptr_to_missing_backpointer".
	Code string `json:"code"`
	// BP is the position of the backpointer key, "dev:offset:0".
	BP string `json:"bp"`
	// Bucket is "dev:bucket" of the backpointer.
	Bucket string `json:"bucket"`
	// Btree is the btree the backpointer points into.
	Btree string `json:"btree"`
	// Level is the level of the key holding the pointer (0 = extent in a
	// leaf, >= 1 = pointer to a btree node).
	Level int `json:"level"`
	// Pos is the position of the extent or btree-node key, numbers only.
	Pos string `json:"pos"`
	// Pass is the fsck pass that reported the finding (empty in found/).
	Pass string `json:"pass"`
	// KeyType is the type of the key printed with a missing backpointer.
	KeyType string `json:"key_type"`
	// KeyPos is the position of the key printed with a missing backpointer.
	KeyPos string `json:"key_pos"`
	// TargetType is the type of the key a mismatched backpointer points to
	// ("deleted" when it is gone).
	TargetType string `json:"target_type"`
	// TargetPos is the position of the key a mismatched backpointer points to.
	TargetPos string `json:"target_pos"`
	// Detail holds further backpointer fields (bucket_offset, data_type,
	// bp_len, gen, ...), nil when absent.
	Detail json.RawMessage `json:"detail"`
}

// OtherFinding is a message of a non-backpointer fsck pass.
type OtherFinding struct {
	// Pass is the fsck pass that printed the message.
	Pass string `json:"pass"`
	// Code is the error name guessed from the message, nil when unknown.
	Code *string `json:"code"`
	// FirstLine is the first line of the message.
	FirstLine string `json:"first_line"`
}

// ConsistencyCheck records whether expect.json agrees with errors.txt.
type ConsistencyCheck struct {
	// OK is true when every backpointer count is covered by errors.txt.
	OK bool `json:"ok"`
	// Notes explains any differences.
	Notes []string `json:"notes"`
}

// LoadExpect reads and parses the expect.json file at path, failing the
// test on error.
func LoadExpect(tb testing.TB, path string) *Expect {
	tb.Helper()
	e, err := parseExpect(path)
	if err != nil {
		tb.Fatalf("testdata: %v", err)
	}
	return e
}

// CaseExpect reads cases/<name>/expect.json (see LoadExpect).
func CaseExpect(tb testing.TB, name string) *Expect {
	tb.Helper()
	return LoadExpect(tb, filepath.Join(CaseDir(tb, name), "expect.json"))
}

// parseExpect reads and parses the expect.json file at path.
func parseExpect(path string) (*Expect, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("expect: %w", err)
	}
	var e Expect
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("expect: parsing %s: %w", path, err)
	}
	e.Path = path
	return &e, nil
}
