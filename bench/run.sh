#!/bin/sh
# Runs BenchmarkCheck (pipeline/bench_test.go) and prints a table setting
# bpcheck's time per check beside the real bcachefs fsck's backpointer
# passes (case.json pass_ms) on the same images. See bench/README.md.
#
#   bench/run.sh                 # -benchtime 20x -count 5, medians
#   BENCHTIME=50x COUNT=1 bench/run.sh
#   BENCH='BenchmarkCheck/case=many-extents' bench/run.sh
set -eu
cd "$(dirname "$0")/.."

benchtime=${BENCHTIME:-20x}
count=${COUNT:-5}
bench=${BENCH:-BenchmarkCheck}
out=$(mktemp "${TMPDIR:-/tmp}/bpcheck-bench.XXXXXX")
trap 'rm -f "$out" "$out.rc"' EXIT INT TERM

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(go version)"
if [ -r /proc/cpuinfo ]; then
	echo "# CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(getconf _NPROCESSORS_ONLN) online"
fi
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
echo "# go test -run x -bench '$bench' -benchtime $benchtime -count $count ./pipeline/"
{
	rc=0
	go test -run x -bench "$bench" -benchtime "$benchtime" -count "$count" ./pipeline/ 2>&1 || rc=$?
	echo "$rc" >"$out.rc"
} | tee "$out"
if [ "$(cat "$out.rc")" != 0 ]; then
	echo "bench/run.sh: go test failed" >&2
	exit 1
fi
echo
go run ./bench/compare < "$out"
