#!/usr/bin/env bash
# Whole-process A/B of two builds of bpcheck: runs them in turn, round
# after round, so that both see the same host load, and prints the
# medians of each one's CPU and wall time and the medians of the
# per-round ratios B/A (docs/bench.md reports speed changes this way).
#
#   bench/ab.sh [-n ROUNDS] A B -- ARGS...
#
# A and B are git revisions of this repository (built with the flags
# README.md gives, in a temporary worktree) or paths to bpcheck
# binaries; ARGS are the arguments of each run, e.g.
#
#   bench/ab.sh -n 15 HEAD~1 HEAD -- check /path/dev0.img
#   bench/ab.sh /tmp/bpcheck-old ./bpcheck -- check --workers 1 img
#
# CPU is user + system time of the process and its threads (bash's
# `time`), wall is start to exit. Every run's output goes to /dev/null;
# a run whose exit status is not A's first one's fails the comparison
# (a build that got faster by doing less must not pass unnoticed).
set -eu
rounds=10
if [ "${1:-}" = -n ]; then
	rounds=$2
	shift 2
fi
[ $# -ge 3 ] && [ "$3" = -- ] || {
	echo "usage: $0 [-n ROUNDS] A B -- ARGS..." >&2
	exit 2
}
a=$1 b=$2
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bpcheck-ab.XXXXXX")
cleanup() {
	for d in "$tmp"/wt-*; do
		[ -d "$d" ] && git -C "$root" worktree remove --force "$d" >/dev/null 2>&1
	done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# binary REV NAME: the path of REV's bpcheck (built when REV is a revision).
binary() {
	if [ -x "$1" ] && [ -f "$1" ]; then
		readlink -f "$1"
		return
	fi
	local wt="$tmp/wt-$2"
	# Inside $(...) set -e does not hold: every step checks itself.
	git -C "$root" worktree add --detach -q "$wt" "$1" >&2 || return 1
	(cd "$wt" && CGO_ENABLED=0 go build -trimpath -o "$tmp/bpcheck-$2" ./cmd/bpcheck) >&2 || return 1
	echo "$tmp/bpcheck-$2"
}
binA=$(binary "$a" a) || { echo "$0: cannot build or find A ($a)" >&2; exit 1; }
binB=$(binary "$b" b) || { echo "$0: cannot build or find B ($b)" >&2; exit 1; }

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'), $(getconf _NPROCESSORS_ONLN) CPUs"
echo "# A: $a  B: $b  args: $*  rounds: $rounds"
# One untimed run of each: binaries and images in the page cache.
set +e
"$binA" "$@" >/dev/null 2>&1
want=$?
"$binB" "$@" >/dev/null 2>&1
set -e
if [ "$want" -ge 126 ]; then # not run (126, 127) or killed by a signal
	echo "$0: A's first run exited $want" >&2
	exit 1
fi
TIMEFORMAT='%3R %3U %3S'
run() { # run BIN: prints "wall cpu status" in ms
	local t st
	set +e
	t=$({ time "$1" "${@:2}" >/dev/null 2>&1; } 2>&1)
	st=$?
	set -e
	echo "$t" | awk -v s="$st" '{printf "%.1f %.1f %d\n", $1 * 1000, ($2 + $3) * 1000, s}'
}
for r in $(seq "$rounds"); do
	# The order alternates too: the second of a pair may find the caches
	# the first one warmed.
	if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
	for w in $order; do
		bin=$binA
		[ "$w" = B ] && bin=$binB
		read -r wall cpu st < <(run "$bin" "$@")
		if [ "$st" != "$want" ]; then
			echo "round $r: $w exited $st, A's first run $want" >&2
			exit 1
		fi
		echo "$r $w $wall $cpu" | tee -a "$tmp/runs"
	done
done
awk '
function median(arr, n,   i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && arr[j] < arr[j-1]; j--) { t = arr[j]; arr[j] = arr[j-1]; arr[j-1] = t }
	return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
{ wall[$1, $2] = $3; cpu[$1, $2] = $4; if ($1 > n) n = $1 }
END {
	for (r = 1; r <= n; r++) {
		wa[r] = wall[r, "A"]; wb[r] = wall[r, "B"]; ca[r] = cpu[r, "A"]; cb[r] = cpu[r, "B"]
		rw[r] = wall[r, "B"] / wall[r, "A"]; rc[r] = (cpu[r, "A"] > 0) ? cpu[r, "B"] / cpu[r, "A"] : 1
	}
	printf "A: wall %.1f ms, CPU %.1f ms (medians)\n", median(wa, n), median(ca, n)
	printf "B: wall %.1f ms, CPU %.1f ms (medians)\n", median(wb, n), median(cb, n)
	printf "B/A: wall %.3fx, CPU %.3fx (medians of %d per-round ratios)\n", median(rw, n), median(rc, n), n
}' "$tmp/runs"
