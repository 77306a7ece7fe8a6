#!/usr/bin/env python3
"""Make real test cases with the upstream bcachefs-tools builds of /work/realtools.

    mkcase.py [--out DIR] [--work DIR] [--keep] CASE...      (or: mkcase.py --list)

Each case (see CASES below) is one filesystem made, damaged and judged by the real tools
of one version, written to OUT/CASE/ in the layout of the shared testdata (README there):
dev*.img.zst, case.json, fsck.txt, fsck_repair.txt, errors.txt, expect.json, truth.json,
list/*.txt.zst, and for upgraded cases upgrade.txt. The tools:

  v1.11.0   /work/realtools/v1.11.0/bcachefs   (metadata 1.11: disk_accounting_inum; reports itself
            as 1.9.5; the same options and fsck getopt string as v1.13.0)
  v1.13.0   /work/realtools/v1.13.0/bcachefs   (metadata 1.13: inode_has_child_snapshots; format A;
            reports itself as 1.12.0; no copygc_enabled/rebalance_enabled options)
  v1.20.0   /work/realtools/v1.20.0/bcachefs   (metadata 1.20: directory_size)
  v1.25.3   /work/realtools/v1.25.3/bcachefs   (metadata 1.28; reports itself as 1.25.2)
  v1.31.13  /work/realtools/v1.31.13/bcachefs  (metadata 1.31: btree_node_accounting)
  v1.33.4   /work/realtools/v1.33.4/bcachefs   (metadata 1.33: reconcile)
  v1.35.2   /work/realtools/v1.35.2/bcachefs   (metadata 1.35: bucket_stripe_index)
  v1.36.1   /work/realtools/v1.36.1/bcachefs   (metadata 1.36)
  v1.36.1-ec /work/realtools/v1.36.1-ec/bcachefs: the same v1.36.1 library compiled with
            CONFIG_BCACHEFS_ERASURE_CODING (build_ec.sh); only used to run reconcile so that
            erasure-coded stripes get written. Never a judge.
  v1.37.5   /work/realtools/v1.37.5/bcachefs   (metadata 1.37: erasure_coding; C front end, no
            format --source: its cases are formatted and populated by v1.36.1 (format_with), then
            upgraded to 1.37 by v1.37.5 fsck -y -o version_upgrade=incompatible)
  v1.38.8   /work/realtools/v1.38.8/bcachefs   (metadata 1.38: need_discard_by_journal_seq; the same)
  v1.39.2   /work/realtools/v1.39.2/bcachefs   (metadata 1.39)

plus two subcommands of ours in those C front ends (mains/delkey.c, mains/reconcile_run.c):
`delete-key [-T] [-U] -b BTREE -p POS DEVS` deletes exactly one key in a transaction with
triggers off (BTREE_TRIGGER_norun; -T: with triggers; -U: SIGKILL 3 s after the journal
flush, before any shutdown) and prints it; `reconcile-run DEVS` lets the library's reconcile
thread finish its work offline.

Steps of a case: base (format --source of a deterministic tree from gen_tree.py, or copy of
another case's images, or of a shared case's) -> prep (reconcile-run, upgrade by fsck -y -o
version_upgrade=incompatible) -> corruption ops (keys picked with a seeded RNG from `list`
dumps, each deleted by one delete-key run, steps recorded) -> list dumps, key counts,
superblock facts -> fsck -n on a copy (fsck.txt), fsck -y on another copy (fsck_repair.txt,
errors.txt from show-super -f errors, second fsck -n), truth.json (backpointers listed
before and after a fsck -y with copygc/rebalance/reconcile off) -> expect.json
(fsck2expect.py) -> case.json.
"""
import argparse, collections, json, os, random, re, shutil, struct, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fsck2expect  # noqa: E402

RT = "/work/realtools"
TOOLS = {v: "%s/%s/bcachefs" % (RT, v)
         for v in ("v1.11.0", "v1.13.0", "v1.20.0", "v1.25.3", "v1.31.13", "v1.33.4", "v1.35.2", "v1.36.1", "v1.36.1-ec", "v1.37.5",
                   "v1.38.8", "v1.39.2")}
TOOL_NAME = {"v1.11.0": "bcachefs-tools v1.11.0", "v1.13.0": "bcachefs-tools v1.13.0", "v1.20.0": "bcachefs-tools v1.20.0",
             "v1.25.3": "bcachefs-tools 1.25.2", "v1.31.13": "bcachefs-tools v1.31.13",
             "v1.33.4": "bcachefs-tools v1.33.4", "v1.35.2": "bcachefs-tools v1.35.2",
             "v1.36.1": "bcachefs-tools v1.36.1", "v1.37.5": "bcachefs-tools v1.37.5",
             "v1.38.8": "bcachefs-tools v1.38.8", "v1.39.2": "bcachefs-tools v1.39.2"}
SHARED = "/work/shared/testdata"
REPAIR_TIMEOUT = 240
UPGRADE_TIMEOUT = 180

BTREES = {
    "v1.25.3": "extents inodes dirents xattrs alloc quotas stripes reflink subvolumes snapshots lru "
               "freespace need_discard backpointers bucket_gens snapshot_trees deleted_inodes logged_ops "
               "rebalance_work subvolume_children accounting".split(),
    "v1.36.1": "extents inodes dirents xattrs alloc quotas stripes reflink subvolumes snapshots lru "
               "freespace need_discard backpointers bucket_gens snapshot_trees deleted_inodes logged_ops "
               "reconcile_work subvolume_children accounting reconcile_hipri reconcile_pending "
               "reconcile_scan reconcile_work_phys reconcile_hipri_phys bucket_to_stripe".split(),
}
BTREES["v1.39.2"] = BTREES["v1.36.1"] + ["stripe_backpointers", "damage"]
# v1.37.5 and v1.38.8: stripe_backpointers (28) but not yet damage
BTREES["v1.37.5"] = BTREES["v1.38.8"] = BTREES["v1.36.1"] + ["stripe_backpointers"]
# v1.33.4: the btrees of v1.36.1 up to reconcile_hipri_phys (25); bucket_to_stripe (26) came later
BTREES["v1.33.4"] = [b for b in BTREES["v1.36.1"] if b != "bucket_to_stripe"]
# v1.31.13: the btrees of v1.25.3 (rebalance_work, not yet reconcile_*); v1.35.2: those of v1.36.1
BTREES["v1.31.13"] = BTREES["v1.25.3"]
BTREES["v1.35.2"] = BTREES["v1.36.1"]
# v1.11.0, v1.13.0 and v1.20.0: the same btrees as v1.25.3
BTREES["v1.11.0"] = BTREES["v1.13.0"] = BTREES["v1.20.0"] = BTREES["v1.25.3"]
# the tools whose rebalance option is still called rebalance_enabled (reconcile_enabled from 1.33)
REBALANCE_ENABLED_OPT = ("v1.20.0", "v1.25.3", "v1.31.13")
# the tools with neither copygc_enabled nor rebalance_enabled options (v1.11.0, v1.13.0: copygc is
# on by default and rebalance only has work when something asks for it)
NO_QUIET_OPTS = ("v1.11.0", "v1.13.0")
# the tools whose `list` shows an unclean filesystem without the journal's keys (their recovery
# without replay drops them at its end)
NO_LIST_JOURNAL_OVERLAY = ("v1.11.0", "v1.13.0", "v1.20.0")
KEY_COUNTS_NOTE_NO_OVERLAY = ("bcachefs list -b BTREE (leaf keys, level 0) of the final images; list opens with "
                              "norecovery and this tool then drops the journal's keys: an unclean image's keys as "
                              "the btree nodes hold them")


def fsck_cmd(ver, mode):
    # from v1.38.5 fsck leaves its `fsck` option out when an -o names recovery_passes (that
    # alone would run only the named pass): given back explicitly
    o = "fsck,recovery_passes=check_backpointers_to_extents" if ver in ("v1.38.8", "v1.39.2") \
        else "recovery_passes=check_backpointers_to_extents"
    # v1.11.0's and v1.13.0's getopt string lacks the short -K (their longopts have --no-kernel):
    # a -K would be refused on stderr ("invalid option") and ignored
    return ["fsck", mode, "--no-kernel" if ver in ("v1.11.0", "v1.13.0") else "-K", "-o", o]


# ---------------------------------------------------------------------------------------
# the cases

CASES = collections.OrderedDict()

CASES["v128-three-dev"] = dict(
    tool="v1.25.3", devs=3, size_mib=64, fmt=["--replicas=2"],
    tree=dict(seed=1281, files=400, large=1), ops=[],
    what="3 devices, --replicas=2, clean")
