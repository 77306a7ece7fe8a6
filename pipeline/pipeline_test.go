package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"bpcheck/aio"
	"bpcheck/btreeio"
	"bpcheck/internal/casedata"
	"bpcheck/internal/hugemem"
	"bpcheck/pipeline"
	"bpcheck/report"
	"bpcheck/unlock"
)

// bpCodes are the findings of the backpointer passes, compared exactly.
var bpCodes = map[string]bool{
	report.PtrToMissingBackpointer:    true,
	report.BackpointerToMissingPtr:    true,
	report.BackpointerToMissingAlloc:  true,
	report.BackpointerToMissingDevice: true,
}

// allocCodes are check_allocations findings that bpcheck also reports.
var allocCodes = map[string]bool{
	report.PtrToMissingAllocKey:       true,
	report.AllocKeyDirtySectorsWrong:  true,
	report.AllocKeyCachedSectorsWrong: true,
	report.AllocKeyStripeSectorsWrong: true,
	report.AllocKeyDataTypeWrong:      true,
}

func bpKey(code, bpPos, btree string, level int, pos string) string {
	return fmt.Sprintf("%s bp=%s btree=%s level=%d pos=%s", code, bpPos, btree, level, pos)
}

var deleteBPArg = regexp.MustCompile(`-b backpointers -p (\S+)`)

// expectedBP returns the backpointer findings a full check must report
// for a case: expect.json's, plus one ptr_to_missing_backpointer for
// every silently repaired deletion (testdata README).
func expectedBP(t *testing.T, name string) (want []string, either map[string]string) {
	e := casedata.CaseExpect(t, name)
	byBP := map[string][]casedata.Finding{}
	for _, f := range e.Findings {
		if bpCodes[f.Code] {
			byBP[f.BP] = append(byBP[f.BP], f)
		}
	}
	either = map[string]string{}
	for _, fs := range byBP {
		// v1.9.4 reports a backpointer whose alloc key and extents are gone
		// both as missing_alloc and missing_ptr; either is accepted.
		if len(fs) == 2 && fs[0].Code != fs[1].Code {
			a := bpKey(fs[0].Code, fs[0].BP, fs[0].Btree, fs[0].Level, fs[0].Pos)
			b := bpKey(fs[1].Code, fs[1].BP, fs[1].Btree, fs[1].Level, fs[1].Pos)
			either[a], either[b] = b, a
		}
		for _, f := range fs {
			want = append(want, bpKey(f.Code, f.BP, f.Btree, f.Level, f.Pos))
		}
	}
	c := casedata.LoadCase(t, name)
	for _, s := range c.CorruptionSteps {
		if !s.OnlyBpOfBucketExpectedSilent {
			continue
		}
		m := deleteBPArg.FindStringSubmatch(s.Cmd)
		if m == nil {
			t.Fatalf("silent step without a backpointer position: %s", s.Cmd)
		}
		want = append(want, bpKey(report.PtrToMissingBackpointer, m[1], s.TargetBtree, s.Level, s.TargetPos))
	}
	sort.Strings(want)
	return want, either
}

var allocLine = regexp.MustCompile(`^bucket (\d+):(\d+) `)

// expectedAlloc returns the check_allocations findings of expect.json
// that bpcheck also checks, as "code dev:bucket".
func expectedAlloc(t *testing.T, name string) ([]string, bool) {
	e := casedata.CaseExpect(t, name)
	if e.Other == nil && e.OtherCounts == nil {
		return nil, false
	}
	var out []string
	for _, o := range e.Other {
		if o.Code == nil || !allocCodes[*o.Code] {
			continue
		}
		m := allocLine.FindStringSubmatch(o.FirstLine)
		if m == nil {
			t.Fatalf("alloc finding without bucket: %q", o.FirstLine)
		}
		out = append(out, fmt.Sprintf("%s %s:%s", *o.Code, m[1], m[2]))
	}
	sort.Strings(out)
	return out, true
}

func runCase(t *testing.T, name string, opt pipeline.Options) *pipeline.Result {
	t.Helper()
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
			t.Skipf("journal replay not implemented yet: %v", err)
		}
		t.Fatal(err)
	}
	res, err := pipeline.Run(context.Background(), fs, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Errors {
		t.Errorf("read error: %v", e)
	}
	return res
}

