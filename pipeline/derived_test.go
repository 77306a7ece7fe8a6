package pipeline_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"bpcheck/internal/casedata"
	"bpcheck/report"
)

// derivedCodes are the findings of the allocator's derived btrees
// (package allocinfo), judged against the real fsck's own messages.
var derivedCodes = map[string]bool{
	report.AllocKeyFragmentationLRUWrong:             true,
	report.AllocKeyToMissingLRUEntry:                 true,
	report.AllocKeyCachedButReadTimeZero:             true,
	report.LRUEntryBad:                               true,
	report.LRUEntryToInvalidBucket:                   true,
	report.NeedDiscardKeyWrong:                       true,
	report.FreespaceKeyWrong:                         true,
	report.FreespaceHoleMissing:                      true,
	report.BucketGensKeyWrong:                        true,
	report.BucketGensHoleWrong:                       true,
	report.BucketGensToInvalidDev:                    true,
	report.BucketGensToInvalidBuckets:                true,
	report.BucketGensNonzeroForInvalidBuckets:        true,
	report.NeedDiscardFreespaceKeyToInvalidDevBucket: true,
	report.NeedDiscardFreespaceKeyBad:                true,
}

var (
	allocKeyLine  = regexp.MustCompile(`type alloc_v4 (\d+):(\d+):`)
	lruKeyLine    = regexp.MustCompile(`type (?:set|lru) (\d+):(\d+):`)
	holeRange     = regexp.MustCompile(`device (\d+) buckets (\d+)-(\d+)`)
	bucketPrefix  = regexp.MustCompile(`bucket (\d+):(\d+) gen \d+ data type \w+ has wrong fragmentation_lru`)
	setAt         = regexp.MustCompile(`incorrectly set at (\w+):(\d+):(\d+):0`)
	invalidEntry  = regexp.MustCompile(`entry in (\w+) btree for nonexistant dev:bucket (\d+):(\d+)`)
	lruInvalid    = regexp.MustCompile(`lru key points to nonexistent device:bucket (\d+):(\d+)`)
	gensHoleAt    = regexp.MustCompile(`hole in alloc btree at (\d+):(\d+) with nonzero gen`)
	keyWrongStart = regexp.MustCompile(`bucket incorrectly (?:un)?set in (need_discard|freespace) btree|incorrect key in (need_discard|freespace) btree`)
)

