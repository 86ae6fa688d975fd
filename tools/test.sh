#!/usr/bin/env bash
# The test command: installs missing system packages, sets up the environment, shows the OpenCL devices, then
# runs `swift test` with any extra arguments (e.g. tools/test.sh --filter ACAIDeviceTests).
# Exits with swift test's status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tools/setup.sh
. tools/env.sh

echo "== OpenCL devices (clinfo -l; POCL_CACHE_DIR=$POCL_CACHE_DIR) =="
clinfo -l || echo "(clinfo -l failed with status $?)"

echo "== swift test $* =="
exec swift test "$@"