CASES["v128-lz4"] = dict(
    tool="v1.25.3", devs=1, size_mib=64,
    fmt=["--compression=lz4", "--metadata_checksum=crc64", "--data_checksum=xxhash"],
    tree=dict(seed=1282, files=400, large=1), ops=[],
    what="lz4 compression, crc64 metadata and xxhash data checksums, clean")
CASES["v128-corrupt-bp"] = dict(
    tool="v1.25.3", devs=1, size_mib=64, fmt=["--encoded_extent_max=256k"],
    tree=dict(seed=1283, files=300, large=4), seed=1293,
    ops=[("bp_user", 4), ("bp_user_only", 2), ("bp_user_empty_bucket", 1), ("bp_btree", 1)],
    what="user backpointers deleted (4 in buckets with others, 2 that were the only one of "
         "their bucket, all 2-3 of one bucket), one btree-node backpointer deleted; "
         "--encoded_extent_max=256k so that large files give buckets with a single extent")
CASES["v128-corrupt-extent"] = dict(
    tool="v1.25.3", devs=2, size_mib=64, fmt=["--replicas=2"],
    tree=dict(seed=1284, files=300, large=1), seed=1294, ops=[("extent", 4)],
    what="2 devices, --replicas=2; extents deleted without triggers")
CASES["v128-corrupt-alloc"] = dict(
    tool="v1.25.3", devs=1, size_mib=64, fmt=[],
    tree=dict(seed=1285, files=300, large=1), seed=1295, ops=[("alloc", 1), ("alloc_orphan", 1)],
    what="alloc key of a bucket with extents deleted; and alloc_orphan: an alloc key deleted "
         "together with every extent pointing into that bucket")
CASES["v128-unclean"] = dict(
    tool="v1.25.3", devs=1, size_mib=64, fmt=[],
    tree=dict(seed=1286, files=300, large=1), seed=1296, unclean=True,
    ops=[("extent_consistent", 2), ("bp_user", 2), ("extent", 1)],
    what="deletions left only in the journal: 2 extents deleted with triggers, 2 user "
         "backpointers and 1 extent deleted without; each delete-key run SIGKILLed 3 s after "
         "its journal flush, before shutdown")
def version_cases(tool, meta, seed, skip=(), notes=None, **common):
    """The six cases a release is judged on, named vXYZ-* after its metadata version meta
    ("1.33" -> v133-*): clean, two devices with backpointers, extents and an alloc key
    deleted, deletions left in the journal, silent and btree-node backpointers, deleted alloc
    keys, lz4. seed numbers them: the trees take seed..seed+5, the damage seed+11..seed+15.
    skip leaves cases out (their names without the prefix); notes maps a case to its notes;
    common (format_with, prep) goes into every case."""
    p = "v" + meta.replace(".", "")
    specs = [
        ("small", dict(devs=1, size_mib=64, fmt=[],
                       tree=dict(seed=seed, files=400, large=1), ops=[],
                       what="metadata %s (bcachefs-tools %s), 1 device, defaults, clean" % (meta, tool))),
        ("corrupt-mixed", dict(devs=2, size_mib=64, fmt=["--replicas=2"],
                               tree=dict(seed=seed + 1, files=300, large=1), seed=seed + 11,
                               ops=[("bp_user", 5), ("extent", 3), ("alloc", 1)],
                               what="metadata %s, 2 devices, --replicas=2; as the shared corrupt-mixed: 5 user "
                                    "backpointers, 3 extents and 1 alloc key of a bucket with backpointers deleted "
                                    "(no triggers)" % meta)),
        ("unclean", dict(devs=1, size_mib=64, fmt=[],
                         tree=dict(seed=seed + 2, files=300, large=1), seed=seed + 12, unclean=True,
                         ops=[("extent_consistent", 2), ("bp_user", 2), ("extent", 1)],
                         what="metadata %s; deletions left only in the journal: 2 extents deleted with triggers, "
                              "2 user backpointers and 1 extent deleted without; each delete-key run SIGKILLed "
                              "3 s after its journal flush, before shutdown" % meta)),
        ("corrupt-bp", dict(devs=1, size_mib=64, fmt=["--encoded_extent_max=256k"],
                            tree=dict(seed=seed + 4, files=300, large=4), seed=seed + 14,
                            ops=[("bp_user", 4), ("bp_user_only", 2), ("bp_user_empty_bucket", 1), ("bp_btree", 1)],
                            what="metadata %s; as v128-corrupt-bp: user backpointers deleted (4 in buckets with "
                                 "others, 2 that were the only one of their bucket, all 2-3 of one bucket), one "
                                 "btree-node backpointer deleted; --encoded_extent_max=256k so that large files give "
                                 "buckets with a single extent" % meta)),
        ("corrupt-alloc", dict(devs=1, size_mib=64, fmt=[],
                               tree=dict(seed=seed + 5, files=300, large=1), seed=seed + 15,
                               ops=[("alloc", 1), ("alloc_orphan", 1)],
                               what="metadata %s; alloc key of a bucket with extents deleted; and alloc_orphan: an "
                                    "alloc key deleted together with every extent pointing into that bucket" % meta)),
        ("lz4", dict(devs=1, size_mib=64,
                     fmt=["--compression=lz4", "--metadata_checksum=crc64", "--data_checksum=xxhash"],
                     tree=dict(seed=seed + 3, files=400, large=1), ops=[],
                     what="metadata %s; lz4 compression, crc64 metadata and xxhash data checksums, clean" % meta)),
    ]
    for kind, spec in specs:
        if kind in skip:
            continue
        c = dict(tool=tool, **common)
        c.update(spec)
        if notes and kind in notes:
            c["notes"] = notes[kind]
        CASES[p + "-" + kind] = c


version_cases("v1.33.4", "1.33", 1331, notes={"unclean": [
    "As with v1.36.1 (enc-unclean), v1.33.4 leaves the superblock marked clean (Clean: 1) after delete-key -U's "
    "SIGKILL: its bch2_write_super() also returns early until BCH_FS_may_upgrade_downgrade is set. fsck "
    "therefore prints 'recovering from clean shutdown, journal seq N', but it reads and replays the journal: "
    "list_journal -a of the final image shows each of the five deletions as an overwrite followed by a "
    "deleted key (extents 2147483768:16, 2147483772:24, 2147483699:24; backpointers 0:7725056:0, "
    "0:15007744:0)."]})
version_cases("v1.31.13", "1.31", 1311)
# v111-unclean and v111-corrupt-alloc are specified but were not made: on both, v1.11.0's fsck
# -n never ended (killed after 2-3 min at 100% CPU; gdb: check_extents -> check_i_sectors
# reporting the same inode_i_sectors_wrong again and again); v1.13.0 finishes the same kinds of case
version_cases("v1.11.0", "1.11", 1111)
version_cases("v1.13.0", "1.13", 1131)
version_cases("v1.20.0", "1.20", 1201)
version_cases("v1.35.2", "1.35", 1351)
# v1.37.5, v1.38.8: no C format --source; formatted and populated by v1.36.1 (metadata 1.36),
# upgraded by the judge's own fsck -y -o version_upgrade=incompatible before the damage
version_cases("v1.37.5", "1.37", 3701, format_with="v1.36.1", prep=[("upgrade", "v1.37.5")])
version_cases("v1.38.8", "1.38", 3801, format_with="v1.36.1", prep=[("upgrade", "v1.38.8")])
ENC_PASS = "correct horse battery"
CASES["enc-two-dev"] = dict(
    tool="v1.36.1", devs=2, size_mib=64, fmt=["--replicas=2"], passphrase=ENC_PASS,
    tree=dict(seed=1371, files=25, max_kib=2), ops=[],
    what="encrypted (format --encrypted, passphrase on stdin, populated by `populate`), 2 devices, --replicas=2, clean")
CASES["enc-unclean"] = dict(
    tool="v1.36.1", devs=1, size_mib=64, fmt=[], passphrase=ENC_PASS,
    tree=dict(seed=1372, files=36, max_kib=2), seed=1373, unclean=True,
    notes=["v1.36.1 leaves the superblock marked clean (Clean: 1) after delete-key -U's SIGKILL, unencrypted too: bch2_write_super() returns early until BCH_FS_may_upgrade_downgrade is set, so the RW session never writes the dirty flag. fsck therefore prints 'recovering from clean shutdown, journal seq N', but it reads and replays the journal, and list_journal of the final image shows the deletions there as overwrites (extent 2147483687:8, backpointers 0:448790528:0 and 0:463994880:0 of the last runs)."],
    ops=[("extent_consistent", 2), ("bp_user", 2), ("extent", 1)],
    what="encrypted, 1 device; deletions left only in the journal: 2 extents deleted with triggers, 2 user "
         "backpointers and 1 extent deleted without; each delete-key run SIGKILLed 3 s after its journal "
         "flush, before shutdown")
