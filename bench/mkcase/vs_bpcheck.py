#!/usr/bin/env python3
"""Compare `bpcheck check --json` with a case's expect.json, as pipeline_test.go does.

    vs_bpcheck.py [--bpcheck PATH] CASE_DIR...

Expected = the backpointer findings of expect.json (code, bp, btree, level, pos) plus one
ptr_to_missing_backpointer for every corruption step with only_bp_of_bucket_expected_silent,
and the check_allocations findings of expect.json "other" that bpcheck also reports
(code + dev:bucket). Prints missing / unexpected findings per case; exit 1 on any.
"""
import argparse, json, os, re, subprocess, sys, tempfile

BP = {"ptr_to_missing_backpointer", "backpointer_to_missing_ptr", "backpointer_to_missing_alloc",
      "backpointer_to_missing_device"}
ALLOC = {"ptr_to_missing_alloc_key", "alloc_key_dirty_sectors_wrong", "alloc_key_cached_sectors_wrong",
         "alloc_key_stripe_sectors_wrong", "alloc_key_data_type_wrong"}


def key(code, bp, btree, level, pos):
    return "%s bp=%s btree=%s level=%d pos=%s" % (code, bp, btree, level, pos)


def expected(d):
    e = json.load(open(os.path.join(d, "expect.json")))
    c = json.load(open(os.path.join(d, "case.json")))
    want = [key(f["code"], f["bp"], f["btree"], f["level"], f["pos"]) for f in e["findings"] if f["code"] in BP]
    for s in c.get("corruption_steps", []):
        if s.get("only_bp_of_bucket_expected_silent"):
            m = re.search(r"-b backpointers -p (\S+)", s["cmd"])
            want.append(key("ptr_to_missing_backpointer", m.group(1), s["target_btree"], s["level"], s["target_pos"]))
    alloc = []
    for o in e.get("other", []):
        if o["code"] in ALLOC:
            m = re.match(r"^bucket (\d+):(\d+) ", o["first_line"])
            alloc.append("%s %s:%s" % (o["code"], m.group(1), m.group(2)))
    return sorted(want), sorted(alloc), c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bpcheck", default=os.environ.get("BPCHECK", "bpcheck"), help="bpcheck binary (default $BPCHECK or bpcheck in PATH)")
    ap.add_argument("cases", nargs="+")
    a = ap.parse_args()
    bad = 0
    for d in a.cases:
        want, walloc, c = expected(d)
        with tempfile.TemporaryDirectory(prefix="vsbp-") as t:
            devs = []
            for f in c["image_files"]:
                out = os.path.join(t, f[:-4])
                subprocess.run(["zstd", "-q", "-d", "--long=27", os.path.join(d, f), "-o", out], check=True)
                devs.append(out)
            pp = os.path.join(d, "passphrase.txt")   # encrypted cases (enc-*)
            pf = ["--passphrase-file", pp] if os.path.exists(pp) else []
            p = subprocess.run([a.bpcheck, "check", "--json"] + pf + devs, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        got, galloc, other, summ = [], [], [], None
        for line in p.stdout.decode().split("\n"):
            if not line.strip():
                continue
            j = json.loads(line)
            if j.get("message_type") == "summary":
                summ = j
                continue
            if j.get("message_type") != "finding":
                continue
            if j["code"] in BP:
                got.append(key(j["code"], j["bp"], j["btree"], j["level"], j["pos"]))
            elif j["code"] in ALLOC:
                galloc.append("%s %d:%d" % (j["code"], j["dev"], j["bucket"]))
            else:
                other.append("%s %s" % (j["code"], j.get("detail", "")))
        miss = [x for x in want if x not in got]
        extra = [x for x in got if x not in want]
        amiss = [x for x in walloc if x not in galloc]
        aextra = [x for x in galloc if x not in walloc]
        ok = not (miss or extra or amiss or aextra or other)
        bad += not ok
        print("%-24s bpcheck exit %d: %d bp findings (want %d), %d alloc (want %d), %d other%s" % (
            os.path.basename(d.rstrip("/")), p.returncode, len(got), len(want), len(galloc), len(walloc),
            len(other), "  OK" if ok else "  DIFFERENT"))
        if p.stderr.strip():
            print("   stderr: " + p.stderr.decode().strip().replace("\n", "\n           "))
        for x in miss:
            print("   missing:    " + x)
        for x in extra:
            print("   unexpected: " + x)
        for x in amiss:
            print("   alloc missing:    " + x)
        for x in aextra:
            print("   alloc unexpected: " + x)
        for x in other:
            print("   other finding: " + x)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
