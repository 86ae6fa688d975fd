#!/usr/bin/env bash
# Training throughput of ACAI and the plain AE on lines32 (batch 64), side by side in one run: this project's
# CPU and OpenCL devices (`acai bench train`), then the PyTorch and JAX ports in ../shared/peers.
# Creates .venv-peers (jax, torch, numpy, scipy, pillow from PyPI) on first use.
#
#   tools/bench-peers.sh                 # every device, PyTorch and JAX, once
#   tools/bench-peers.sh --cpu-rounds 3  # the CPU device (1 replica and --replicas 2) against PyTorch, in 3
#                                        # alternating rounds (this machine's speed drifts between minutes),
#                                        # then each round's ratios
# ACAI=path/to/acai uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. tools/env.sh
peers="${ACAI_SHARED:-$(cd .. && pwd)/shared}/peers"
[[ -f "$peers/acai_torch.py" ]] || { echo "tools/bench-peers.sh: $peers/acai_torch.py not found (set ACAI_SHARED)" >&2; exit 1; }
rounds=0
if [[ "${1-}" == "--cpu-rounds" ]]; then
    rounds="${2:?--cpu-rounds needs a count}"
    [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "tools/bench-peers.sh: --cpu-rounds wants a positive count, got '$rounds'" >&2; exit 2; }
elif [[ $# -gt 0 ]]; then
    echo "tools/bench-peers.sh: unknown option '$1' (expected --cpu-rounds N)" >&2
    exit 2
fi
if [[ ! -x .venv-peers/bin/python ]]; then
    python3 -m venv .venv-peers
    .venv-peers/bin/pip install -q jax torch numpy scipy pillow
fi
if [[ -z "${ACAI:-}" ]]; then
    swift build -c release --product acai
    ACAI="$(swift build -c release --show-bin-path)/acai"
fi
torch() { .venv-peers/bin/python "$peers/acai_torch.py" --mode "$1" --threads 2 --channels_last "${@:2}"; }

if [[ "$rounds" == 0 ]]; then
    echo "== acai bench train (this project) =="
    "$ACAI" bench train --models acai,ae
    for mode in acai baseline; do
        echo "== PyTorch $mode (2 threads, channels_last) =="
        torch "$mode"
        echo "== JAX $mode =="
        .venv-peers/bin/python "$peers/acai_jax.py" --action bench --mode "$mode" --windows 9 --steps_per_window 20
    done
    exit 0
fi

# ms/step of the model's row in an `acai bench train` table.
ms() { awk -F'|' -v m="$1" '$2 ~ "^ *"m" *$" && $4 ~ /plan/ { gsub(/ /, "", $6); print $6 }'; }
# The quiet-window median of a PyTorch run's JSON.
torch_ms() { sed -n 's/.*"step_ms_quiet_windows_median": \([0-9.]*\).*/\1/p'; }
summary=()
for round in $(seq 1 "$rounds"); do
    echo "== round $round: acai bench train --devices cpu, then --replicas 2, then PyTorch (2 threads) =="
    one="$("$ACAI" bench train --models acai,ae --devices cpu --windows 7)"
    two="$("$ACAI" bench train --models acai,ae --devices cpu --windows 7 --replicas 2)"
    echo "$one"; echo "$two"
    t_acai="$(torch acai --windows 7 --steps_per_window 10 | torch_ms)"
    t_ae="$(torch baseline --windows 7 --steps_per_window 10 | torch_ms)"
    echo "PyTorch: acai $t_acai ms/step, baseline $t_ae ms/step"
    a1="$(ms acai <<<"$one")" a2="$(ms acai <<<"$two")" e1="$(ms ae <<<"$one")" e2="$(ms ae <<<"$two")"
    summary+=("$(awk -v r="$round" -v a1="$a1" -v a2="$a2" -v ta="$t_acai" -v e1="$e1" -v e2="$e2" -v te="$t_ae" \
        'BEGIN { printf "| %d | %.1f / %.1f / %.1f | %.2f / %.2f | %.1f / %.1f / %.1f | %.2f / %.2f |", r, a1, a2, ta, ta / a1, ta / a2, e1, e2, te, te / e1, te / e2 }')")
done
echo
echo "| round | ACAI ms/step: 1 replica / 2 replicas / PyTorch | ACAI vs PyTorch | AE ms/step: 1 / 2 / PyTorch | AE vs PyTorch |"
echo "|---:|---:|---:|---:|---:|"
printf '%s\n' "${summary[@]}"