CASES["enc-lz4"] = dict(
    tool="v1.36.1", devs=1, size_mib=64, passphrase=ENC_PASS,
    fmt=["--compression=lz4", "--metadata_checksum=crc64", "--data_checksum=xxhash"],
    tree=dict(seed=1374, files=28, max_kib=4), ops=[],
    notes=["format --encrypted accepts --compression=lz4 --metadata_checksum=crc64 --data_checksum=xxhash and records them in the superblock, but encryption replaces both checksum types on disk (chacha20_poly1305_80 for data, encrypted metadata), and every extent is marked 'compress incompressible': the files are at most 4 KiB (block size 4 KiB), so lz4 cannot save a block. (The non-encrypted v128-lz4, files up to 64 KiB, shows the same: copy_fs writes end up incompressible.)"],
    what="encrypted, lz4 compression (crc64/xxhash checksum options given; encryption overrides the data checksum), clean")
CASES["v136-ec"] = dict(
    tool="v1.36.1", devs=4, size_mib=64,
    fmt=["--erasure_code", "--replicas=2", "--rotational=0"],
    tree=dict(seed=1361, files=300, large=1, content="blocks"), prep=[("reconcile", "v1.36.1-ec")], ops=[],
    notes=["bcachefs format --erasure_code --source writes the data replicated and flags the extents "
           "need_rb=erasure_code for the background reconcile. Upstream's userspace build leaves the kernel option "
           "CONFIG_BCACHEFS_ERASURE_CODING unset, and in v1.36.1 alloc_request_get() then turns every erasure-coded "
           "allocation into a replicated one, so upstream's tools can never write a stripe (reconcile loops on "
           "must_ec moves). The stripes were written by the same tag's library built with that option "
           "(/work/realtools/build_ec.sh, plus the upstream fix of ec_block_endio()'s use-after-free from v1.39.2 "
           "and a pwrite() stand-in for the shim's unimplemented blkdev_issue_zeroout()) running reconcile offline "
           "(reconcile-run); the judge is the unmodified upstream v1.36.1 build. --rotational=0: with rotational "
           "devices reconcile takes its by-bucket path, which did not finish here. The extents of a stripe that "
           "was still open are completed at shutdown (zero-filled); a few extents may stay replicated."],
    what="4 devices, --erasure_code --replicas=2; data turned into RAID5 stripes by the "
         "library's reconcile (EC-enabled build of the same tag), clean")
CASES["v136-ec-corrupt"] = dict(
    tool="v1.36.1", base="v136-ec", seed=1362,
    ops=[("ec_extent", 2), ("bp_stripe_parity", 1), ("bp_stripe_data", 1), ("bp_ec_user", 1)],
    notes=["Stripe backpointers (btree=stripes) have len 0, so deleting one leaves its bucket's backpointer sector sums "
           "equal to the alloc key: the real v1.36.1 fsck never scans that bucket and neither reports nor re-creates "
           "them (truth.json silent_steps_not_repaired; the second fsck -n after the repair is clean). They are "
           "marked only_bp_of_bucket_expected_silent because they are real damage that a full check must report "
           "(as ptr_to_missing_backpointer of the stripe key's block pointer)."],
    what="v136-ec with 2 erasure-coded extents deleted, the stripe backpointers of a parity "
         "block and of a data block deleted, and a backpointer of an erasure-coded extent "
         "deleted (no triggers)")
CASES["v139-up-ec"] = dict(
    tool="v1.39.2", base="v136-ec", prep=[("upgrade", "v1.39.2")], ops=[],
    notes=["The upgrade (upgrade.txt) runs the passes its version steps need, but not the backpointer passes: the "
           "backpointers of erasure-coded pointers written at 1.36 keep their old value without the flags 1.37 added. "
           "v1.39.2's fsck compares all of the value and reports each one as 'backpointer doesn't match extent it points "
           "to' with found and want printed alike; its fsck -y deletes and rewrites them at the same position "
           "(truth.json replaced_in_place)."],
    what="v136-ec upgraded by v1.39.2 fsck -y -K -o version_upgrade=incompatible, then judged")
CASES["v139-up-ec-corrupt"] = dict(
    tool="v1.39.2", base="v139-up-ec", seed=1392, ops=[("ec_extent", 1), ("bp_stripe", 1)],
    notes=["Inherits the upgrade leftovers of v139-up-ec (erasure-coded backpointers without the 1.37 flags, each "
           "reported as 'backpointer doesn't match extent'). While making an earlier version of this case, the real "
           "v1.39.2 fsck -y hung in journal_replay (bch2_journal_flush_pins() waiting forever after check_allocations "
           "had repaired a stripe's block sector count); in the run recorded here it finished."],
    what="v139-up-ec with one erasure-coded extent and one stripe backpointer deleted by the "
         "v1.39.2 library (no triggers)")
CASES["v128-up-a-two-dev"] = dict(
    tool="v1.25.3", shared_base="cases/a-two-dev", prep=[("upgrade", "v1.25.3")], ops=[],
    notes=["The upgrade from 1.9 leaves the backpointers in their pre-1.14 value layout; v1.25.3's fsck reports each "
           "as 'backpointer doesn't match extent' and as 'missing backpointer' at the same position, and its fsck -y "
           "rewrites them in place (truth.json replaced_in_place)."],
    what="shared a-two-dev (v1.9.4, metadata 1.9) upgraded by v1.25.3 fsck -y -K -o "
         "version_upgrade=incompatible, then judged by v1.25.3")


# ---------------------------------------------------------------------------------------
# running the tools

LOG = None
PASSPHRASE = None   # set by make_case for encrypted cases (spec "passphrase")


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    if LOG:
        LOG.write(s + "\n")
        LOG.flush()


def run(ver, args, cwd, timeout=900, stdin=None, separate=False):
    """Run a tool; stdout line-buffered (stdbuf) so stderr lines do not cut into it.
    On a timeout the tool is killed and rc is None (the output so far is returned)."""
    cmd = ["stdbuf", "-oL", TOOLS[ver]] + args
    t0 = time.time()
    # encrypted cases: every command of the real tools gets the passphrase on stdin (one line);
    # the library reads it (bch2_request_key -> read_passphrase) when the key is not in a keyring
    io = dict(input=(PASSPHRASE + "\n").encode()) if PASSPHRASE is not None and stdin is None \
        else dict(stdin=stdin or subprocess.DEVNULL)
    try:
        p = subprocess.run(cmd, cwd=cwd, **io,
                           stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE if separate else subprocess.STDOUT,
                           timeout=timeout)
        rc, so, se = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, so, se = None, e.stdout or b"", e.stderr or b""
    dt = time.time() - t0
    out = so.decode(errors="replace")
    err = se.decode(errors="replace") if separate else None
    log("  $ (%s) bcachefs %s  -> rc %s (%.1fs)" % (ver, " ".join(args), rc if rc is not None else "TIMEOUT", dt))
    return (rc, out, err, dt) if separate else (rc, out, dt)


def imgs(n):
    return ["dev%d.img" % i for i in range(n)]


def copy_imgs(src, dst, n):
    os.makedirs(dst, exist_ok=True)
    for f in imgs(n):
        subprocess.run(["cp", "--sparse=always", os.path.join(src, f), os.path.join(dst, f)], check=True)


def split_keys(text):
    """bcachefs list output -> keys (first line 'u64s ...' + indented continuation lines)."""
    keys, cur = [], None
    for line in text.split("\n"):
        if line.startswith("u64s "):
            cur = [line]
            keys.append(cur)
        elif line[:1] in (" ", "\t") and cur is not None:
            cur.append(line)
        else:
            cur = None
    return ["\n".join(k) for k in keys]


def one_line(key):
    return " ".join(l.strip() for l in key.split("\n"))


def list_btree(ver, wd, n, btree):
    rc, out, err, _ = run(ver, ["list", "-b", btree] + imgs(n), wd, separate=True)
    if rc != 0:
        return None
    return split_keys(out)


# ---------------------------------------------------------------------------------------
# key parsing

PTR = re.compile(r"ptr: (?:\S+\.img )?(\d+):(\d+):(\d+) gen (\d+)")