// expectedDerived returns the real fsck's findings of the derived btrees
// (fsck.txt, any era's text) as "code dev:bucket" (freespace holes as
// "code dev:start-end"), sorted.
func expectedDerived(t *testing.T, name string) []string {
	b, err := os.ReadFile(filepath.Join(casedata.CaseDir(t, name), "fsck.txt"))
	if err != nil {
		t.Fatalf("fsck.txt: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	var out []string
	// following finds the first line at or after i matching re.
	following := func(i int, re *regexp.Regexp) []string {
		for j := i; j < len(lines) && j < i+60; j++ {
			if m := re.FindStringSubmatch(lines[j]); m != nil {
				return m
			}
		}
		t.Fatalf("%s: no %v after line %d", name, re, i)
		return nil
	}
	add := func(code string, dev, bucket string) { out = append(out, code+" "+dev+":"+bucket) }
	for i, l := range lines {
		switch {
		case strings.Contains(l, "lru entry") && strings.Contains(l, "missing "):
			m := following(i, allocKeyLine)
			add(report.AllocKeyToMissingLRUEntry, m[1], m[2])
		case strings.Contains(l, "incorrect lru entry"):
			m := following(i, lruKeyLine)
			off, _ := strconv.ParseUint(m[2], 10, 64)
			add(report.LRUEntryBad, fmt.Sprint(off>>48), fmt.Sprint(off&(1<<48-1)))
		case lruInvalid.MatchString(l):
			m := lruInvalid.FindStringSubmatch(l)
			add(report.LRUEntryToInvalidBucket, m[1], m[2])
		case bucketPrefix.MatchString(l):
			m := bucketPrefix.FindStringSubmatch(l)
			add(report.AllocKeyFragmentationLRUWrong, m[1], m[2])
		case strings.Contains(l, "hole in alloc btree missing in freespace btree"):
			m := following(i, holeRange)
			out = append(out, fmt.Sprintf("%s %s:%s-%s", report.FreespaceHoleMissing, m[1], m[2], m[3]))
		case gensHoleAt.MatchString(l):
			m := gensHoleAt.FindStringSubmatch(l)
			add(report.BucketGensHoleWrong, m[1], m[2])
		case keyWrongStart.MatchString(l):
			m := keyWrongStart.FindStringSubmatch(l)
			code := report.FreespaceKeyWrong
			if m[1] == "need_discard" || m[2] == "need_discard" {
				code = report.NeedDiscardKeyWrong
			}
			a := following(i, allocKeyLine)
			add(code, a[1], a[2])
		case strings.Contains(l, "incorrect gen in bucket_gens btree"):
			a := following(i, allocKeyLine)
			add(report.BucketGensKeyWrong, a[1], a[2])
		case strings.Contains(l, "cached bucket with read_time 0"):
			a := following(i, allocKeyLine)
			add(report.AllocKeyCachedButReadTimeZero, a[1], a[2])
		case setAt.MatchString(l):
			m := setAt.FindStringSubmatch(l)
			inode, _ := strconv.ParseUint(m[2], 10, 64)
			off, _ := strconv.ParseUint(m[3], 10, 64)
			switch {
			case m[1] == "freespace":
				add(report.NeedDiscardFreespaceKeyBad, fmt.Sprint(inode), fmt.Sprint(off&(1<<56-1)))
			case off >= 1<<48: // need_discard at journal_seq:dev_bucket (1.38+)
				add(report.NeedDiscardFreespaceKeyBad, fmt.Sprint(off>>48), fmt.Sprint(off&(1<<48-1)))
			default:
				add(report.NeedDiscardFreespaceKeyBad, fmt.Sprint(inode), fmt.Sprint(off))
			}
		case invalidEntry.MatchString(l):
			m := invalidEntry.FindStringSubmatch(l)
			add(report.NeedDiscardFreespaceKeyToInvalidDevBucket, m[2], m[3])
		}
	}
	sort.Strings(out)
	return out
}

var holeDetail = regexp.MustCompile(`buckets (\d+)-(\d+)$`)

// derivedKey renders a bpcheck finding of the derived btrees as
// expectedDerived does.
func derivedKey(f report.Finding) string {
	if m := holeDetail.FindStringSubmatch(f.Detail); f.Code == report.FreespaceHoleMissing && m != nil {
		return fmt.Sprintf("%s %d:%s-%s", f.Code, f.Dev, m[1], m[2])
	}
	return fmt.Sprintf("%s %d:%d", f.Code, f.Dev, f.Bucket)
}

var acctMismatch = regexp.MustCompile(`(?m)^accounting mismatch for (.+?):\s*\n?\s*got ([\d ]+?)\s*\n?\s*should be ([\d ]+?),`)

// expectedAccounting returns the real fsck's accounting_mismatch findings
// (fsck.txt) as "code key got->want", leaving out the keys of types the
// check says it does not compute (notChecked: the summary's notes).
func expectedAccounting(t *testing.T, name string, notChecked []string) []string {
	b, err := os.ReadFile(filepath.Join(casedata.CaseDir(t, name), "fsck.txt"))
	if err != nil {
		t.Fatalf("fsck.txt: %v", err)
	}
	skip := func(key string) bool {
		typ, rest, _ := strings.Cut(key, " ")
		for _, n := range notChecked {
			what, ok := strings.CutPrefix(n, "accounting: ")
			if !ok {
				continue
			}
			if what == "" || strings.HasPrefix(what, "read errors") {
				return true
			}
			first, _, _ := strings.Cut(what, " ")
			switch {
			case typ == "replicas" && strings.HasPrefix(what, "replicas of cached"):
				if strings.HasPrefix(rest, "cached:") {
					return true
				}
			case typ == "replicas" && strings.HasPrefix(what, "replicas of erasure-coded"):
				var dt string
				var req, nr int
				if _, err := fmt.Sscanf(rest, "%s %d/%d", &dt, &req, &nr); err == nil && req != 1 {
					return true
				}
			case typ == "snapshot" && strings.HasPrefix(what, "snapshot key counts of btrees other than extents"):
				if !strings.HasSuffix(rest, " btree=extents") {
					return true
				}
			case first == typ || typ == "rebalance_work" && first == "rebalance/reconcile" || typ == "reconcile_work" && first == "rebalance/reconcile":
				return true
			}
		}
		return false
	}
	var out []string
	for _, m := range acctMismatch.FindAllStringSubmatch(string(b), -1) {
		if skip(m[1]) {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s->%s", report.AccountingMismatch, m[1], strings.TrimSpace(m[2]), strings.TrimSpace(m[3])))
	}
	sort.Strings(out)
	return out
}

// acctKey renders a bpcheck accounting finding as expectedAccounting does.
func acctKey(f report.Finding) string {
	return fmt.Sprintf("%s %s %s->%s", f.Code, strings.TrimPrefix(f.Detail, "accounting mismatch for "), f.Got, f.Want)
}