// recreatedBPs returns the ptr_to_missing_backpointer findings a full
// check reports where the real fsck reported only the other half: a
// backpointer it called wrong (backpointer_to_missing_ptr) whose pointer
// is still there, so that its repair deleted it and wrote it anew at the
// same position, without a message, its bucket sums being right (the
// check_extents_to_backpointers gate, as for the silent steps). truth.json
// settles them: the expected removals its repair did not remove by
// position (nor moved with a btree node it rewrote: btree_node_churn)
// were written anew in place (replaced_in_place counts them). Seen on 1.36
// erasure-coded filesystems upgraded to 1.39, whose backpointers lack the
// 1.37 flags; the real fsck -n is clean after its -y, and so is bpcheck.
//
// It also returns replaced_in_place (-1 when truth.json does not say).
func recreatedBPs(t *testing.T, name string) ([]string, int) {
	b, err := os.ReadFile(filepath.Join(casedata.CaseDir(t, name), "truth.json"))
	if err != nil {
		return nil, -1
	}
	var truth struct {
		Removed []struct {
			BP string `json:"bp"`
		} `json:"removed"`
		Churn    []string `json:"btree_node_churn"`
		Replaced *int     `json:"replaced_in_place"`
	}
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatalf("truth.json: %v", err)
	}
	if truth.Replaced == nil {
		return nil, -1
	}
	if *truth.Replaced == 0 {
		return nil, 0 // the repair wrote nothing anew in place
	}
	gone := map[string]bool{}
	for _, r := range truth.Removed {
		gone[r.BP] = true
	}
	for _, c := range truth.Churn {
		gone[c] = true
	}
	var out []string
	for _, f := range casedata.CaseExpect(t, name).Findings {
		if f.Code == report.BackpointerToMissingPtr && !gone[f.BP] {
			out = append(out, bpKey(report.PtrToMissingBackpointer, f.BP, f.Btree, f.Level, f.Pos))
		}
	}
	return out, *truth.Replaced
}

// nodeMismatch is a "backpointer doesn't match btree node" message of the
// real fsck: the node key as the run saw it (up to "found:") and the
// backpointer found.
var nodeMismatch = regexp.MustCompile(`(?s)backpointer doesn't match btree node it points to:\n(.*?)\n  found: u64s \d+ type backpointer (\S+) [^\n]*?bucket=(\d+:\d+):`)

var ptrBucket = regexp.MustCompile(`ptr: +\S+ (\d+:\d+):\d+`)

// withoutMovedNodes drops the expected findings about btree nodes the real
// fsck moved in memory during its own -n run: the node key it prints has
// no pointer into the bucket of the backpointer it found, which is where
// the node lies on disk (nochanges: the move is never written, and the
// disk's pointer and backpointer agree). They judge the run, not the disk.
// Seen on v139-up-ec (btree_bitmap_gc and the upgrade's passes rewrite
// interior nodes of alloc, backpointers, accounting and freespace).
func withoutMovedNodes(t *testing.T, name string, want []string) []string {
	b, err := os.ReadFile(filepath.Join(casedata.CaseDir(t, name), "fsck.txt"))
	if err != nil {
		return want
	}
	moved := map[string]bool{}
	for _, m := range nodeMismatch.FindAllStringSubmatch(string(b), -1) {
		ptrs := ptrBucket.FindAllStringSubmatch(m[1], -1)
		inNode := false
		for _, p := range ptrs {
			inNode = inNode || p[1] == m[3]
		}
		if len(ptrs) > 0 && !inNode { // a node that exists, elsewhere
			moved["bp="+m[2]+" "] = true
		}
	}
	out := want[:0]
	for _, w := range want {
		drop := false
		for bp := range moved {
			drop = drop || strings.Contains(w, bp)
		}
		if !drop {
			out = append(out, w)
		}
	}
	return out
}

var stripeCountLine = regexp.MustCompile(`(?m)^stripe block (\d+) has wrong sector count: got (\d+), should be (\d+)\n\s+u64s \d+ type stripe (\S+)`)

// expectedStripes returns the stripe_sector_count_wrong messages of the
// real fsck (fsck.txt: block, counts and the stripe key on the next
// line), as "code pos block got->want".
func expectedStripes(t *testing.T, name string) []string {
	b, err := os.ReadFile(filepath.Join(casedata.CaseDir(t, name), "fsck.txt"))
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range stripeCountLine.FindAllStringSubmatch(string(b), -1) {
		out = append(out, fmt.Sprintf("%s %s block %s %s->%s", report.StripeSectorCountWrong, strings.ReplaceAll(m[4], "U32_MAX", "4294967295"), m[1], m[2], m[3]))
	}
	sort.Strings(out)
	return out
}