def parse_key(k):
    t = one_line(k)
    m = re.match(r"u64s \d+ type (\S+) (\S+)", t)
    d = {"text": t, "type": m.group(1), "pos": m.group(2)}
    d["ptrs"] = [("%s:%s" % (a, b), int(c)) for a, b, c, _ in PTR.findall(t)]
    d["ec"] = bool(re.search(r"\bec: |stripe_ptr|\bidx \d+ block \d+", t))
    return d


def parse_bp(k):
    t = one_line(k)
    f = fsck2expect.parse_bp(t)
    if f is None:
        return None
    f["text"] = t
    f["data_type"] = f["detail"].get("data_type")
    return f


def parse_alloc(k):
    t = one_line(k)
    m = re.match(r"u64s \d+ type (\S+) (\S+)", t)
    dev, bucket, _ = fsck2expect.expand_pos(m.group(2)).split(":")
    d = {"text": t, "type": m.group(1), "bucket": "%s:%s" % (dev, bucket), "pos": "%s:%s:0" % (dev, bucket)}
    m = re.search(r"data_type (\S+)", t)
    d["data_type"] = m.group(1) if m else None
    m = re.search(r"dirty_sectors\s+(\d+)", t)
    d["dirty"] = int(m.group(1)) if m else 0
    return d


# ---------------------------------------------------------------------------------------
# superblock facts


def superblock_facts(ver, wd, n):
    rc, out, _ = run(ver, ["show-super", "-f", "members_v2", "dev0.img"], wd)
    f = collections.OrderedDict()

    def field(name):
        m = re.search(r"^\s*%s:\s+(.*?)\s*$" % re.escape(name), out, re.M)
        return m.group(1) if m else None
    f["version"] = field("Version")
    f["version_upgrade_complete"] = field("Version upgrade complete")
    f["oldest_version_on_disk"] = field("Oldest version on disk")
    f["clean"] = field("Clean")
    with open(os.path.join(wd, "dev0.img"), "rb") as fh:
        fh.seek(4096)
        sb = fh.read(4096)
    flags6 = struct.unpack_from("<Q", sb, 144 + 6 * 8)[0]
    raw = (flags6 >> 40) & 0xff
    f["extent_bp_shift"] = raw or 10
    f["extent_bp_shift_raw_sb_field"] = raw
    for o in ("block_size", "btree_node_size", "encoded_extent_max", "metadata_checksum",
              "data_checksum", "compression", "metadata_replicas", "data_replicas", "erasure_code"):
        f[o] = field(o)
    f["block_size_bytes_raw"] = struct.unpack_from("<H", sb, 120)[0] * 512
    f["features"] = field("Features")
    devs = []
    for m in re.finditer(r"^Device:?\s+(\d+):?\s*$(.*?)(?=^Device:?\s+\d+|\Z)", out, re.M | re.S):
        body = m.group(2)

        def g(name):
            mm = re.search(r"^\s+%s:\s+(.*?)\s*$" % re.escape(name), body, re.M)
            return mm.group(1) if mm else None
        nb = g("Buckets")
        fb = g("First bucket")
        devs.append({"dev": int(m.group(1)), "bucket_size": g("Bucket size"),
                     "nbuckets": int(nb) if nb and nb.isdigit() else nb,
                     "first_bucket": int(fb) if fb and fb.isdigit() else fb,
                     "size": g("Size")})
    f["devices"] = devs
    return f


# ---------------------------------------------------------------------------------------
# corruption ops


class Corruptor:
    def __init__(self, ver, wd, n, rng, unclean):
        self.ver, self.wd, self.n, self.rng, self.unclean = ver, wd, n, rng, unclean
        self.steps = []
        self.touched = set()        # buckets already used by a step

    def state(self):
        self.bps = [b for b in (parse_bp(k) for k in list_btree(self.ver, self.wd, self.n, "backpointers")) if b]
        self.extents = [parse_key(k) for k in list_btree(self.ver, self.wd, self.n, "extents")]
        self.allocs = [parse_alloc(k) for k in list_btree(self.ver, self.wd, self.n, "alloc")]
        self.by_bucket = collections.defaultdict(list)
        for b in self.bps:
            self.by_bucket[b["bucket"]].append(b)
        self.ext_by_bucket = collections.defaultdict(list)
        for e in self.extents:
            for bk, _ in e["ptrs"]:
                self.ext_by_bucket[bk].append(e)

    def delete(self, btree, pos, triggers=False):
        args = ["delete-key"] + (["-T"] if triggers else []) + (["-U"] if self.unclean else []) + \
            ["-b", btree, "-p", pos] + imgs(self.n)
        rc, out, dt = run(self.ver, args, self.wd, timeout=300)
        if self.unclean:
            ok = rc == -9 or rc == 137
        else:
            ok = rc == 0
        m = re.search(r"^deleted %s \S+\n  key: (.*?)(?=\n\S|\Z)" % re.escape(btree), out, re.M | re.S)
        if not ok or not m:
            raise SystemExit("delete-key failed (rc %d):\n%s" % (rc, out))
        cmd = "bcachefs " + " ".join(args)
        if self.unclean:
            cmd += "  (SIGKILLed by itself 3 s after its journal flush, before shutdown: unclean)"
        return cmd, one_line(m.group(1))

    def bp_step(self, b, what, silent, emptied=False):
        cmd, text = self.delete("backpointers", b["bp"])
        s = collections.OrderedDict(cmd=cmd, deleted_key=text, what=what, bucket=b["bucket"],
                                    bps_in_bucket=len(self.by_bucket[b["bucket"]]))
        if emptied:
            s["bucket_emptied"] = True
        s.update(target_btree=b["btree"], level=b["level"], target_pos=b["pos"],
                 only_bp_of_bucket_expected_silent=silent)
        self.steps.append(s)
        self.touched.add(b["bucket"])

    def pick(self, items, n, what):
        if len(items) < n:
            raise SystemExit("not enough candidates for %s: %d < %d" % (what, len(items), n))
        return self.rng.sample(items, n)

    def free_bucket(self, bk):
        return bk not in self.touched

    def ext_buckets_free(self, e):
        return e["ptrs"] and all(self.free_bucket(bk) for bk, _ in e["ptrs"])

    def op(self, kind, n):
        self.state()
        # v1.20.0 prints backpointers without data_type: a leaf extents backpointer there
        # points at user data (no cache devices in these cases)
        user = lambda b: (b["data_type"] or "user") == "user" and b["level"] == 0 and b["btree"] == "extents"
        if kind == "bp_user":
            cands = [b for b in self.bps if user(b) and len(self.by_bucket[b["bucket"]]) >= 3 and self.free_bucket(b["bucket"])]
            # one per bucket
            seen, uniq = set(), []
            for b in self.rng.sample(cands, len(cands)):
                if b["bucket"] not in seen:
                    seen.add(b["bucket"])
                    uniq.append(b)
            for b in self.pick(uniq, n, kind):
                self.bp_step(b, "user backpointer", False)
        elif kind == "bp_user_only":
            cands = [b for b in self.bps if user(b) and len(self.by_bucket[b["bucket"]]) == 1 and self.free_bucket(b["bucket"])]
            for b in self.pick(cands, n, kind):
                self.bp_step(b, "user backpointer", True)
        elif kind == "bp_user_empty_bucket":
            cands = [bk for bk, l in self.by_bucket.items()
                     if 2 <= len(l) <= 3 and all(user(b) for b in l) and self.free_bucket(bk)]
            for bk in self.pick(cands, n, kind):
                l = list(self.by_bucket[bk])
                for i, b in enumerate(l):
                    self.state()
                    b = next(x for x in self.bps if x["bp"] == b["bp"])
                    self.bp_step(b, "user backpointer; ALL backpointers of this bucket deleted "
                                    "(bucket left with none, so the real fsck repairs them silently)",
                                 True, emptied=True)
        elif kind == "bp_btree":
            cands = [b for b in self.bps if b["level"] >= 1 and self.free_bucket(b["bucket"])]
            for b in self.pick(cands, n, kind):
                self.bp_step(b, "btree backpointer", len(self.by_bucket[b["bucket"]]) == 1)
        elif kind in ("bp_stripe", "bp_stripe_parity", "bp_stripe_data"):
            want = {"bp_stripe": ("parity", "user"), "bp_stripe_parity": ("parity",),
                    "bp_stripe_data": ("user",)}[kind]
            cands = [b for b in self.bps if b["btree"] == "stripes" and b["level"] == 0
                     and b["data_type"] in want and self.free_bucket(b["bucket"])]
            for b in self.pick(cands, n, kind):
                self.bp_step(b, "stripe backpointer (btree=stripes, data_type=%s: %s block of stripe %s)" % (
                    b["data_type"], "parity" if b["data_type"] == "parity" else "data", b["pos"]),
                    len(self.by_bucket[b["bucket"]]) == 1)
        elif kind == "bp_ec_user":
            ecpos = {e["pos"] for e in self.extents if e["ec"]}
            cands = [b for b in self.bps if b["btree"] == "extents" and b["level"] == 0
                     and b["data_type"] in ("user", "stripe") and b["text"].split("pos=")[-1] in ecpos
                     and self.free_bucket(b["bucket"])]
            for b in self.pick(cands, n, kind):
                self.bp_step(b, "backpointer of an erasure-coded extent (data_type=%s)" % b["data_type"],
                             len(self.by_bucket[b["bucket"]]) == 1)
        elif kind in ("extent", "extent_consistent", "ec_extent"):
            cands = [e for e in self.extents if e["type"] == "extent" and self.ext_buckets_free(e)
                     and (e["ec"] if kind == "ec_extent" else True)]
            for e in self.pick(cands, n, kind):
                cmd, text = self.delete("extents", e["pos"], triggers=(kind == "extent_consistent"))
                if kind == "extent_consistent":
                    s = collections.OrderedDict(cmd=cmd, deleted_key=text,
                                                what="extent key deleted WITH triggers (-T, consistent)")
                else:
                    s = collections.OrderedDict(cmd=cmd, deleted_key=text,
                                                what="erasure-coded extent key" if kind == "ec_extent" else "extent key",
                                                ptr_buckets=[bk for bk, _ in e["ptrs"]])
                    for bk, _ in e["ptrs"]:
                        self.touched.add(bk)
                self.steps.append(s)
        elif kind in ("alloc", "alloc_orphan"):
            cands = [a for a in self.allocs if a["data_type"] == "user" and a["dirty"] > 0
                     and self.free_bucket(a["bucket"]) and self.by_bucket.get(a["bucket"])
                     and all(len(e["ptrs"]) == 1 or all(self.free_bucket(bk) for bk, _ in e["ptrs"])
                             for e in self.ext_by_bucket[a["bucket"]])]
            if kind == "alloc_orphan":
                cands = [a for a in cands if len(self.ext_by_bucket[a["bucket"]]) <= 6]
            for a in self.pick(cands, n, kind):
                bk = a["bucket"]
                nbps = len(self.by_bucket[bk])
                if kind == "alloc_orphan":
                    for e in list(self.ext_by_bucket[bk]):
                        cmd, text = self.delete("extents", e["pos"])
                        self.steps.append(collections.OrderedDict(
                            cmd=cmd, deleted_key=text,
                            what="extent key (alloc_orphan: every extent pointing into bucket %s)" % bk,
                            ptr_buckets=[b for b, _ in e["ptrs"]]))
                        for b, _ in e["ptrs"]:
                            self.touched.add(b)
                cmd, text = self.delete("alloc", a["pos"])
                what = "alloc key of bucket with backpointers" if kind == "alloc" else \
                    "alloc key of bucket with backpointers (alloc_orphan: its extents deleted too)"
                self.steps.append(collections.OrderedDict(cmd=cmd, deleted_key=text, what=what,
                                                          bucket=bk, bps_in_bucket=nbps))
                self.touched.add(bk)
        else:
            raise SystemExit("unknown op " + kind)


