#!/usr/bin/env python3
"""Turn the output of a real `bcachefs fsck` (v1.25.x, v1.31.x, v1.33.x, v1.35.x, v1.36.x,
v1.39.x) into expect.json.

    fsck2expect.py FSCK_TXT --case NAME --command "bcachefs fsck -n ..." \
        [--errors ERRORS_TXT] [--repair FSCK_REPAIR_TXT] [-o expect.json]

The output has the layout of the shared testdata expect.json (read by
internal/casedata/expect.go and pipeline/pipeline_test.go):

  findings  the backpointer findings in text order: code, bp, bucket, btree, level, pos,
            pass, then key_type/key_pos (missing backpointer: the key printed after "for:")
            or target_type/target_pos (backpointer doesn't match: the first key printed
            after the message line), and detail (bucket_offset, data_type, bp_len, gen).
            The backpointer fields come from the "want:" backpointer (missing backpointer),
            the found backpointer (doesn't match: the line after "found:", or in v1.25,
            v1.31, v1.33 and v1.35, which print the backpointer before the key, the first
            backpointer line) or the printed backpointer (missing alloc key / device). U32_MAX,
            U64_MAX, SPOS_MAX, POS_MAX, POS_MIN are expanded to numbers.
  counts    findings per code, in order of first appearance
  other     every other message: pass, code guessed from the text (None when unknown),
            first_line
  other_counts, errors_txt_counts (from errors.txt), consistency_check

How the text is split into messages (the conventions of the shared files):
  * a line "PASS...REST" starts pass PASS; REST (if any, and not " done (N seconds)" or
    a progress line) is the first line of a message;
  * a line starting with whitespace continues the current message;
  * any other line starts a new message, unless it is one of the fixed log lines below
    (SKIP): version/options/recovery banners, "going read-write", "clean shutdown
    complete", "scanning for missing backpointers", "DEV: errors fixed", "DEV: still has errors",
    "error shutting down filesystem", "DEV has N btree buckets and M marked in bitmap";
  * so in v1.25 (which prints "done" without a duration) the " done" of a pass without
    messages becomes an "other" message with code None, as in the shared v128-* files.
"""
import argparse, collections, json, re, sys

SKIP = [
    re.compile(r"^Running userspace offline fsck"),
    re.compile(r"^starting version "),
    re.compile(r"^Using encoding defined by superblock"),
    re.compile(r"^recovering from "),
    re.compile(r"^journal read done"),
    re.compile(r"^Journal keys: "),
    re.compile(r"^going read-write"),
    re.compile(r"^clean shutdown complete"),
    re.compile(r"^scanning for missing backpointers"),
    re.compile(r"^\S+: errors fixed"),
    re.compile(r"^\S+: still has errors"),
    re.compile(r"^error shutting down filesystem"),
    re.compile(r"^\S+ has \S+ btree buckets and \S+ marked in bitmap"),
]
DONE_SECONDS = re.compile(r"^ done \(\d+ seconds\)$")
PASS_LINE = re.compile(r"^([a-z][a-z0-9_]*)\.\.\.(.*)$")

BP_CODES = ("ptr_to_missing_backpointer", "backpointer_to_missing_ptr",
            "backpointer_to_missing_alloc", "backpointer_to_missing_device")

# message text -> error name (the name fsck_err() counts under), for the messages seen
# in these cases; None when unknown.
OTHER_CODES = [
    (re.compile(r"^bucket \d+:\d+ data type \S+ ptr gen \d+ missing in alloc btree"), "ptr_to_missing_alloc_key"),
    (re.compile(r"^bucket \d+:\d+ gen \d+ has wrong data_type"), "alloc_key_data_type_wrong"),
    (re.compile(r"^bucket \d+:\d+ gen \d+ data type \S+ has wrong dirty_sectors"), "alloc_key_dirty_sectors_wrong"),
    (re.compile(r"^bucket \d+:\d+ gen \d+ data type \S+ has wrong cached_sectors"), "alloc_key_cached_sectors_wrong"),
    (re.compile(r"^bucket \d+:\d+ gen \d+ data type \S+ has wrong stripe_sectors"), "alloc_key_stripe_sectors_wrong"),
    (re.compile(r"^bucket \d+:\d+ gen \d+ data type \S+ has wrong stripe_refcount"), "alloc_key_stripe_refcount_wrong"),
    (re.compile(r"^bucket \d+:\d+ gen \d+ data type \S+ has wrong stripe"), "alloc_key_stripe_wrong"),
    (re.compile(r"^bucket \d+:\d+ gen \d+ data type \S+ has wrong stripe_redundancy"), "alloc_key_stripe_redundancy_wrong"),
    (re.compile(r"^accounting mismatch for "), "accounting_mismatch"),
    (re.compile(r"^missing (fragmentation )?lru entry"), "alloc_key_to_missing_lru_entry"),
    (re.compile(r"^incorrect i_sectors"), "inode_i_sectors_wrong"),
    (re.compile(r"^hole in alloc btree missing in freespace btree"), "freespace_hole_missing"),
    (re.compile(r"^stripe block \d+ has wrong sector count"), "stripe_sector_count_wrong"),
    (re.compile(r"^pointer to nonexistent stripe"), "ptr_to_missing_stripe"),
    (re.compile(r"^pointer does not match stripe"), "ptr_to_incorrect_stripe"),
]