var stripeBlockDetail = regexp.MustCompile(`^stripe block (\d+) `)

func split(res *pipeline.Result) (bps, allocs, other []string) {
	for _, f := range res.Findings {
		switch {
		case f.Code == report.StripeSectorCountWrong && stripeBlockDetail.MatchString(f.Detail):
			block := stripeBlockDetail.FindStringSubmatch(f.Detail)[1]
			other = append(other, fmt.Sprintf("%s %s block %s %s->%s", f.Code, f.Pos, block, f.Got, f.Want))
		case bpCodes[f.Code]:
			bps = append(bps, bpKey(f.Code, f.BP.String(), f.Btree, f.Level, f.Pos.String()))
		case allocCodes[f.Code]:
			allocs = append(allocs, fmt.Sprintf("%s %d:%d", f.Code, f.Dev, f.Bucket))
		case derivedCodes[f.Code]:
			other = append(other, "derived "+derivedKey(f))
		case f.Code == report.AccountingMismatch:
			other = append(other, "acct "+acctKey(f))
		default:
			other = append(other, f.Code+" "+f.Detail)
		}
	}
	sort.Strings(bps)
	sort.Strings(allocs)
	return
}

func diff(t *testing.T, what string, got, want []string, either map[string]string) {
	t.Helper()
	g := map[string]bool{}
	for _, x := range got {
		g[x] = true
	}
	w := map[string]bool{}
	for _, x := range want {
		w[x] = true
	}
	for _, x := range want {
		if !g[x] && !g[either[x]] {
			t.Errorf("%s: missing %s", what, x)
		}
	}
	for _, x := range got {
		if !w[x] {
			t.Errorf("%s: unexpected %s", what, x)
		}
	}
}

// TestCasesMatchFsck checks every case and compares the findings with what
// the real bcachefs fsck reported (expect.json) plus the silent repairs.
func TestCasesMatchFsck(t *testing.T) {
	casedata.Require(t)
	for _, name := range casedata.Cases(t) {
		t.Run(name, func(t *testing.T) {
			res := runCase(t, name, pipeline.Options{})
			bps, allocs, other := split(res)
			want, either := expectedBP(t, name)
			rec, replaced := recreatedBPs(t, name)
			rec = withoutMovedNodes(t, name, rec)
			if replaced >= 0 && len(rec) != replaced {
				t.Errorf("truth.json: %d backpointers replaced in place, %d reported and neither removed nor moved", replaced, len(rec))
			}
			want = withoutMovedNodes(t, name, append(want, rec...))
			diff(t, "backpointer findings", bps, want, either)
			if wantAlloc, ok := expectedAlloc(t, name); ok {
				diff(t, "alloc findings", allocs, wantAlloc, nil)
			}
			var stripes, derived, acct []string
			for _, o := range other {
				if strings.HasPrefix(o, report.StripeSectorCountWrong+" ") {
					stripes = append(stripes, o)
				} else if d, ok := strings.CutPrefix(o, "derived "); ok {
					derived = append(derived, d)
				} else if a, ok := strings.CutPrefix(o, "acct "); ok {
					acct = append(acct, a)
				} else {
					t.Errorf("other finding: %s", o)
				}
			}
			diff(t, "stripe findings", stripes, expectedStripes(t, name), nil)
			diff(t, "allocator findings (lru, freespace, need_discard, bucket_gens)", derived, expectedDerived(t, name), nil)
			diff(t, "accounting findings", acct, expectedAccounting(t, name, res.NotChecked), nil)
			t.Logf("%d findings (%d bp, %d alloc); %d passes, %d shards; stats %+v", len(res.Findings), len(bps), len(allocs), res.Passes, res.Shards, res.Stats)
		})
	}
}

