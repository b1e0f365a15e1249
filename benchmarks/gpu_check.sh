#!/usr/bin/env bash
# The GPU path in one command, on a GPU server without network: installs loes and what that
# server's Python lacks from the wheels brought along (`make wheelhouse` on a machine with
# network, then copy the checkout with its wheelhouse/), never touching its own CUDA PyTorch,
# then runs `python -m benchmarks gpu`: output dtypes, the all-reduce, a training step per
# memory layout against the bf16 matmul rate, a short CV twice (2 folds x 3 epochs, GPU
# cache) compared, `loes predict` on CUDA against the CPU, `loes explain` and an exported
# bundle on CUDA. Prints every figure; exits non-zero on any failure. Under 8 minutes on one
# data-centre GPU (expected; not yet run on one).
#
#   benchmarks/gpu_check.sh
#
# PYTHON: the Python with CUDA PyTorch (default python3). WHEELHOUSE: the wheels (default
# wheelhouse/ of this checkout). LOES_GPU_CHECK_DIR: where the environment goes (default
# .gpu-check/ of this checkout, rebuilt each time; a folder that exists and was not made by this
# script is refused, never deleted). LOES_GPU_CHECK_DEVICE=cpu rehearses the
# whole check on a CPU (smaller), e.g. on a machine without a GPU from a wheelhouse built for
# its own Python (scripts/wheelhouse.sh 3.11).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
wheels="$(cd "${WHEELHOUSE:-$root/wheelhouse}" 2>/dev/null && pwd)" || {
    echo "gpu_check: no wheelhouse at ${WHEELHOUSE:-$root/wheelhouse}; run \`make wheelhouse\`" \
        "where there is network and copy it here" >&2
    exit 2
}
dir="${LOES_GPU_CHECK_DIR:-$root/.gpu-check}"
device="${LOES_GPU_CHECK_DEVICE:-cuda}"

if [ "$device" = cuda ] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
want=$(cat "$wheels/python-version")
if [ "$have" != "$want" ]; then
    echo "gpu_check: $wheels holds wheels for Python $want, but $python is Python $have;" \
        "run \`make wheelhouse PYTHON_VERSION=$have\` where there is network" >&2
    exit 2
fi
"$python" -c 'import torch' || {
    echo "gpu_check: $python has no PyTorch; PYTHON= the Python with the CUDA build" >&2
    exit 2
}
if ! "$python" -m pip install --help 2>/dev/null | grep -q -- --python; then
    echo "gpu_check: the pip of $python is missing or older than 22.3 (no --python option);" \
        "bring a newer pip wheel in the wheelhouse and install it first" >&2
    exit 2
fi
if [ -e "$dir" ] && [ ! -e "$dir/.made-by-gpu-check" ]; then
    echo "gpu_check: $dir exists and was not made by this script; LOES_GPU_CHECK_DIR= a new" \
        "folder (it is deleted and rebuilt on every run)" >&2
    exit 2
fi

# a fresh environment holding the wheels; the rest (torch, numpy, ...) is $python's own: its
# package folders as plain lines of a .pth file (no other .pth runs, so nothing installed
# there in development mode shadows the wheels), after the environment's own folder
rm -rf "$dir"
mkdir -p "$dir"
touch "$dir/.made-by-gpu-check"
"$python" -m venv --without-pip "$dir/venv"
env_python="$dir/venv/bin/python"
"$python" -c 'import site, sys; print("\n".join(p for p in site.getsitepackages() + [site.getusersitepackages()] if p))' \
    >"$("$env_python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/gpu-check-base.pth"
# exactly the listed wheels (--no-deps), offline (--no-index): never a torch
"$python" -m pip --python "$env_python" install --quiet --no-index --no-deps \
    --no-cache-dir --find-links "$wheels" -r "$wheels/requirements.txt"

# run from a scratch folder holding only a link to benchmarks/: the installed loes answers,
# not the checkout's
mkdir -p "$dir/path"
ln -s "$root/benchmarks" "$dir/path/benchmarks"
cd "$dir"
"$env_python" -c 'import torch, loes; print(f"torch {torch.__version__} from {torch.__file__}; loes {loes.__version__} from {loes.__file__}")'
PYTHONPATH="$dir/path" PYTHONUNBUFFERED=1 LOES_GPU_CHECK_DEVICE="$device" \
    exec "$env_python" -m benchmarks gpu