SPECIAL = {
    "SPOS_MAX": "18446744073709551615:18446744073709551615:4294967295",
    "POS_MAX": "18446744073709551615:18446744073709551615:0",
    "POS_MIN": "0:0:0",
}


def expand_pos(p):
    if p in SPECIAL:
        return SPECIAL[p]
    return ":".join({"U32_MAX": "4294967295", "U64_MAX": "18446744073709551615"}.get(x, x)
                    for x in p.split(":"))


KEY_HEAD = re.compile(r"u64s \d+ type (\S+) (\S+?)(?: len|,|$)")


def key_type_pos(text):
    m = KEY_HEAD.search(text)
    if not m:
        return None, None
    return m.group(1), expand_pos(m.group(2).rstrip(","))


BP_FIELDS = re.compile(
    r"type backpointer (\S+) .*?(?:bucket=(\d+):(\d+):(\d+)|sector=(\d+):(\d+)) btree=(\S+) level=(\d+)"
    r"(?: data_type=(\S+))?(?: suboffset=(\d+))?(?: len=(\d+))?(?: gen=(\d+))? pos=([^\s,]+)")


# format A (metadata <= 1.13: v1.9.4, v1.13.0): "bucket=D:B:0 btree=X l=L offset=SECTORS:SUB len=N pos=P";
# the value has no data type (a leaf backpointer points at user data, an interior one at a btree node)
BP_FIELDS_A = re.compile(
    r"type backpointer (\S+) .*?bucket=(\d+):(\d+):\d+ btree=(\S+) l=(\d+) offset=(\d+):(\d+) len=(\d+) pos=([^\s,]+)")


def parse_bp(text):
    """Fields of a backpointer key printed on one line, None if it is none."""
    m = BP_FIELDS.search(text)
    if not m:
        a = BP_FIELDS_A.search(text)
        if not a:
            return None
        level = int(a.group(5))
        return {"bp": a.group(1), "bucket": "%s:%s" % (a.group(2), a.group(3)), "btree": a.group(4),
                "level": level, "pos": expand_pos(a.group(9)),
                "detail": {"bucket_offset": int(a.group(6)), "suboffset": int(a.group(7)),
                           "data_type": "user" if level == 0 else "btree", "bp_len": int(a.group(8))}}
    f = {"bp": m.group(1)}
    if m.group(2) is not None:
        f["bucket"] = "%s:%s" % (m.group(2), m.group(3))
        bucket_offset = int(m.group(4))
    else:
        f["bucket"] = None
        bucket_offset = None
    f["btree"] = m.group(7)
    f["level"] = int(m.group(8))
    f["pos"] = expand_pos(m.group(13))
    d = {}
    if bucket_offset is not None:
        d["bucket_offset"] = bucket_offset
    if m.group(9) is not None:
        d["data_type"] = m.group(9)
    if m.group(11) is not None:
        d["bp_len"] = int(m.group(11))
    if m.group(12) is not None:
        d["gen"] = int(m.group(12))
    f["detail"] = d
    return f


def split_messages(text):
    """[(pass, [lines])] in text order."""
    msgs, cur, pas = [], None, None
    for line in text.split("\n"):
        if line == "":
            continue
        m = PASS_LINE.match(line)
        if m:
            pas = m.group(1)
            rest = m.group(2)
            cur = None
            if rest and not DONE_SECONDS.match(rest) and not any(s.match(rest) for s in SKIP):
                cur = [rest]
                msgs.append((pas, cur))
            continue
        if line[0] in " \t":
            if cur is not None:
                cur.append(line)
            continue
        if any(s.match(line) for s in SKIP):
            cur = None
            continue
        cur = [line]
        msgs.append((pas, cur))
    return msgs


def strip_prefix(line, prefix):
    s = line.strip()
    return s[len(prefix):].strip() if s.startswith(prefix) else None