# ---------------------------------------------------------------------------------------
# a case

def zst(src, dst):
    subprocess.run(["zstd", "-q", "-f", "-19", "--long=27", "-T2", src, "-o", dst], check=True)


def unzst(src, dst):
    subprocess.run(["zstd", "-q", "-f", "-d", "--long=27", src, "-o", dst], check=True)


def node_dump(ver, wd, n):
    parts = []
    for bt in BTREES[ver]:
        for lvl in range(4):
            rc, out, err, _ = run(ver, ["list", "-b", bt, "-m", "formats", "-l", str(lvl)] + imgs(n), wd, separate=True)
            lines = out.split("\n")
            start = next((i for i, l in enumerate(lines) if re.match(r"^l \d+ ", l)), None)
            if start is None:
                break   # no nodes at this level: none above either
            lines = lines[start:]
            end = next((i for i, l in enumerate(lines) if re.match(
                r"^(clean shutdown complete|shutdown complete|going read-only|insufficient writeable|rw journal devs|flushing journal)", l)), len(lines))
            body = "\n".join(lines[:end]).rstrip("\n")
            parts.append("=== btree %s level %d (bcachefs list -b %s -m formats -l %d) ===\n%s" % (bt, lvl, bt, lvl, body))
    return "\n".join(parts) + "\n"


def truth_rule(truth, case):
    """added == missing-backpointer findings (not replaced in place) + silent steps, and
    removed == backpointer_to_missing_* findings (not replaced in place); findings about
    btree nodes that are no damage on disk (node_findings_note) are left out."""
    art = set(case.get("fsck_node_findings_consistent_on_disk", []) + case.get("fsck_node_findings_not_on_disk", []))
    truth["expect_findings_not_in_truth_artifacts"] = sorted(set(truth["expect_findings_not_in_truth"]) & art, key=bp_sort)
    truth["rule_holds"] = (set(truth["silent_added"]) <= set(truth["silent_steps"]) and
                           not truth["silent_steps_not_repaired"] and not truth["silent_removed"] and
                           not (set(truth["expect_findings_not_in_truth"]) - art))


def node_findings_note(case, notes, exp, ver, img, n, before):
    """"backpointer doesn't match btree node" findings of fsck.txt that are no damage on disk:
    the backpointer does not exist on disk, or it exists and the btree node key at its
    btree/level/pos has a pointer into its bucket. The read-write fsck compared them with
    nodes it had rewritten in memory itself while it ran."""
    node_keys = {}
    consistent, absent = [], []
    for f in exp["findings"]:
        if f["code"] != "backpointer_to_missing_ptr" or f["level"] < 1:
            continue
        if f["bp"] not in before:
            absent.append(f["bp"])
            continue
        k = (f["btree"], f["level"])
        if k not in node_keys:
            rc, out, err, _ = run(ver, ["list", "-b", f["btree"], "-m", "nodes", "-l", str(f["level"] - 1)] + imgs(n),
                                  img, separate=True)
            node_keys[k] = []
            for key in split_keys(out):
                kk = parse_key(key)
                node_keys[k].append((fsck2expect.expand_pos(kk["pos"]), {bk for bk, _ in kk["ptrs"]}))
        if any(pos == f["pos"] and f["bucket"] in bks for pos, bks in node_keys[k]):
            consistent.append(f["bp"])
    for key in ("fsck_node_findings_consistent_on_disk", "fsck_node_findings_not_on_disk"):
        case.pop(key, None)
    if consistent:
        case["fsck_node_findings_consistent_on_disk"] = consistent
    if absent:
        case["fsck_node_findings_not_on_disk"] = absent
    if consistent or absent:
        notes.append("%d 'backpointer doesn't match btree node' findings of fsck.txt are no damage on disk: %d "
                     "backpointers exist and the btree node key at their btree/level/pos has a pointer into their "
                     "bucket (fsck_node_findings_consistent_on_disk), %d do not exist on disk at all "
                     "(fsck_node_findings_not_on_disk). The read-write fsck compared them with btree nodes it had "
                     "rewritten in memory while it ran (a second run reports other ones); a full check of the image "
                     "must not report them." % (len(consistent) + len(absent), len(consistent), len(absent)))


def recheck_nodes(name, out_root, work_root):
    """Redo node_findings_note() for a finished case (images from its folder)."""
    od = os.path.join(out_root, name)
    case = json.load(open(os.path.join(od, "case.json")), object_pairs_hook=collections.OrderedDict)
    exp = json.load(open(os.path.join(od, "expect.json")))
    ver = {name: v for v, name in TOOL_NAME.items()}[case["oracle"]]
    n = case["devices"]
    img = os.path.join(work_root, name, "recheck")
    shutil.rmtree(img, ignore_errors=True)
    os.makedirs(img)
    for i in range(n):
        unzst(os.path.join(od, "dev%d.img.zst" % i), os.path.join(img, "dev%d.img" % i))
    before = {b["bp"]: b for b in (parse_bp(k) for k in list_btree(ver, img, n, "backpointers")) if b}
    notes = [x for x in case.get("notes", []) if "findings of fsck.txt" not in x]
    new = []
    node_findings_note(case, new, exp, ver, img, n, before)
    tpath = os.path.join(od, "truth.json")
    truth = json.load(open(tpath), object_pairs_hook=collections.OrderedDict)
    if truth.get("rule_holds") is not None:
        truth_rule(truth, case)
        json.dump(truth, open(tpath, "w"), indent=1)
        open(tpath, "a").write("\n")
        case["truth_rule_holds"] = truth["rule_holds"]
        notes = [x for x in notes if not (x.startswith("truth.json:") and truth["rule_holds"])]
    case["notes"] = new + notes
    json.dump(case, open(os.path.join(od, "case.json"), "w"), indent=1)
    open(os.path.join(od, "case.json"), "a").write("\n")
    shutil.rmtree(img, ignore_errors=True)
    print(name, new)


