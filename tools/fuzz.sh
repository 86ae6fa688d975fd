#!/usr/bin/env bash
# tools/fuzz.sh [SECONDS] [TARGET...]: builds every libFuzzer target (Fuzz/<name>/main.swift, ACAI_FUZZ=1,
# -sanitize=fuzzer,address, scratch path .build-fuzz) and runs each for SECONDS (default 60) on a seed corpus
# made from ../shared/data and the files of a short training run (tools/fuzz-seeds.py), plus the files of
# Tests/Regressions/<name>/. Leak detection on, -timeout=10, -rss_limit_mb=2048 (so also a 2 GiB cap on one
# allocation). Prints per target the inputs run and the coverage reached (libFuzzer's cov/ft); exits non-zero
# on any crash, leak, timeout or out-of-memory, whose input libFuzzer writes to Tests/Regressions/<name>/
# (crash-*, leak-*, timeout-*, oom-*), where FuzzRegressionTests replays it in the ordinary tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-60}"
shift || true
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || { echo "usage: tools/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2; }

bash tools/setup.sh
. tools/env.sh
command -v python3 >/dev/null || { echo "tools/fuzz.sh: python3 is needed for the seed corpora" >&2; exit 1; }

if (($# > 0)); then
    targets=("$@")
else
    targets=()
    for main in Fuzz/*/main.swift; do targets+=("$(basename "$(dirname "$main")")"); done
fi

scratch=.build-fuzz
work="$scratch/work"
mkdir -p "$work"

# The targets come from the Fuzz/ folders the manifest lists when it runs: no manifest cache, and a fresh build
# plan (debug.yaml, description.json), so a newly added folder is a product at once.
rm -f "$scratch/debug.yaml" "$scratch"/*/debug/description.json
echo "== building ${#targets[@]} fuzz targets (ACAI_FUZZ=1 swift build -c debug --scratch-path $scratch) =="
for t in "${targets[@]}"; do
    ACAI_FUZZ=1 swift build -c debug --scratch-path "$scratch" --manifest-cache none --product "fuzz-$t" 2>&1 |
        grep -v "Cannot export local symbol" | tail -n 3
    [[ -x "$scratch/debug/fuzz-$t" ]] || { echo "tools/fuzz.sh: fuzz-$t did not build" >&2; exit 1; }
done

# Files a training run writes (checkpoint, options.json, summary.json, PNGs): a tiny run of the ordinary build.
echo "== seed corpora =="
acai=.build/debug/acai
if [[ ! -x "$acai" ]]; then
    swift build --product acai 2>&1 | tail -n 1
fi
run="$work/seed-run"
rm -rf "$run"
"$acai" train --model ae --kimg 0.0625 --eval-kimg 0.0625 --batch 16 --depth 2 --latent 2 --device cpu \
    --out "$run" >"$work/seed-run.log" 2>&1 || { echo "tools/fuzz.sh: the seed training run failed:" >&2; cat "$work/seed-run.log" >&2; exit 1; }
shared="${ACAI_SHARED:-../shared}"
[[ -d "$shared/data" ]] || echo "tools/fuzz.sh: warning: $shared/data is missing; seeds only from the training run"
rm -rf "$scratch/corpus"
python3 tools/fuzz-seeds.py --shared "$shared" --run "$run" --out "$scratch/corpus" "${targets[@]}"

failed=()
summary=()
for t in "${targets[@]}"; do
    regressions="Tests/Regressions/$t"
    mkdir -p "$regressions"
    log="$work/fuzz-$t.log"
    echo "== fuzz-$t: $seconds s =="
    set +e
    # SWIFT_BACKTRACE: Swift's own crash backtracer is off, so that libFuzzer reports a trap at once.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" "$scratch/debug/fuzz-$t" "$scratch/corpus/$t" "$regressions" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 -print_final_stats=1 \
        -artifact_prefix="$regressions/" >"$log" 2>&1
    rc=$?
    set -e
    # The last status line ("#N DONE cov: C ft: F ...", or the last one printed before a crash).
    stats="$(grep -E '^#[0-9]+[[:space:]]+[A-Z]+[[:space:]]+cov: ' "$log" | tail -n 1 || true)"
    inputs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    [[ -n "$inputs" ]] || inputs="$(sed -E -n 's/^#([0-9]+).*/\1/p' <<<"$stats")"
    cov="$(sed -E -n 's/.* cov: ([0-9]+).*/\1/p' <<<"$stats")"
    ft="$(sed -E -n 's/.* ft: ([0-9]+).*/\1/p' <<<"$stats")"
    corpus="$(sed -E -n 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$stats")"
    line="$(printf '%-11s inputs %10s  cov %5s  ft %6s  corpus %5s' "$t" "${inputs:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}")"
    if ((rc != 0)); then
        artifact="$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)"
        grep -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|Fatal error|SUMMARY' "$log" | head -n 5 || true
        line="$line  FAILED (exit $rc${artifact:+, input $artifact}; log $log)"
        failed+=("$t")
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "== fuzzing summary ($seconds s per target; logs in $work) =="
printf '%s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
    echo "tools/fuzz.sh: FAILED: ${failed[*]} (inputs kept in Tests/Regressions/<target>/; fix, then run swift test)" >&2
    exit 1
fi
echo "tools/fuzz.sh: ${#targets[@]} targets, no crash, leak, timeout or OOM"