// TestSameFindingsAnyLayout runs the corrupt cases with 1, 2 and 8 workers
// and with budgets that force many passes: findings must be identical.
func TestSameFindingsAnyLayout(t *testing.T) {
	casedata.Require(t)
	for _, name := range []string{"corrupt-mixed", "a-corrupt-mixed", "corrupt-missing-alloc", "many-extents"} {
		t.Run(name, func(t *testing.T) {
			base := runCase(t, name, pipeline.Options{Workers: 1})
			want := render(base)
			for _, opt := range []pipeline.Options{
				{Workers: 2},
				{Workers: 8},
				{Workers: 8, Shards: 5},
				{Workers: 2, Prefetch: 8},
				{Workers: 2, Prefetch: 8, Async: true, AsyncBackend: aio.IOUring},
				{Workers: 2, Prefetch: 3, Async: true, AsyncBackend: aio.PreadPool, MemoryBudget: base.EstimatedBytes / 5},
				{Workers: 1, Prefetch: 1, MemoryBudget: base.EstimatedBytes / 5},
				{Workers: 2, MemoryBudget: base.EstimatedBytes / 6},
				{Workers: 3, MemoryBudget: base.EstimatedBytes / 9, Shards: 3},
				{Workers: 2, Exact: true},
				{Workers: 3, MemoryBudget: base.EstimatedBytes / 9, Shards: 3, Exact: true},
			} {
				res := runCase(t, name, opt)
				if m := hugemem.Mapped(); m != 0 {
					t.Errorf("options %+v: %d bytes of shard arrays still mapped after the check", opt, m)
				}
				if got := render(res); got != want {
					t.Errorf("options %+v: findings differ from 1 worker:\n got: %s\nwant: %s", opt, got, want)
				}
				if opt.MemoryBudget != 0 && res.Passes < 4 {
					t.Errorf("options %+v: %d passes, want at least 4 (estimate %d bytes)", opt, res.Passes, base.EstimatedBytes)
				}
				t.Logf("options %+v: %d passes, %d shards, %d findings", opt, res.Passes, res.Shards, len(res.Findings))
			}
		})
	}
}

// TestDigestLikeExact checks every case with digest matching (the
// default, its recheck whole and cut into parts) and with Options.Exact:
// the findings, errors and counts must be the same, and a case whose
// exact check finds no backpointer problem must need no recheck.
func TestDigestLikeExact(t *testing.T) {
	casedata.Require(t)
	for _, name := range casedata.Cases(t) {
		t.Run(name, func(t *testing.T) {
			exact := runCase(t, name, pipeline.Options{Workers: 2, Exact: true})
			res := runCase(t, name, pipeline.Options{Workers: 2})
			if exact.Matching != "exact" || res.Matching != "digest" {
				t.Fatalf("matching %q and %q, want exact and digest", exact.Matching, res.Matching)
			}
			if got, want := render(res), render(exact); got != want {
				t.Errorf("digest findings differ from exact ones:\n got: %s\nwant: %s", got, want)
			}
			if len(res.Errors) != len(exact.Errors) {
				t.Errorf("%d errors, exact %d", len(res.Errors), len(exact.Errors))
			}
			g, w := res.Stats, exact.Stats
			g.LoadNodes, g.LoadBytes, g.Rechecked, g.RecheckWalks, g.RecheckLeaves = w.LoadNodes, w.LoadBytes, w.Rechecked, w.RecheckWalks, w.RecheckLeaves
			if g != w {
				t.Errorf("stats %+v, exact %+v", res.Stats, exact.Stats)
			}
			// The recheck cut into a part per group of buckets (as when
			// the bad buckets' backpointers would not fit the budget at
			// once) must find the same.
			restore := pipeline.SetRecheckLimit(1)
			parts := runCase(t, name, pipeline.Options{Workers: 2})
			restore()
			if got, want := render(parts), render(exact); got != want {
				t.Errorf("digest findings with the recheck in parts differ from exact ones:\n got: %s\nwant: %s", got, want)
			}
			if len(parts.Errors) != len(exact.Errors) {
				t.Errorf("recheck in parts: %d errors, exact %d", len(parts.Errors), len(exact.Errors))
			}
			bps, _, _ := split(exact)
			if len(bps) == 0 && res.Stats.Rechecked != 0 {
				t.Errorf("no backpointer finding, yet %d buckets rechecked", res.Stats.Rechecked)
			}
			t.Logf("%d findings, %d backpointer ones; %d buckets rechecked", len(res.Findings), len(bps), res.Stats.Rechecked)
		})
	}
}

func render(res *pipeline.Result) string {
	var b strings.Builder
	for i := range res.Findings {
		report.WriteText(&b, &res.Findings[i])
	}
	return b.String()
}