def make_case(name, out_root, work_root, keep=False):
    spec = CASES[name]
    ver = spec["tool"]
    wd = os.path.join(work_root, name)
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    img = os.path.join(wd, "img")
    os.makedirs(img)
    global LOG
    LOG = open(os.path.join(wd, "mkcase.log"), "w")
    log("== case %s (%s)" % (name, ver))
    case = collections.OrderedDict()
    case["name"] = name
    case["set"] = "public"
    notes = []
    global PASSPHRASE
    PASSPHRASE = spec.get("passphrase")
    if PASSPHRASE is None and "base" in spec:
        PASSPHRASE = CASES[spec["base"]].get("passphrase")
    if PASSPHRASE is not None:
        case["passphrase"] = PASSPHRASE
        case["passphrase_note"] = "every command of the real tools (format, populate, delete-key, list, show-super, fsck) got it on stdin, one line"

    # ---- base
    if "base" in spec:
        base = CASES[spec["base"]]
        bdir = os.path.join(out_root, spec["base"])
        bcase = json.load(open(os.path.join(bdir, "case.json")))
        n = bcase["devices"]
        for i in range(n):
            unzst(os.path.join(bdir, "dev%d.img.zst" % i), os.path.join(img, "dev%d.img" % i))
        case["devices"] = n
        case["image_files"] = ["dev%d.img.zst" % i for i in range(n)]
        case["base_case"] = spec["base"]
        for k in ("format_options", "format_command", "format_tool", "image_size_mib", "source_tree", "made_by"):
            if k in bcase:
                case[k] = bcase[k]
        if "prep" in bcase:
            case["base_prep"] = bcase["prep"]
    elif "shared_base" in spec:
        sdir = os.path.join(SHARED, spec["shared_base"])
        scase = json.load(open(os.path.join(sdir, "case.json")))
        files = sorted(f for f in os.listdir(sdir) if re.match(r"dev\d+\.img\.zst$", f))
        n = len(files)
        for f in files:
            unzst(os.path.join(sdir, f), os.path.join(img, f[:-4]))
        case["devices"] = n
        case["image_files"] = files
        case["base_case"] = "shared testdata %s (%s)" % (spec["shared_base"], scase.get("bcachefs_tools_version", scase.get("oracle", "bcachefs-tools v1.9.4")))
        for k in ("format_options", "format_command", "image_size_mib", "source_tree"):
            if k in scase:
                case[k] = scase[k]
    else:
        n = spec["devs"]
        t = spec["tree"]
        content = t.get("content", "pool")
        src = os.path.join(work_root, "src-%d-%d-%d-%s" % (t["seed"], t["files"], t.get("large", 0), content))
        mk = t.get("max_kib", 64)
        if mk != 64:
            src += "-k%d" % mk
        sp = subprocess.run([sys.executable, os.path.join(HERE, "gen_tree.py"), src, "--seed", str(t["seed"]),
                             "--files", str(t["files"]), "--large", str(t.get("large", 0)), "--content", content,
                             "--max-kib", str(mk)],
                            stdout=subprocess.PIPE) if not os.path.exists(src) else None
        summ_path = src + ".json"
        if sp is not None:
            open(summ_path, "wb").write(sp.stdout)
        summary = json.load(open(summ_path))
        # format_with: the tool that formats and populates (a judge without format --source)
        fver = spec.get("format_with", ver)
        if PASSPHRASE is not None:
            # upstream format --encrypted does not initialize the fs and ignores --source:
            # format, then our `populate` (mains/populate.c: bch2_fs_open + copy_fs as format does)
            fmt_args = ["format", "--force", "--encrypted"] + spec["fmt"] + imgs(n)
        else:
            fmt_args = ["format", "--force"] + spec["fmt"] + ["--source=" + src] + imgs(n)
        for attempt in range(4):
            for f in imgs(n):
                p = os.path.join(img, f)
                if os.path.exists(p):
                    os.unlink(p)
                subprocess.run(["truncate", "-s", "%dM" % spec["size_mib"], p], check=True)
            rc, out, dt = run(fver, fmt_args, img)
            if rc == 0 and PASSPHRASE is not None:
                rc, pout, dt = run(fver, ["populate", "--source=" + src] + imgs(n), img)
                out += "\n=== bcachefs populate --source=SRC ===\n" + pout
            open(os.path.join(wd, "format.txt"), "w").write(out)
            if rc == 0:
                break
            notes.append("format attempt %d failed (rc %d), retried" % (attempt + 1, rc))
        else:
            raise SystemExit("format failed")
        case["devices"] = n
        case["image_files"] = ["dev%d.img.zst" % i for i in range(n)]
        case["format_options"] = spec["fmt"]
        case["format_command"] = "bcachefs format --force %s--source=SRC %s" % (
            "".join(o + " " for o in spec["fmt"]), " ".join(imgs(n)))
        if PASSPHRASE is not None:
            case["format_command"] = ("bcachefs format --force --encrypted %s%s && bcachefs populate --source=SRC %s"
                                      "  (passphrase on stdin; populate: /work/realtools/mains/populate.c)") % (
                "".join(o + " " for o in spec["fmt"]), " ".join(imgs(n)), " ".join(imgs(n)))
        case["format_tool"] = TOOL_NAME[fver]
        case["image_size_mib"] = spec["size_mib"]
        case["source_tree"] = {"generator": "bench/mkcase/gen_tree.py",
                               "args": {"seed": t["seed"], "files": t["files"], "large": t.get("large", 0),
                                        "content": content, "max_kib": mk},
                               "summary": summary}

    # ---- preparation
    prep = []
    for kind, pver in spec.get("prep", []):
        if kind == "reconcile":
            rc, out, dt = run(pver, ["reconcile-run", "-t", "400"] + imgs(n), img, timeout=600)
            open(os.path.join(wd, "reconcile.txt"), "w").write(out)
            last = [l for l in out.split("\n") if l.startswith("t=")][-1:]
            prep.append(collections.OrderedDict(
                step="reconcile", tool="%s (/work/realtools/%s: the v1.36.1 library built with "
                     "CONFIG_BCACHEFS_ERASURE_CODING, see build_ec.sh)" % (pver, pver) if pver.endswith("-ec") else pver,
                cmd="bcachefs reconcile-run -t 400 " + " ".join(imgs(n)), exit_code=rc,
                seconds=round(dt, 1), last_poll=last[0] if last else None))
            if rc != 0:
                raise SystemExit("reconcile-run did not finish:\n" + out[-3000:])
        elif kind == "upgrade":
            args = ["fsck", "-y", "-K", "-o", "version_upgrade=incompatible"] + imgs(n)
            pristine = os.path.join(wd, "pre-upgrade")
            copy_imgs(img, pristine, n)
            hung = []
            for attempt in range(4):
                rc, out, dt = run(pver, args, img, timeout=UPGRADE_TIMEOUT)
                if rc is not None:
                    break
                # upstream hang (journal_replay waiting for journal pins forever): retry on the
                # untouched images
                hung.append(out)
                copy_imgs(pristine, img, n)
            else:
                raise SystemExit("upgrade hung %d times" % len(hung))
            shutil.rmtree(pristine, ignore_errors=True)
            open(os.path.join(wd, "upgrade.txt"), "w").write(out)
            st = collections.OrderedDict(step="upgrade", tool=TOOL_NAME[pver],
                                         cmd="bcachefs " + " ".join(args), exit_code=rc,
                                         seconds=round(dt, 1), output="upgrade.txt")
            if hung:
                st["hung_attempts"] = len(hung)
                st["hung_attempt_note"] = ("%d earlier attempt(s) on the same images hung (killed after %d s; last "
                                           "output line: %r) and were retried on an untouched copy" % (
                                               len(hung), UPGRADE_TIMEOUT, hung[-1].strip().split("\n")[-1]))
                for i, h in enumerate(hung):
                    open(os.path.join(wd, "upgrade_hung%d.txt" % i), "w").write(h)
            prep.append(st)
    if prep:
        case["prep"] = prep

    # ---- corruption
    if spec.get("ops"):
        rng = random.Random(spec["seed"])
        c = Corruptor(ver, img, n, rng, spec.get("unclean", False))
        for kind, k in spec["ops"]:
            c.op(kind, k)
        case["corruption_seed"] = spec["seed"]
        case["corruption_ops"] = [{"op": k, "n": m} for k, m in spec["ops"]]
        case["corruption_tool"] = TOOL_NAME[ver]
        case["corruption_steps"] = c.steps
    case["what"] = spec["what"]

    # ---- facts of the final images
    sbf = superblock_facts(ver, img, n)
    case["superblock"] = sbf
    case["bcachefs_tools_version"] = TOOL_NAME[ver].split()[-1].lstrip("v") if ver != "v1.25.3" else "1.25.2"
    counts = collections.OrderedDict()
    dumps = {}
    for bt in BTREES[ver]:
        keys = list_btree(ver, img, n, bt)
        if keys is None:
            continue
        counts[bt] = len(keys)
        if keys:
            dumps[bt] = "\n".join(keys) + "\n"
    case["key_counts"] = counts
    case["key_counts_note"] = KEY_COUNTS_NOTE_NO_OVERLAY if ver in NO_LIST_JOURNAL_OVERLAY else \
        "bcachefs list -b BTREE (leaf keys, level 0) of the final images; list opens with norecovery but overlays the journal's keys"
    ld = os.path.join(wd, "list")
    os.makedirs(ld, exist_ok=True)
    for bt, text in dumps.items():
        open(os.path.join(ld, bt + ".txt"), "w").write(text)
    open(os.path.join(ld, "btree_nodes.txt"), "w").write(node_dump(ver, img, n))
    case["list_dumps"] = sorted(f + ".zst" for f in os.listdir(ld))

    # ---- the judge
    cmd_n = fsck_cmd(ver, "-n")
    case["fsck_command"] = "bcachefs " + " ".join(cmd_n + imgs(n))
    case["oracle"] = TOOL_NAME[ver]
    nd = os.path.join(wd, "fsck_n")
    copy_imgs(img, nd, n)
    rc_n, out_n, dt_n = run(ver, cmd_n + imgs(n), nd, timeout=900)
    open(os.path.join(wd, "fsck.txt"), "w").write(out_n)
    case["fsck_exit_code"] = rc_n
    case["fsck_wall_seconds"] = round(dt_n, 3)

    yd = os.path.join(wd, "fsck_y")
    copy_imgs(img, yd, n)
    rc_y, out_y, dt_y = run(ver, fsck_cmd(ver, "-y") + imgs(n), yd, timeout=REPAIR_TIMEOUT)
    open(os.path.join(wd, "fsck_repair.txt"), "w").write(out_y)
    case["repair_exit_code"] = rc_y
    if rc_y is None:
        case["repair_timed_out_seconds"] = REPAIR_TIMEOUT
        notes.append("fsck -y did not finish: killed after %d s (fsck_repair.txt is its output up to "
                     "then); no errors.txt counts, second fsck or truth.json from a repaired copy" % REPAIR_TIMEOUT)
    rc, out, _ = run(ver, ["show-super", "-f", "errors", "dev0.img"], yd)
    err_lines, in_errors = [], False
    for l in out.split("\n"):
        if re.match(r"^errors\b", l):
            in_errors = True
        elif in_errors and re.match(r"^\S+\s+\d+\s", l):
            err_lines.append(l.rstrip())
        elif in_errors and l.strip() and not l[0].isspace():
            in_errors = False
    errors_txt = "# bcachefs show-super -f errors, after: bcachefs %s (on a copy)\n# name  count  last-time\n" % \
        " ".join(fsck_cmd(ver, "-y")) + "".join(l + "\n" for l in err_lines)
    open(os.path.join(wd, "errors.txt"), "w").write(errors_txt)
    case["errors_after_repair"] = fsck2expect.parse_errors_txt(errors_txt)
    if rc_y is not None:
        rc2, out2, _ = run(ver, cmd_n + imgs(n), yd, timeout=900)
        case["second_fsck_after_repair_exit_code"] = rc2
        case["second_fsck_after_repair_clean"] = rc2 == 0
        if rc2 != 0:
            open(os.path.join(wd, "fsck_after_repair.txt"), "w").write(out2)
        if rc2 is None or rc2 < 0 or rc2 >= 128:
            notes.append("the second fsck -n (on the repaired copy) did not exit normally (exit %s); its last "
                         "lines: %r (fsck_after_repair.txt)" % (rc2, out2.strip().split("\n")[-3:]))

    # ---- truth: backpointers before / after a repair with nothing else moving
    bimg = img
    if ver in NO_LIST_JOURNAL_OVERLAY and spec.get("unclean", False):
        # this tool's list shows the btree without the journal's keys: BEFORE is listed from a
        # copy opened read-write once (journal replayed, no fsck) and shut down cleanly, by a
        # delete-key of a position that holds no key (exit 2, nothing deleted)
        bimg = os.path.join(wd, "truth_before")
        copy_imgs(img, bimg, n)
        rc_b, out_b, _ = run(ver, ["delete-key", "-b", "extents", "-p", "0:0:0"] + imgs(n), bimg, timeout=300)
        if rc_b != 2:
            raise SystemExit("journal replay open failed (rc %s):\n%s" % (rc_b, out_b))
        notes.append("truth.json BEFORE: %s lists an unclean filesystem without the journal's keys, so BEFORE "
                     "was listed from a copy opened read-write once (journal replayed, no fsck) and shut down "
                     "cleanly (`bcachefs delete-key -b extents -p 0:0:0`, which finds no key there and deletes "
                     "nothing)" % TOOL_NAME[ver])
    before = {b["bp"]: b for b in (parse_bp(k) for k in list_btree(ver, bimg, n, "backpointers")) if b}
    td = os.path.join(wd, "truth")
    copy_imgs(img, td, n)
    quiet = "copygc_enabled=0," + ("rebalance_enabled=0" if ver in REBALANCE_ENABLED_OPT else "reconcile_enabled=0")
    tcmd = fsck_cmd(ver, "-y")
    if ver not in NO_QUIET_OPTS:
        tcmd[-1] = tcmd[-1] + "," + quiet
    rc_t, out_t, _ = run(ver, tcmd + imgs(n), td, timeout=REPAIR_TIMEOUT) if rc_y is not None else (None, "", 0)
    after = {b["bp"]: b for b in (parse_bp(k) for k in list_btree(ver, td, n, "backpointers")) if b} \
        if rc_t is not None else dict(before)
    added = [after[p] for p in sorted(after, key=bp_sort) if p not in before or before[p]["text"] != after[p]["text"]]
    removed = [before[p] for p in sorted(before, key=bp_sort) if p not in after]

    # ---- expect.json
    cmd_show = "bcachefs " + " ".join(cmd_n)
    exp = fsck2expect.build(name, out_n, cmd_show, errors_txt, out_y)

    # which deleted backpointers the judge reported: the others are silent for it
    reported = {f["bp"] for f in exp["findings"] if f["code"] == "ptr_to_missing_backpointer"}
    for i, st in enumerate(case.get("corruption_steps", [])):
        if "-b backpointers" not in st["cmd"]:
            continue
        p = re.search(r"-p (\S+)", st["cmd"]).group(1)
        silent = p not in reported
        by_bucket_rule = st.get("bps_in_bucket") == 1 or st.get("bucket_emptied", False)
        if silent != by_bucket_rule:
            notes.append("corruption step %d (%s): %s by the real fsck although %s" % (
                i, p, "not reported" if silent else "reported",
                "its bucket had other backpointers" if silent else "it was the only backpointer of its bucket"))
        st["only_bp_of_bucket_expected_silent"] = silent

    # the same fsck -n again on another fresh copy: is its text deterministic?
    rd_ = os.path.join(wd, "fsck_n2")
    copy_imgs(img, rd_, n)
    rc_n2, out_n2, _ = run(ver, cmd_n + imgs(n), rd_, timeout=900)
    # timing only: durations, the last journal seq, and v1.25.3's racy shutdown lines (realtools README)
    norm = lambda t: re.sub(r"(?m)^(insufficient writeable journal devices available.*|rw journal devs:.*)\n", "",
                            re.sub(r"journal seq \d+", "journal seq N", re.sub(r" \(\d+ seconds\)", "", t)))
    case["fsck_repeat_same_text"] = norm(out_n2) == norm(out_n) and rc_n2 == rc_n
    if not case["fsck_repeat_same_text"]:
        open(os.path.join(wd, "fsck_repeat.txt"), "w").write(out_n2)
        f1 = {(f["code"], f["bp"]) for f in exp["findings"]}
        f2 = {(f["code"], f["bp"]) for f in fsck2expect.parse(out_n2)[0]}
        notes.append("a second fsck -n on another fresh copy printed a different text (exit %s): findings only in "
                     "fsck.txt: %s; only in the repeat: %s" % (rc_n2, sorted(f1 - f2), sorted(f2 - f1)))
    case["expected_counts"] = exp["counts"]
    case["other_counts"] = exp["other_counts"]
    case["consistency_check"] = exp["consistency_check"]

    node_findings_note(case, notes, exp, ver, img, n, before)

    # truth.json
    exp_bps = {(f["code"], f["bp"]) for f in exp["findings"]}
    silent_steps = [re.search(r"-p (\S+)", s["cmd"]).group(1) for s in case.get("corruption_steps", [])
                    if s.get("only_bp_of_bucket_expected_silent")]
    ptm = {f["bp"] for f in exp["findings"] if f["code"] == "ptr_to_missing_backpointer"}
    gone = {f["bp"] for f in exp["findings"] if f["code"] in ("backpointer_to_missing_ptr", "backpointer_to_missing_alloc", "backpointer_to_missing_device")}
    # btree nodes the read-write fsck rewrote or created (not repairs): backpointers of
    # data_type btree added or removed that are neither findings nor corruption steps
    step_bps = {re.search(r"-p (\S+)", s["cmd"]).group(1) for s in case.get("corruption_steps", [])
                if "-b backpointers" in s["cmd"]}
    churn = sorted({b["bp"] for b in added + removed if b["data_type"] == "btree"}
                   - ptm - gone - step_bps, key=bp_sort)
    added_pos = {b["bp"] for b in added} - set(churn)
    removed_pos = {b["bp"] for b in removed} - set(churn)
    # reported backpointers deleted and written anew at the same position with the same text
    # (different in fields the text does not show: the 1.37 erasure-coding flags, the
    # pre-1.14 value layout)
    replaced = {p for p in gone | ptm if p in after and p in before and after[p]["text"] == before[p]["text"]}
    truth = collections.OrderedDict()
    truth["case"] = name
    truth["set"] = "public"
    tb = lambda b: collections.OrderedDict(bp=b["bp"], bucket=b["bucket"], btree=b["btree"], level=b["level"],
                                           pos=b["pos"], data_type=b["data_type"], line=b["text"])
    truth["added"] = [tb(b) for b in added]
    truth["removed"] = [tb(b) for b in removed]
    truth["method"] = ("BEFORE = `bcachefs list -b backpointers` of the case images (list overlays the "
                       "journal's keys); AFTER = `bcachefs %s` on a copy (%s), then list; added = positions only in AFTER or with another "
                       "value, removed = positions only in BEFORE. Backpointers of btree nodes that the "
                       "read-write fsck rewrote, split or created (data_type btree, neither a finding nor a "
                       "corruption step: btree_node_churn) are not repairs and are left out of the rule "
                       "check; replaced_in_place counts reported backpointers deleted and written anew at "
                       "the same position. rule_holds: added == ptr_to_missing_backpointer findings + "
                       "silent steps and removed == backpointer_to_missing_* findings. Tool: %s" % (
                           " ".join(tcmd),
                           "this tool has no copygc_enabled/rebalance_enabled options: copygc and rebalance left on"
                           if ver in NO_QUIET_OPTS else
                           "copygc and %s off, so nothing moves but the repairs" % quiet.split(",")[1].split("=")[0],
                           TOOL_NAME[ver]))
    truth["repair_exit_code"] = rc_t
    truth["bp_keys_before"] = len(before)
    truth["bp_keys_after"] = len(after)
    truth["btree_node_churn"] = churn
    truth["replaced_in_place"] = len(replaced)
    truth["silent_added"] = sorted(added_pos - ptm, key=bp_sort)
    truth["silent_removed"] = sorted(removed_pos - gone, key=bp_sort)
    truth["expect_findings_not_in_truth"] = sorted((ptm - replaced - added_pos) | (gone - replaced - removed_pos), key=bp_sort)
    truth["silent_steps"] = silent_steps
    truth["silent_steps_not_repaired"] = sorted(set(silent_steps) - added_pos, key=bp_sort)
    if rc_t is None:
        truth["rule_holds"] = None
        truth["skipped"] = "the repair did not finish (killed after %d s)" % REPAIR_TIMEOUT
    else:
        truth_rule(truth, case)
    case["truth_rule_holds"] = truth["rule_holds"]
    if truth["rule_holds"] is False:
        notes.append("truth.json: the repair's added/removed backpointers differ from expect.json + silent steps, see truth.json")

    # ---- write out
    od = os.path.join(out_root, name)
    shutil.rmtree(od, ignore_errors=True)
    os.makedirs(os.path.join(od, "list"))
    comp = collections.OrderedDict()
    for i in range(n):
        zst(os.path.join(img, "dev%d.img" % i), os.path.join(od, "dev%d.img.zst" % i))
        comp["dev%d.img.zst" % i] = os.path.getsize(os.path.join(od, "dev%d.img.zst" % i))
    for f in os.listdir(ld):
        zst(os.path.join(ld, f), os.path.join(od, "list", f + ".zst"))
    for f in ("fsck.txt", "fsck_repair.txt", "errors.txt", "fsck_after_repair.txt", "upgrade.txt"):
        if os.path.exists(os.path.join(wd, f)):
            shutil.copy(os.path.join(wd, f), os.path.join(od, f))
    case["compressed_bytes"] = comp
    notes += spec.get("notes", [])
    if notes:
        case["notes"] = notes
    if PASSPHRASE is not None:
        open(os.path.join(od, "passphrase.txt"), "w").write(PASSPHRASE + "\n")
    json.dump(exp, open(os.path.join(od, "expect.json"), "w"), indent=1)
    open(os.path.join(od, "expect.json"), "a").write("\n")
    json.dump(truth, open(os.path.join(od, "truth.json"), "w"), indent=1)
    open(os.path.join(od, "truth.json"), "a").write("\n")
    json.dump(case, open(os.path.join(od, "case.json"), "w"), indent=1)
    open(os.path.join(od, "case.json"), "a").write("\n")
    log("== %s: fsck -n exit %d, findings %s, other %s, compressed %s, truth rule %s" % (
        name, rc_n, exp["counts"], exp["other_counts"], dict(comp), truth["rule_holds"]))
    if not keep:
        for d in ("fsck_n", "fsck_n2", "fsck_y", "truth"):
            shutil.rmtree(os.path.join(wd, d), ignore_errors=True)


