#!/usr/bin/env bash
# The main job: installs missing system packages, builds the release `acai`, lists the devices, then trains
# ACAI and the plain autoencoder on the lines benchmark on the device `auto` picks (about 11 minutes of training
# on 2 CPU cores, ~21 with the first build on a slow machine; --minutes M caps each model) and prints their Mean
# Distance and Smoothness beside the paper's. Extra arguments go to `acai demo` (e.g. --kimg 64, --minutes 4).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tools/setup.sh
. tools/env.sh

echo "== swift build -c release --product acai =="
swift build -c release --product acai
acai="$(swift build -c release --show-bin-path)/acai"

echo "== acai devices =="
"$acai" devices

echo "== acai demo $* =="
"$acai" demo "$@"