def finding(pas, lines):
    first = lines[0]
    body = lines[1:]
    if first.startswith("missing backpointer"):
        want = next((strip_prefix(l, "want:") for l in body if l.strip().startswith("want:")), None)
        forl = next((strip_prefix(l, "for:") for l in body if l.strip().startswith("for:")), None)
        bp = parse_bp(want or "")
        if not bp:
            return None
        f = {"code": "ptr_to_missing_backpointer"}
        f.update({k: bp[k] for k in ("bp", "bucket", "btree", "level", "pos")})
        f["pass"] = pas
        kt, kp = key_type_pos(forl or "")
        f["key_type"], f["key_pos"] = kt, kp
        f["detail"] = bp["detail"]
        return f
    # v1.9.4 / v1.13.0 (format A): "backpointer for missing extent" (or btree node) + the backpointer
    if first.startswith("backpointer for missing extent") or first.startswith("backpointer for missing btree node"):
        bp = next((b for b in (parse_bp(l) for l in body) if b), None)
        if not bp:
            return None
        f = {"code": "backpointer_to_missing_ptr"}
        f.update({k: bp[k] for k in ("bp", "bucket", "btree", "level", "pos")})
        f["pass"] = pas
        f["detail"] = bp["detail"]
        return f
    if first.startswith("backpointer doesn't match"):
        target = body[0].strip() if body else ""
        bp = None
        for l in body:
            s = l.strip()
            if s.startswith("found:"):
                s = s[len("found:"):].strip()
            elif s.startswith("want:"):
                continue
            bp = parse_bp(s)
            if bp:
                break
        if not bp:
            return None
        f = {"code": "backpointer_to_missing_ptr"}
        f.update({k: bp[k] for k in ("bp", "bucket", "btree", "level", "pos")})
        f["pass"] = pas
        tt, tp = key_type_pos(target)
        f["target_type"], f["target_pos"] = tt, tp
        f["detail"] = bp["detail"]
        return f
    for prefix, code in (("backpointer for nonexistent alloc key", "backpointer_to_missing_alloc"),
                         ("backpointer for missing device", "backpointer_to_missing_device")):
        if first.startswith(prefix):
            bp = None
            for l in [first] + body:
                bp = parse_bp(l)
                if bp:
                    break
            if not bp:
                return None
            f = {"code": code}
            f.update({k: bp[k] for k in ("bp", "bucket", "btree", "level", "pos")})
            if f["bucket"] is None:
                m = re.search(r"alloc key: (\d+):(\d+):", first)
                f["bucket"] = "%s:%s" % (m.group(1), m.group(2)) if m else bp["bp"].rsplit(":", 2)[0]
            f["pass"] = pas
            f["detail"] = bp["detail"]
            return f
    return None


def other_code(first):
    for rx, code in OTHER_CODES:
        if rx.search(first):
            return code
    return None


def parse(text):
    findings, other = [], []
    msgs = split_messages(text)
    # v1.13.0 prints "backpointer for nonexistent alloc key: D:B:0" and the backpointer on the
    # next line without indent: join them into one message
    joined = []
    for pas, lines in msgs:
        if joined and joined[-1][1][0].startswith("backpointer for nonexistent alloc key") and \
                len(joined[-1][1]) == 1 and lines[0].startswith("u64s ") and " type backpointer " in lines[0]:
            joined[-1] = (joined[-1][0], joined[-1][1] + lines)
            continue
        joined.append((pas, lines))
    for pas, lines in joined:
        f = finding(pas, lines)
        if f:
            findings.append(f)
        else:
            other.append({"pass": pas, "code": other_code(lines[0]), "first_line": lines[0]})
    return findings, other


def count(items, key):
    c = collections.OrderedDict()
    for it in items:
        k = it[key] if it[key] is not None else "None"
        c[k] = c.get(k, 0) + 1
    return dict(c)


def parse_errors_txt(text):
    out = collections.OrderedDict()
    for line in text.split("\n"):
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r"^(\S+)\s+(\d+)\b", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return dict(out)


def build(name, fsck_text, command, errors_text=None, repair_text=None):
    findings, other = parse(fsck_text)
    counts = count(findings, "code")
    e = collections.OrderedDict()
    e["case"] = name
    e["source"] = "fsck.txt (%s)" % command
    e["findings"] = findings
    e["counts"] = counts
    e["other"] = other
    e["other_counts"] = count(other, "code")
    if errors_text is not None:
        et = parse_errors_txt(errors_text)
        e["errors_txt_counts"] = et
        rep = count(parse(repair_text)[0], "code") if repair_text is not None else {}
        ok, notes = True, []
        for code, n in counts.items():
            m = et.get(code, 0)
            if m < n:
                ok = False
                notes.append("%s: expect %d vs errors.txt %d" % (code, n, m))
            elif m > n:
                notes.append("%s: expect %d < errors.txt %d (sb counter also counts transaction-restart "
                             "repeats of the same message; repair run printed %d)" % (code, n, m, rep.get(code, 0)))
        e["consistency_check"] = {"ok": ok, "notes": notes}
    return e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fsck_txt")
    ap.add_argument("--case", required=True)
    ap.add_argument("--command", required=True, help="the fsck command without the device names")
    ap.add_argument("--errors")
    ap.add_argument("--repair")
    ap.add_argument("-o", "--out")
    a = ap.parse_args()
    rd = lambda p: open(p, errors="replace").read() if p else None
    e = build(a.case, rd(a.fsck_txt), a.command, rd(a.errors), rd(a.repair))
    s = json.dumps(e, indent=1) + "\n"
    if a.out:
        open(a.out, "w").write(s)
    else:
        sys.stdout.write(s)


if __name__ == "__main__":
    main()