def reexpect(name, out_root):
    """Rebuild expect.json (and the counts in case.json) from the stored fsck outputs."""
    od = os.path.join(out_root, name)
    case = json.load(open(os.path.join(od, "case.json")), object_pairs_hook=collections.OrderedDict)
    rd = lambda f: open(os.path.join(od, f)).read() if os.path.exists(os.path.join(od, f)) else None
    cmd = " ".join(w for w in case["fsck_command"].split() if not w.endswith(".img"))
    exp = fsck2expect.build(name, rd("fsck.txt"), cmd, rd("errors.txt"), rd("fsck_repair.txt"))
    case["expected_counts"] = exp["counts"]
    case["other_counts"] = exp["other_counts"]
    case["consistency_check"] = exp["consistency_check"]
    json.dump(exp, open(os.path.join(od, "expect.json"), "w"), indent=1)
    open(os.path.join(od, "expect.json"), "a").write("\n")
    json.dump(case, open(os.path.join(od, "case.json"), "w"), indent=1)
    open(os.path.join(od, "case.json"), "a").write("\n")
    print("%s: expect.json rebuilt: %s %s" % (name, exp["counts"], exp["other_counts"]))


def bp_sort(p):
    return tuple(int(x) for x in p.split(":"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*")
    ap.add_argument("--out", default="/work/main/testdata/versions")
    ap.add_argument("--work", default="/tmp/mkcase")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--reexpect", action="store_true", help="only rebuild expect.json from the stored outputs")
    ap.add_argument("--recheck-nodes", action="store_true", help="only redo the btree-node findings note")
    a = ap.parse_args()
    if a.list or not a.cases:
        for k, v in CASES.items():
            print("%-22s %-8s %s" % (k, v["tool"], v["what"]))
        return
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    for c in a.cases:
        if a.reexpect:
            reexpect(c, a.out)
        elif a.recheck_nodes:
            recheck_nodes(c, a.out, a.work)
        else:
            make_case(c, a.out, a.work, a.keep)


if __name__ == "__main__":
    main()
