#!/usr/bin/env bash
# kill -9 at any moment: tools/chaos.sh [N]  (default 10 trials)
#
# Trains a small plain AE on lines on the CPU device, once straight through (the reference), then again
# while killing it with SIGKILL at a random instant and resuming it, N times (a run that finishes starts a
# fresh one, so every trial kills something). After every kill: every file of the run folder must be whole
# (`acai check-run`), and the resumed run may lose at most one evaluation interval of work. Every run that
# reaches its end must log exactly the reference's evaluations (metrics and mean losses, bit for bit: a
# resumed CPU run reproduces an uninterrupted one). Exits non-zero on the first failure.
# ACAI_BIN=path uses that binary instead of building the debug one; CHAOS_KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. tools/env.sh

trials="${1:-10}"
[[ "$trials" =~ ^[1-9][0-9]*$ ]] || { echo "tools/chaos.sh: N must be a positive number of trials, got '$trials'" >&2; exit 2; }
if [[ -z "${ACAI_BIN:-}" ]]; then
    swift build --product acai >/dev/null
    ACAI_BIN="$(swift build --show-bin-path)/acai"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/acai-chaos.XXXXXX")"
[[ "${CHAOS_KEEP:-}" == 1 ]] || trap 'rm -rf "$work"' EXIT
args=(--model ae --kimg 2 --eval-kimg 0.25 --batch 16 --seed 3 --device cpu --depth 8)
eval_samples=256

fail() {
    echo "tools/chaos.sh: FAILED: $*" >&2
    echo "(work folder kept: $work)" >&2
    trap - EXIT
    exit 1
}

started=$(date +%s.%N)
"$ACAI_BIN" train "${args[@]}" --out "$work/reference" >"$work/reference.log" 2>&1 || fail "the reference run failed: $(tail -3 "$work/reference.log")"
duration=$(python3 -c "import time; print(max(time.time() - $started, 1.0))")
echo "reference run: ${duration%.*} s ($work/reference)"

# The samples of a checkpoint (0 when there is none): its JSON header follows 8 magic bytes and a length.
checkpoint_samples() {
    python3 - "$1" <<'EOF'
import json, struct, sys
try:
    data = open(sys.argv[1], "rb").read()
except FileNotFoundError:
    print(0); sys.exit()
n = struct.unpack("<Q", data[8:16])[0]
print(json.loads(data[16:16 + n])["samples"])
EOF
}

# Same evaluations as the reference: samples, metrics and mean losses of every record.
same_as_reference() {
    python3 - "$work/reference/metrics.jsonl" "$1/metrics.jsonl" <<'EOF'
import json, sys
def load(path):
    keep = ("samples", "step", "meanDistance", "smoothness", "probeAccuracy", "losses")
    return [{k: r.get(k) for k in keep} for r in map(json.loads, open(path))]
a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b:
    for x, y in zip(a, b):
        if x != y: print("reference:", x, "\nresumed:  ", y); break
    else: print(len(a), "records in the reference,", len(b), "in the resumed run")
    sys.exit(1)
EOF
}

run=0
folder="$work/run-$run"
kills=0
completed=0
max_lost=0
for trial in $(seq 1 "$trials"); do
    resume=()
    [[ -f "$folder/options.json" ]] && resume=(--resume)
    before=$(checkpoint_samples "$folder/checkpoint.bin")
    "$ACAI_BIN" train "${args[@]}" --out "$folder" "${resume[@]}" >"$work/trial-$trial.log" 2>&1 &
    pid=$!
    delay=$(python3 -c "import random; print(round(random.uniform(0.05, $duration), 3))")
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    status=0
    wait "$pid" || status=$?
    "$ACAI_BIN" check-run --run "$folder" >"$work/check-$trial.log" 2>&1 ||
        fail "trial $trial (killed after $delay s): $(cat "$work/check-$trial.log")"
    after=$(checkpoint_samples "$folder/checkpoint.bin")
    # Work lost: evaluations the killed process logged past the checkpoint it left (at most one interval).
    last_eval=$( (grep -o 'eval at [0-9.]* kimg' "$work/trial-$trial.log" || true) | tail -1 | awk '{print int($3 * 1024 + 0.5)}')
    last_eval=${last_eval:-$before}
    lost=$((last_eval > after ? last_eval - after : 0))
    ((lost <= eval_samples)) || fail "trial $trial lost $lost samples of work (checkpoint at $after, last evaluation at $last_eval)"
    if ((lost > max_lost)); then max_lost=$lost; fi
    ((after >= before)) || fail "trial $trial: the checkpoint went back from $before to $after samples"
    if [[ -f "$folder/summary.json" ]]; then
        ((status == 0)) || fail "trial $trial: the run wrote its summary but exited with $status"
        same_as_reference "$folder" || fail "run $run (ended in trial $trial) differs from the reference"
        completed=$((completed + 1))
        run=$((run + 1))
        folder="$work/run-$run"
    fi
done
# Finish the last run and compare it too.
if [[ -f "$folder/options.json" && ! -f "$folder/summary.json" ]]; then
    "$ACAI_BIN" train "${args[@]}" --out "$folder" --resume >"$work/final.log" 2>&1 || fail "the final resume failed: $(tail -3 "$work/final.log")"
    "$ACAI_BIN" check-run --run "$folder" >/dev/null || fail "the finished run's folder does not check"
    same_as_reference "$folder" || fail "the last run differs from the reference"
    completed=$((completed + 1))
fi
echo "tools/chaos.sh: $trials trials, $kills kills, $completed runs completed and equal to the reference, at most $max_lost samples of work lost (evaluation interval $eval_samples)"
