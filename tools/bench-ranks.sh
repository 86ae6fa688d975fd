#!/usr/bin/env bash
# Data-parallel scaling of the training step: `acai bench train` under `mpirun -np N` for each N, side by side in
# one run, as a markdown table of samples/s, all-reduce time per step and parallel efficiency.
#
#   tools/bench-ranks.sh [--ranks 1,2,4] [--models acai] [--devices cpu] [--batch 64] [--strong]
#                        [--windows 5] [--steps-per-window 5]
#
# --batch is the batch of one process (weak scaling: N processes train a global batch of N x batch, as data-parallel
# training is used); --strong keeps the global batch at --batch instead. Efficiency is samples/s at N over
# N x samples/s at 1 process. ACAI_BIN picks the binary (default .build/release/acai; build it with
# `swift build -c release`). Extra mpirun arguments: ACAI_MPIRUN_ARGS (e.g. "--hostfile hosts").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ranks=1,2,4 models=acai devices=cpu batch=64 strong=0 windows=5 steps=5
while (($#)); do
    case "$1" in
        --ranks) ranks="$2"; shift 2 ;;
        --models) models="$2"; shift 2 ;;
        --devices) devices="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --strong) strong=1; shift ;;
        --windows) windows="$2"; shift 2 ;;
        --steps-per-window) steps="$2"; shift 2 ;;
        *) echo "tools/bench-ranks.sh: unknown argument '$1' (see the comment at the top of the script)" >&2; exit 2 ;;
    esac
done
bin="${ACAI_BIN:-.build/release/acai}"
[[ -x "$bin" ]] || { echo "tools/bench-ranks.sh: $bin not found: swift build -c release, or set ACAI_BIN" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "tools/bench-ranks.sh: mpirun not found: bash tools/setup.sh installs Open MPI" >&2; exit 1; }
. tools/env.sh
root=()
[[ "$(id -u)" == 0 ]] && root=(--allow-run-as-root)

echo "| model | device | processes | global batch | ms/step | samples/s | allreduce ms/step | allreduce bytes/step | efficiency |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
declare -A base
IFS=, read -ra counts <<<"$ranks"
for n in "${counts[@]}"; do
    global=$((strong ? batch : batch * n))
    launch=()
    # One process runs as users run it alone, without mpirun (whose default binding would pin it to one core);
    # N processes run under mpirun, bound one per core while there are cores (each uses its share).
    # shellcheck disable=SC2206
    ((n > 1)) && launch=(mpirun "${root[@]}" --oversubscribe ${ACAI_MPIRUN_ARGS:-} -np "$n")
    out="$("${launch[@]}" "$bin" bench train --models "$models" --devices "$devices" \
        --batch "$global" --windows "$windows" --steps-per-window "$steps")"
    while IFS='|' read -r _ model device _ rowbatch ms rate _ _ _ _ procs allreduce bytes _; do
        model="${model// /}" device="${device// /}"
        [[ "$model" == model || "$model" == ---* || -z "$model" ]] && continue
        rate="${rate// /}" procs="${procs// /}"
        key="$model/$device"
        [[ -z "${base[$key]:-}" ]] && base[$key]="$rate"
        eff="$(awk -v r="$rate" -v b="${base[$key]}" -v n="$n" 'BEGIN { printf "%.2f", r / (n * b) }')"
        echo "| $model | $device | $n | ${rowbatch// /} | ${ms// /} | $rate | ${allreduce:- 0} | ${bytes:- 0} | $eff |"
    done <<<"$out"
done
