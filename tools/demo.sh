#!/usr/bin/env bash
# The main demo: installs missing system packages, builds the release `acai`, lists the devices and
# benchmarks the device ops.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tools/setup.sh
. tools/env.sh

echo "== swift build -c release --product acai =="
swift build -c release --product acai
acai="$(swift build -c release --show-bin-path)/acai"

echo "== acai devices =="
"$acai" devices

echo "== acai bench ops =="
"$acai" bench ops
