#!/usr/bin/env python3
"""Check fsck2expect.py against the shared expect.json files (made by another converter).

    check_converter.py [TESTDATA_DIR]      (default /work/shared/testdata)

For every case of cases/ (v1.36.1, not the a-* ones of v1.9.4), versions/ (v1.25.3, v1.39.2)
and encrypted/: parses its fsck.txt (+ errors.txt, fsck_repair.txt), and compares with its
expect.json: the fields the Go tests use (findings: code, bp, bucket, btree, level, pos;
counts; other: pass, code, first_line; other_counts) and then every field. Prints one line
per case and each difference; exit 1 if a used field differs.
"""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsck2expect

root = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/testdata"
bad = 0
for group in ("cases", "versions", "encrypted"):
    gd = os.path.join(root, group)
    for name in sorted(os.listdir(gd)):
        d = os.path.join(gd, name)
        if name.startswith("a-") or not os.path.isfile(os.path.join(d, "fsck.txt")):
            continue
        want = json.load(open(os.path.join(d, "expect.json")))
        case = json.load(open(os.path.join(d, "case.json")))
        cmd = " ".join(w for w in case["fsck_command"].split() if not w.endswith(".img"))
        rd = lambda f: open(os.path.join(d, f), errors="replace").read() if os.path.exists(os.path.join(d, f)) else None
        got = fsck2expect.build(name, rd("fsck.txt"), cmd, rd("errors.txt"), rd("fsck_repair.txt"))
        got = json.loads(json.dumps(got))
        used = []
        key = lambda f: (f["code"], f["bp"], f["bucket"], f["btree"], f["level"], f["pos"])
        if sorted(map(key, got["findings"])) != sorted(map(key, want["findings"])):
            used.append("findings (used fields): got %s want %s" % (
                sorted(set(map(key, got["findings"])) ^ set(map(key, want["findings"]))), ""))
        if got["counts"] != want["counts"]:
            used.append("counts: got %s want %s" % (got["counts"], want["counts"]))
        okey = lambda o: (o["pass"], o["code"], o["first_line"])
        if list(map(okey, got["other"])) != list(map(okey, want.get("other", []))):
            g, w = list(map(okey, got["other"])), list(map(okey, want.get("other", [])))
            used.append("other: %d vs %d; first difference: %s" % (len(g), len(w), next(
                ((a, b) for a, b in zip(g, w) if a != b), (g[len(w):][:1], w[len(g):][:1]))))
        if got["other_counts"] != want.get("other_counts"):
            used.append("other_counts: got %s want %s" % (got["other_counts"], want.get("other_counts")))
        full = []
        for k in want:
            if got.get(k) != want[k]:
                full.append(k)
        status = "USED-FIELDS-DIFFER" if used else ("identical" if not full else "used fields identical; other differences in: " + ", ".join(full))
        print("%-10s %-24s %s" % (group, name, status))
        for u in used:
            print("    " + u)
        if full and not used:
            for k in full:
                if k == "findings":
                    for a, b in zip(got["findings"], want["findings"]):
                        if a != b:
                            print("    findings: got  %s\n              want %s" % (json.dumps(a), json.dumps(b)))
                else:
                    print("    %s: got %s\n        want %s" % (k, json.dumps(got.get(k))[:300], json.dumps(want[k])[:300]))
        bad += bool(used)
sys.exit(1 if bad else 0)
