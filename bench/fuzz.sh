#!/usr/bin/env bash
# Runs every fuzz target of bpcheck for a chosen time and prints the
# execution counts. Crashers are kept by go test under each package's
# testdata/fuzz/ and then run as regression tests by `go test ./...`.
# A target reads "deadline", not FAILED, when go test failed with only its
# own -fuzztime deadline and wrote no failing input (a race in Go's
# fuzzing coordinator, golang/go#75804); FAILED makes the exit status 1.
#
#   bench/fuzz.sh            # 60 s per target
#   FUZZTIME=10m bench/fuzz.sh
#   TARGETS="./btreeio:FuzzNode" FUZZTIME=1h bench/fuzz.sh
#   FUZZTIME=1s bench/fuzz.sh   # every target found, briefly
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-60s}
# Every Fuzz function of the repository's test files, unless TARGETS names some.
if [ -z "${TARGETS:-}" ]; then
  TARGETS=$(git grep -E '^func Fuzz[A-Za-z0-9_]*' -- '*_test.go' |
    sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*).*#./\1:\2#' | sort -u | tr '\n' ' ')
fi
status=0
# files in a target's corpus directory (0 when there is none)
corpus_files() { { find "$1" -type f 2>/dev/null || true; } | wc -l; }
for t in $TARGETS; do
  pkg=${t%%:*}
  fn=${t##*:}
  log=$(mktemp)
  corpus="$pkg/testdata/fuzz/$fn"
  before=$(corpus_files "$corpus")
  if go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 2s "$pkg" >"$log" 2>&1; then
    result=ok
  elif [ "$(corpus_files "$corpus")" = "$before" ] &&
    tail -6 "$log" | grep -q 'context deadline exceeded' && ! grep -q 'panic:\|Failing input' "$log"; then
    # Go's fuzzing coordinator can report its own -fuzztime deadline as
    # a failure when a worker is mid-call as it expires (golang/go#75804,
    # fixed in go1.27): no input failed and none was written.
    result=deadline
  else
    result=FAILED
    status=1
  fi
  execs=$({ grep -o 'execs: [0-9]*' "$log" || true; } | tail -1 | awk '{print $2}')
  printf '%-10s %-20s %-7s %12s execs in %s\n' "$pkg" "$fn" "$result" "${execs:-?}" "$FUZZTIME"
  if [ "$result" = FAILED ]; then
    tail -30 "$log"
  fi
  rm -f "$log"
done
exit $status
