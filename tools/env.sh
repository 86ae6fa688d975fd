# Environment for building and running ACAI; sourced by tools/test.sh, tools/demo.sh and .ci/run
# (`. tools/env.sh`). Safe under `set -euo pipefail`; changes nothing but the variables below.
#
# POCL_CACHE_DIR: PoCL caches compiled kernels there, and silently reports zero OpenCL devices when it cannot
# create its cache folder, so point it at one that exists and is writable.

_acai_writable_dir() {
    mkdir -p -- "$1" 2>/dev/null && [ -d "$1" ] && [ -w "$1" ]
}

_acai_pocl_cache="${POCL_CACHE_DIR:-}"
if [ -z "$_acai_pocl_cache" ] || ! _acai_writable_dir "$_acai_pocl_cache"; then
    _acai_pocl_cache=""
    if [ -n "${XDG_CACHE_HOME:-}" ]; then
        _acai_pocl_cache="$XDG_CACHE_HOME/acai/pocl"
    elif [ -n "${HOME:-}" ]; then
        _acai_pocl_cache="$HOME/.cache/acai/pocl"
    fi
    if [ -z "$_acai_pocl_cache" ] || ! _acai_writable_dir "$_acai_pocl_cache"; then
        _acai_pocl_cache="${TMPDIR:-/tmp}/acai-pocl-$(id -u)"
        if ! _acai_writable_dir "$_acai_pocl_cache"; then
            _acai_pocl_cache="$(mktemp -d "${TMPDIR:-/tmp}/acai-pocl.XXXXXX")"
        fi
    fi
fi
export POCL_CACHE_DIR="$_acai_pocl_cache"
unset _acai_pocl_cache
unset -f _acai_writable_dir

# The Swift toolchain of these machines, where it is not on PATH already.
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