// TestSyzkaller2024 checks the eight syzkaller images written by a 2024
// kernel: the 2024 fsck found 6 missing btree-root backpointers in each.
func TestSyzkaller2024(t *testing.T) {
	dir := casedata.Require(t)
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("syz2024_%d", i)
		t.Run(name, func(t *testing.T) {
			img := casedata.Image(t, dir+"/found/"+name+".img.zst")
			e := casedata.LoadExpect(t, dir+"/found/"+name+".expect.json")
			fs, err := btreeio.Open([]string{img})
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			if err := fs.LoadRoots(); err != nil {
				t.Fatal(err)
			}
			res, err := pipeline.Run(context.Background(), fs, pipeline.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range res.Errors {
				t.Errorf("read error: %v", err)
			}
			bps, _, _ := split(res)
			var want []string
			for _, f := range e.Findings {
				want = append(want, bpKey(f.Code, f.BP, f.Btree, f.Level, f.Pos))
			}
			diff(t, "findings", bps, want, nil)
			if len(want) != 6 {
				t.Errorf("expect file lists %d findings, README says 6", len(want))
			}
		})
	}
}

// TestDirectSameFindings reads the btree nodes with O_DIRECT (synchronous
// and io_uring paths) and expects the findings of buffered reads.
func TestDirectSameFindings(t *testing.T) {
	casedata.Require(t)
	for _, name := range []string{"corrupt-mixed", "a-corrupt-mixed"} {
		t.Run(name, func(t *testing.T) {
			want := render(runCase(t, name, pipeline.Options{Workers: 2}))
			for _, opt := range []pipeline.Options{
				{Workers: 2},
				{Workers: 2, Prefetch: 4, Async: true, AsyncBackend: aio.Auto},
			} {
				fs, err := btreeio.Open(casedata.CaseImages(t, name))
				if err != nil {
					t.Fatal(err)
				}
				if err := fs.EnableDirect(false); err != nil {
					fs.Close()
					t.Skipf("O_DIRECT not available where the test images are: %v", err)
				}
				if err := fs.LoadRoots(); err != nil {
					t.Fatal(err)
				}
				res, err := pipeline.Run(context.Background(), fs, opt)
				if err != nil {
					t.Fatal(err)
				}
				direct, fallback := fs.DirectReads()
				fs.Close()
				if got := render(res); got != want {
					t.Errorf("O_DIRECT, options %+v: findings differ from buffered reads:\n got: %s\nwant: %s", opt, got, want)
				}
				if opt.Prefetch == 0 && direct == 0 && fallback == 0 {
					t.Errorf("O_DIRECT, options %+v: no node read went through the direct path", opt)
				}
				t.Logf("options %+v: %d direct node reads, %d fell back to buffered", opt, direct, fallback)
			}
		})
	}
}

// TestUpgradeLeftovers: on the real upgraded filesystems, the findings the
// upgrade left behind are marked as such: every extent backpointer of
// a-two-dev upgraded 1.9 -> 1.28 by v1.25.3 keeps the pre-1.14 layout, and
// every one of the 1.36 erasure-coded filesystem upgraded to 1.39 by
// v1.39.2 lacks the 1.37 flags. A leftover shows as a pair at one position
// (the stored value, and the value the pointer wants there); the damage
// done after the upgrade (a deleted backpointer, the orphaned backpointer
// of a deleted extent) shows as one half alone and is not marked, and
// neither are the node backpointers the v1.25.3 upgrade's root rewrite
// left behind.
func TestUpgradeLeftovers(t *testing.T) {
	casedata.Require(t)
	for _, tc := range []struct {
		name string
		kind string
	}{
		{"v128-up-a-two-dev", report.LeftoverLayout114},
		{"v139-up-ec", report.LeftoverECFlags137},
		{"v139-up-ec-corrupt", report.LeftoverECFlags137},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCase(t, tc.name, pipeline.Options{})
			halves := map[string]int{}
			for _, f := range res.Findings {
				if f.Level == 0 && bpCodes[f.Code] {
					halves[f.BP.String()]++
				}
			}
			marked := 0
			for _, f := range res.Findings {
				pair := f.Level == 0 && halves[f.BP.String()] == 2
				switch {
				case pair && f.Leftover != tc.kind:
					t.Errorf("a pair not marked %q: %s %s", tc.kind, f.Code, f.BP)
				case !pair && f.Leftover != "":
					t.Errorf("marked %q alone: %s %s (level %d)", f.Leftover, f.Code, f.BP, f.Level)
				case f.Leftover != "":
					marked++
				}
			}
			if marked == 0 {
				t.Error("nothing marked")
			}
			t.Logf("%d of %d findings marked %q", marked, len(res.Findings), tc.kind)
		})
	}
}
