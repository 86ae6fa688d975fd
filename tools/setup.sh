#!/usr/bin/env bash
# Installs the Debian packages that ACAI builds and runs with (OpenCL ICD loader + headers, PoCL as a CPU OpenCL
# device, clinfo, OpenBLAS, LAPACKE, libpng, giflib, zlib, libjpeg, CMake, Ninja, pkg-config, and Open MPI for
# data-parallel runs). Idempotent: installs only what dpkg reports missing, and prints nothing when everything is there.
# Set ACAI_SKIP_SETUP=1 to skip it (e.g. on a machine whose packages are managed elsewhere).
set -euo pipefail

if [[ "${ACAI_SKIP_SETUP:-}" == 1 ]]; then
    exit 0
fi

die() {
    echo "tools/setup.sh: error: $*" >&2
    exit 1
}

packages=(ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo libpng-dev libopenblas-dev liblapacke-dev libgif-dev zlib1g-dev
          libjpeg62-turbo-dev cmake ninja-build pkg-config libopenmpi-dev openmpi-bin)

command -v dpkg-query >/dev/null 2>&1 ||
    die "dpkg-query not found: this script supports Debian/Ubuntu only. Install by hand: ${packages[*]}"

is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

missing=()
for package in "${packages[@]}"; do
    if ! is_installed "$package"; then
        # Any libjpeg development package will do (Ubuntu names it libjpeg-turbo8-dev; libjpeg-dev pulls it in).
        if [[ "$package" == libjpeg62-turbo-dev ]] && is_installed libjpeg-dev; then
            continue
        fi
        missing+=("$package")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ "$(id -u)" == 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    die "not root and sudo not found; install as root: apt-get install ${missing[*]}"
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: ${missing[*]}"

export DEBIAN_FRONTEND=noninteractive
apt_options=(-o Dpkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)

echo "tools/setup.sh: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_options[@]}" update -qq ||
    die "apt-get update failed"

# Fall back to libjpeg-dev where this distribution has no libjpeg62-turbo-dev.
for i in "${!missing[@]}"; do
    if [[ "${missing[$i]}" == libjpeg62-turbo-dev ]]; then
        candidate="$(apt-cache policy libjpeg62-turbo-dev 2>/dev/null | awk '/Candidate:/ { print $2 }')"
        if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
            missing[$i]=libjpeg-dev
        fi
    fi
done

"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_options[@]}" install -y -q "${missing[@]}" ||
    die "apt-get install ${missing[*]} failed"

still_missing=()
for package in "${missing[@]}"; do
    is_installed "$package" || still_missing+=("$package")
done
((${#still_missing[@]} == 0)) || die "still not installed after apt-get: ${still_missing[*]}"
echo "tools/setup.sh: installed ${missing[*]}"
