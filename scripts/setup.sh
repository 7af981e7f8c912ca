#!/usr/bin/env bash
# Installs ONNX Runtime 1.31.1 into this checkout's .onnxruntime/ folder, where the
# library and its tests find it without any configuration.
#
#   scripts/setup.sh          CPU runtime -> .onnxruntime/cpu/libonnxruntime.so.1.31.1
#   scripts/setup.sh --gpu    also the CUDA runtime and its CUDA 13 / cuDNN 9 libraries
#                             -> .onnxruntime/gpu/ (several GB)
#
# The runtime comes from PyPI's `onnxruntime` / `onnxruntime-gpu` wheels: pip only
# downloads them, nothing is installed into any Python environment, and only the
# shared libraries are unpacked. The onnxruntime wheels are checked against the
# sha256 sums pinned below (the CUDA libraries come over pip's HTTPS, unpinned).
# Running the script again when everything is in place does nothing.
#
# Needs python3 with pip. On a fresh Debian 12 run as root it installs `python3-pip`
# with apt-get; otherwise it prints the command to run.
set -euo pipefail

readonly ORT_VERSION=1.31.1
readonly LIB_NAME="libonnxruntime.so.${ORT_VERSION}"
# The wheels are fetched for CPython 3.11 whatever the host's Python is: only the
# shared library inside is used, and it does not depend on Python.
readonly PY_VERSION=3.11

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    echo "setup: $*" >&2
    exit 1
}

gpu=0
for arg in "$@"; do
    case "$arg" in
        --gpu) gpu=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.onnxruntime"

case "$(uname -m)" in
    x86_64)
        arch=x86_64
        cpu_wheel_sha256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
        cpu_lib_sha256=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
        gpu_wheel_sha256=e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6
        ;;
    aarch64 | arm64)
        arch=aarch64
        cpu_wheel_sha256=da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3
        cpu_lib_sha256=8aa3b76b28c778a2b1dd660d34161adb1d508c9ccd04ff9dc80e26eca5df8467
        gpu_wheel_sha256=""
        ;;
    *) die "no ONNX Runtime ${ORT_VERSION} wheel is pinned for $(uname -m) (x86_64 and aarch64 are)" ;;
esac
[ "$(uname -s)" = Linux ] || die "this script installs the Linux runtime; on $(uname -s) set ORT_DYLIB_PATH to an ONNX Runtime >= 1.17 library"

# pip's flags for "a wheel for CPython 3.11 on this architecture", independent of the host.
pip_target=(
    --only-binary=:all: --python-version "$PY_VERSION" --implementation cp
    --abi cp311 --abi none
    --platform "manylinux_2_28_${arch}" --platform "manylinux_2_17_${arch}"
    --platform "manylinux2014_${arch}"
)

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

ensure_pip() {
    if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: python3/pip missing; installing python3-pip with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pip
    else
        die "python3 with pip is needed; install it with: sudo apt-get install -y python3-pip"
    fi
}

# download_wheel DIR SHA256 REQUIREMENT: fetches one wheel without dependencies into
# DIR and checks its sha256; prints the wheel's path.
download_wheel() {
    local dir="$1" want="$2" requirement="$3" wheel got
    python3 -m pip download --quiet --no-deps "${pip_target[@]}" --dest "$dir" "$requirement" >&2
    wheel="$(ls "$dir"/*.whl)"
    got="$(sha256_of "$wheel")"
    [ "$got" = "$want" ] || die "$(basename "$wheel"): sha256 is $got, expected $want"
    echo "$wheel"
}

# extract WHEEL DEST_DIR MEMBER...: unpacks the named members into DEST_DIR (flat),
# each through a temporary name so that an interrupted run leaves no partial file.
extract() {
    python3 - "$@" <<'EOF'
import os, sys, zipfile
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for member in members:
        target = os.path.join(dest, os.path.basename(member))
        with z.open(member) as src, open(target + ".part", "wb") as out:
            out.write(src.read())
        os.chmod(target + ".part", 0o755)
        os.replace(target + ".part", target)
EOF
}

