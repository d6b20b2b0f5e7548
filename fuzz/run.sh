#!/bin/sh
# Run the fuzz targets one after another and print one summary line per
# target:
#
#   fuzz TARGET: N executions, M crashes
#
# usage: fuzz/run.sh [-t SECONDS | -n RUNS | -m] [-j JOBS] [TARGET ...]
#   -t SECONDS  run each target this long (make fuzz, default 60)
#   -n RUNS     run each target for this many inputs in all (make torture:
#               1000000), shared between the jobs
#   -j JOBS     fuzzer processes per target (default: FUZZ_JOBS, else one
#               per CPU); they share the corpus directory
#   -m          merge into fuzz/corpus/TARGET the inputs earlier runs kept
#               that reach new code (then commit them)
#
# Needs cargo-fuzz; installed into target/cargo-fuzz when missing.  Works
# on the stable toolchain (RUSTC_BOOTSTRAP=1 for the sanitizer flags).
# Each target starts from fuzz/corpus/TARGET plus what earlier runs kept
# in target/fuzz/corpus/TARGET; a crash or hang is saved in
# target/fuzz/artifacts/TARGET/ — fix it, then copy the input to
# fuzz/regressions/TARGET/ so `cargo test` replays it for good.
set -eu

cd "$(dirname "$0")/.."
top=$(pwd)
seconds=60
runs=""
merge=""
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
while getopts t:n:j:m o; do
    case $o in
    t) seconds=$OPTARG ;;
    n) runs=$OPTARG ;;
    j) jobs=$OPTARG ;;
    m) merge=yes ;;
    *) sed -n '2,22p' "$0" >&2; exit 64 ;;
    esac
done
case "$jobs$seconds$runs" in
*[!0-9]*) echo "fuzz/run.sh: -t, -n and -j take numbers" >&2; exit 64 ;;
esac
[ "$jobs" -ge 1 ] || jobs=1
if [ -n "$runs" ]; then
    # libFuzzer's -runs counts per process: split the total.
    limit="-runs=$(((runs + jobs - 1) / jobs))"
else
    limit="-max_total_time=$seconds"
fi
shift $((OPTIND - 1))
targets=${*:-$(ls fuzz/fuzz_targets | sed 's/\.rs$//')}

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    if [ ! -x target/cargo-fuzz/bin/cargo-fuzz ]; then
        echo "fuzz: installing cargo-fuzz into target/cargo-fuzz" >&2
        cargo install cargo-fuzz --locked --root target/cargo-fuzz >&2
    fi
    PATH="$top/target/cargo-fuzz/bin:$PATH"
    export PATH
fi

sanitizer=${FUZZ_SANITIZER:-address}
cargo fuzz build --fuzz-dir fuzz --target-dir target/fuzz -s "$sanitizer" >&2
bin=$top/target/fuzz/$(rustc -vV | sed -n 's/^host: //p')/release
# AddressSanitizer still catches overflows and use-after-free; it only
# stops recording a stack per allocation and filling new memory, which
# cost a quarter of each execution.
ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0:max_malloc_fill_size=0:quarantine_size_mb=16}
export ASAN_OPTIONS

# The targets' private roots (see src/fuzzing.rs), in memory when possible:
# the mailbox and table targets write and fsync files at every input.
scratch=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && scratch=/dev/shm
MAILROOM_FUZZ_DIR=$(mktemp -d "$scratch/mailroom-fuzz.XXXXXX")
export MAILROOM_FUZZ_DIR
trap 'rm -rf "$MAILROOM_FUZZ_DIR"' EXIT
trap 'exit 130' INT TERM

if [ -n "$merge" ]; then
    for t in $targets; do
        mkdir -p "target/fuzz/corpus/$t"
        "$bin/$t" "fuzz/corpus/$t" "target/fuzz/corpus/$t" -merge=1 -timeout=10 \
            -max_len=65536 >"target/fuzz/merge-$t.log" 2>&1
        echo "fuzz $t: $(ls "fuzz/corpus/$t" | wc -l) inputs in fuzz/corpus/$t"
    done
    exit 0
fi

status=0
summary=""
for t in $targets; do
    corpus=$top/target/fuzz/corpus/$t
    artifacts=$top/target/fuzz/artifacts/$t
    logs=$top/target/fuzz/logs/$t
    rm -rf "$logs"
    mkdir -p "$corpus" "$artifacts" "$logs"
    before=$(ls "$artifacts" | wc -l)
    # JOBS processes, each writing fuzz-N.log in $logs; they share the
    # corpus.  -timeout: an input that takes 10 s is a hang;
    # -rss_limit_mb: a runaway allocation.  A job stops at its first crash.
    (cd "$logs" && "$bin/$t" "$corpus" "$top/fuzz/corpus/$t" \
        "$limit" -jobs="$jobs" -workers="$jobs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" \
        >"$logs/jobs.log" 2>&1) || true
    execs=$(cat "$logs"/fuzz-*.log 2>/dev/null |
        sed -n 's/^stat::number_of_executed_units: *//p' | awk '{ n += $1 } END { if (NR) print n }')
    crashes=$(($(ls "$artifacts" | wc -l) - before))
    line="fuzz $t: ${execs:-0} executions, $crashes crashes"
    if [ -z "$execs" ] && [ "$crashes" -eq 0 ]; then
        line="$line (no statistics: see $logs)"
        status=1
    fi
    if [ "$crashes" -gt 0 ]; then
        status=1
        line="$line (inputs in $artifacts, logs in $logs)"
    fi
    echo "$line"
    summary="$summary$line
"
done
echo "--- fuzz summary"
printf %s "$summary"
exit $status
