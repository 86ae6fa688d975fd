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

# swift test runs XCTest and Swift Testing one after the other; a runner with no tests still prints a closing
# "0 tests" line (Swift Testing's comes last), which reads as if nothing ran. Skip the runner no test uses,
# unless the arguments choose already.
args=("$@")
if [[ " ${args[*]-} " != *" --enable-swift-testing "* && " ${args[*]-} " != *" --disable-swift-testing "* ]] &&
    ! grep -rqsE '^[[:space:]]*([@a-z]+[[:space:]]+)*import[[:space:]]+Testing([[:space:]]|$)' Tests; then
    args+=(--disable-swift-testing)
fi
if [[ " ${args[*]-} " != *" --enable-xctest "* && " ${args[*]-} " != *" --disable-xctest "* ]] &&
    ! grep -rqsE '^[[:space:]]*([@a-z]+[[:space:]]+)*import[[:space:]]+XCTest([[:space:]]|$)' Tests; then
    args+=(--disable-xctest)
fi

echo "== swift test ${args[*]-} =="
exec swift test ${args[@]+"${args[@]}"}
