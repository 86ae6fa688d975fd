#!/usr/bin/env bash
# Training throughput of ACAI and the plain AE on lines32 (batch 64), side by side in one run: this project's
# CPU and OpenCL devices (`acai bench train`), then the PyTorch and JAX ports in ../shared/peers.
# Creates .venv-peers (jax, torch, numpy, scipy, pillow from PyPI) on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. tools/env.sh
peers="${ACAI_SHARED:-$(cd .. && pwd)/shared}/peers"
[[ -f "$peers/acai_torch.py" ]] || { echo "tools/bench-peers.sh: $peers/acai_torch.py not found (set ACAI_SHARED)" >&2; exit 1; }
if [[ ! -x .venv-peers/bin/python ]]; then
    python3 -m venv .venv-peers
    .venv-peers/bin/pip install -q jax torch numpy scipy pillow
fi
swift build -c release --product acai
acai="$(swift build -c release --show-bin-path)/acai"

echo "== acai bench train (this project) =="
"$acai" bench train --models acai,ae
for mode in acai baseline; do
    echo "== PyTorch $mode (2 threads, channels_last) =="
    .venv-peers/bin/python "$peers/acai_torch.py" --mode "$mode" --threads 2 --channels_last
    echo "== JAX $mode =="
    .venv-peers/bin/python "$peers/acai_jax.py" --action bench --mode "$mode" --windows 9 --steps_per_window 20
done
