#!/usr/bin/env bash
# Times the real bcachefs fsck's three backpointer passes and bpcheck's
# whole check on the same images, alternating round after round so that
# both see the same host load (docs/bench.md, "Against the real fsck,
# same machine"). The fsck is not part of this repository: point
# BCACHEFS at a bcachefs-tools binary.
#
#   BCACHEFS=/path/to/bcachefs ROUNDS=5 bench/vsfsck.sh dev0.img [dev1.img ...]
#
# Per round: one fsck run (fsck -n -K -o
# fsck,recovery_passes=check_backpointers_to_extents: the passes the test
# data's fsck.txt ran; from v1.38.5 a recovery_passes= option alone drops
# the fsck passes, and the leading "fsck" is harmless in older tools;
# FSCK_OPTS overrides it; v1.9.4's fsck knows neither -K nor -o and runs
# every pass by default: give it FSCK_FLAGS= (empty), which replaces
# "-K -o $FSCK_OPTS"; timed per pass by bench/fsckpasses) and three
# `bpcheck check --json` processes (the check's own time, the summary's
# "seconds", and the whole process's wall time). It prints every run,
# then the medians and their ratios, and the medians of each run's ratio
# to the fsck run of its round.
set -eu
: "${BCACHEFS:?set BCACHEFS to a bcachefs-tools binary}"
rounds=${ROUNDS:-5}
opts=${FSCK_OPTS:-fsck,recovery_passes=check_backpointers_to_extents}
flags=${FSCK_FLAGS--K -o $opts}
[ $# -gt 0 ] || { echo "usage: BCACHEFS=... $0 dev0.img [dev1.img ...]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bpcheck-vsfsck.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
# Built as README.md says (static: no dynamic loader at start-up).
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$tmp/bpcheck" ./cmd/bpcheck && go build -o "$tmp/fsckpasses" ./bench/fsckpasses)

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'), $(getconf _NPROCESSORS_ONLN) CPUs"
# One untimed run of each: the images and both binaries in the page cache.
"$tmp/bpcheck" check "$@" >/dev/null 2>&1 || true
"$BCACHEFS" fsck -n $flags "$@" >/dev/null 2>&1 || true
r=0
while [ "$r" -lt "$rounds" ]; do
	r=$((r + 1))
	# $flags is split into words on purpose (empty for v1.9.4).
	# shellcheck disable=SC2086
	"$tmp/fsckpasses" -runs 1 -- stdbuf -o0 -e0 "$BCACHEFS" fsck -n $flags \
		"$@" >"$tmp/f.json" 2>/dev/null || true
	f=$(grep -o '"bp_passes_ms": *[0-9.]*' "$tmp/f.json" | grep -o '[0-9.]*$')
	echo "round $r fsck_bp_passes_ms $f"
	echo "$f" >>"$tmp/fsck"
	for i in 1 2 3; do
		t0=$EPOCHREALTIME
		"$tmp/bpcheck" check --json "$@" >"$tmp/b.json" 2>/dev/null || true
		t1=$EPOCHREALTIME
		b=$(grep -o '"seconds":[0-9.]*' "$tmp/b.json" | head -1 | cut -d: -f2)
		echo "round $r bpcheck_ms $(echo "$b" | awk '{printf "%.1f", $1 * 1000}')"
		echo "$b" | awk '{printf "%.3f\n", $1 * 1000}' >>"$tmp/bp"
		# The whole process, start to exit (bash's clock: no process
		# is started to read it).
		w=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) * 1000}')
		echo "round $r bpcheck_whole_ms $w"
		echo "$w" >>"$tmp/bw"
		echo "$f $b $w" >>"$tmp/pairs"
	done
done
median() { sort -n "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
fm=$(median "$tmp/fsck")
bm=$(median "$tmp/bp")
wm=$(median "$tmp/bw")
echo "median fsck 3 bp passes ${fm} ms, bpcheck ${bm} ms, ratio $(awk -v f="$fm" -v b="$bm" 'BEGIN {printf "%.1f", f / b}')"
# Per run, the ratio to the fsck run of its round (alternation keeps both
# under the same host load): medians of those ratios.
awk '{print $1 / ($2 * 1000)}' "$tmp/pairs" >"$tmp/rc"
awk '{print $1 / $3}' "$tmp/pairs" >"$tmp/rw"
echo "median whole process ${wm} ms, ratio $(awk -v f="$fm" -v b="$wm" 'BEGIN {printf "%.1f", f / b}'); per-run ratios to their round's fsck: check alone $(median "$tmp/rc" | awk '{printf "%.1f", $1}'), whole process $(median "$tmp/rw" | awk '{printf "%.1f", $1}')"
