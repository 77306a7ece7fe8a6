#!/usr/bin/env python3
"""Deterministic synthetic source tree for `bcachefs format --source`.

    gen_tree.py DIR --seed N --files N [--large N] [--content pool|blocks]

Writes DIR (which must not exist) with FILES regular files of 1-64 KiB (2 % empty),
spread over d000/s00/... directories, 1 % hard links, 1 % symlinks, and LARGE files
of 256-1024 KiB. The content is text-like and very compressible for `zstd --long`: every file is a
header line with its number, then a slice of one 192 KiB pool of text lines (from a
small vocabulary) at a random offset. So 64 MiB images compress to a few hundred KB,
while every file (and extent) differs.
mtime/atime are fixed. Prints a JSON summary on stdout.
"""
import argparse, json, os, random, sys

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima "
         "mike november oscar papa quebec romeo sierra tango uniform victor whiskey "
         "xray yankee zulu backpointer bucket extent btree journal alloc stripe").split()


POOL = None


def pool(rng):
    """192 KiB of text-like lines, made once per tree."""
    global POOL
    if POOL is None:
        out, n, line = [], 0, 0
        while n < 192 * 1024:
            s = "%05d %s\n" % (line, " ".join(rng.choice(WORDS) for _ in range(6)))
            out.append(s)
            n += len(s)
            line += 1
        POOL = "".join(out).encode()
    return POOL


MODE = "pool"


def content(rng, fileno, size):
    """A unique header line, then a slice of the pool (repeated as needed); with
    --content blocks: the header padded to 4 KiB with pool text, then the first 4 KiB of
    the pool over and over (so XOR parity of erasure-coded stripes stays compressible)."""
    p = pool(rng)
    if MODE == "blocks":
        head = b"file %06d\n" % fileno
        data = head + p[:4096 - len(head)]
        while len(data) < size:
            data += p[:4096]
        return data[:size]
    data = b"file %06d\n" % fileno
    off = rng.randrange(len(p))
    while len(data) < size:
        data += p[off:off + size - len(data)]
        off = 0
    return data[:size]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--files", type=int, required=True)
    ap.add_argument("--large", type=int, default=0)
    ap.add_argument("--content", choices=("pool", "blocks"), default="pool")
    ap.add_argument("--max-kib", type=int, default=64,
                    help="largest regular file (KiB); small for encrypted cases, whose data does not compress")
    a = ap.parse_args()
    global MODE
    MODE = a.content
    if os.path.exists(a.dir):
        sys.exit("gen_tree: %s exists" % a.dir)
    rng = random.Random(a.seed)
    os.makedirs(a.dir)
    dirs = []
    ndirs = max(1, a.files // 40)
    for i in range(ndirs):
        d = os.path.join(a.dir, "d%03d" % (i // 4), "s%02d" % (i % 4))
        os.makedirs(d, exist_ok=True)
        dirs.append(d)
    files, nbytes, empty = [], 0, 0
    for i in range(a.files):
        d = dirs[rng.randrange(len(dirs))]
        p = os.path.join(d, "f%06d.txt" % i)
        if rng.random() < 0.02:
            size = 0
            empty += 1
        else:
            size = rng.randint(1024, a.max_kib * 1024)
        with open(p, "wb") as f:
            f.write(content(rng, i, size))
        files.append(p)
        nbytes += size
    large = []
    for j in range(a.large):
        p = os.path.join(dirs[0], "large%02d.bin" % j)
        size = rng.randint(256, 1024) * 1024
        with open(p, "wb") as f:
            f.write(content(rng, 900000 + j, size))
        large.append(p)
        nbytes += size
    hard = sym = 0
    for i in range(max(1, a.files // 100)):
        src = files[rng.randrange(len(files))]
        d = dirs[rng.randrange(len(dirs))]
        os.link(src, os.path.join(d, "h%04d" % i))
        hard += 1
        os.symlink(os.path.relpath(files[rng.randrange(len(files))], d), os.path.join(d, "l%04d" % i))
        sym += 1
    t = 1700000000
    for root, ds, fs in os.walk(a.dir):
        for n in fs + ds:
            p = os.path.join(root, n)
            os.utime(p, (t, t), follow_symlinks=False)
    os.utime(a.dir, (t, t))
    nd = sum(len(ds) for _, ds, _ in os.walk(a.dir))
    print(json.dumps({"seed": a.seed, "regular_files": a.files + a.large, "large_files": a.large,
                      "empty_files": empty, "hardlinks": hard, "symlinks": sym, "dirs": nd,
                      "bytes": nbytes, "file_size_kib": [1, a.max_kib],
                      "large_size_mib": [0.25, 1.0] if a.large else None}))


if __name__ == "__main__":
    main()