install_cpu() {
    local lib="$dest/cpu/$LIB_NAME" tmp wheel got
    if [ -f "$lib" ] && [ "$(sha256_of "$lib")" = "$cpu_lib_sha256" ]; then
        echo "setup: ONNX Runtime ${ORT_VERSION} (CPU) already installed at $lib"
        return
    fi
    ensure_pip
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "setup: downloading onnxruntime==${ORT_VERSION} from PyPI"
    wheel="$(download_wheel "$tmp" "$cpu_wheel_sha256" "onnxruntime==${ORT_VERSION}")"
    extract "$wheel" "$dest/cpu" "onnxruntime/capi/$LIB_NAME"
    got="$(sha256_of "$lib")"
    [ "$got" = "$cpu_lib_sha256" ] || die "$lib: sha256 is $got, expected $cpu_lib_sha256"
    rm -rf "$tmp"
    trap - EXIT
    echo "setup: installed ONNX Runtime ${ORT_VERSION} (CPU) at $lib"
}

install_gpu() {
    local dir="$dest/gpu" marker="$dest/gpu/.complete" tmp wheel requirements
    if [ -f "$marker" ] && [ -f "$dir/$LIB_NAME" ]; then
        echo "setup: ONNX Runtime ${ORT_VERSION} (CUDA) already installed in $dir"
        return
    fi
    [ -n "$gpu_wheel_sha256" ] || die "onnxruntime-gpu ${ORT_VERSION} is pinned for x86_64 only"
    ensure_pip
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "setup: downloading onnxruntime-gpu==${ORT_VERSION} from PyPI"
    wheel="$(download_wheel "$tmp/ort" "$gpu_wheel_sha256" "onnxruntime-gpu==${ORT_VERSION}")"
    extract "$wheel" "$dir" \
        "onnxruntime/capi/$LIB_NAME" \
        onnxruntime/capi/libonnxruntime_providers_shared.so \
        onnxruntime/capi/libonnxruntime_providers_cuda.so

    # The CUDA and cuDNN libraries are the wheel's own `cuda` and `cudnn` extras, read
    # from its metadata so that they always match the pinned runtime.
    requirements="$(python3 - "$wheel" <<'EOF'
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        m = re.match(r'Requires-Dist: (.+?); extra == "(cuda|cudnn)"', line)
        if m:
            print(m.group(1))
EOF
)"
    [ -n "$requirements" ] || die "$(basename "$wheel") names no cuda/cudnn extras"
    echo "setup: downloading the CUDA and cuDNN libraries (several GB):" $requirements
    # shellcheck disable=SC2086 # one requirement per word
    python3 -m pip download --quiet "${pip_target[@]}" --dest "$tmp/nvidia" $requirements
    for w in "$tmp"/nvidia/*.whl; do
        # Keep the wheels' nvidia/<component>/lib/ layout; only the shared libraries.
        python3 - "$w" "$dir" <<'EOF'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for member in z.namelist():
        if member.startswith("nvidia/") and "/lib/" in member and ".so" in os.path.basename(member):
            target = os.path.join(dest, member)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(member) as src, open(target + ".part", "wb") as out:
                out.write(src.read())
            os.chmod(target + ".part", 0o755)
            os.replace(target + ".part", target)
EOF
    done
    touch "$marker"
    rm -rf "$tmp"
    trap - EXIT
    echo "setup: installed ONNX Runtime ${ORT_VERSION} (CUDA) in $dir"
}

install_cpu
if [ "$gpu" = 1 ]; then
    install_gpu
fi

echo "setup: this checkout finds the runtime by itself; elsewhere point at it with"
echo "  export ORT_DYLIB_PATH=$dest/cpu/$LIB_NAME"
if [ "$gpu" = 1 ]; then
    echo "  (CUDA: export ORT_DYLIB_PATH=$dest/gpu/$LIB_NAME)"
fi
