#!/usr/bin/env bash
# The GPU path in one command, for the first GPU machine: sets up (.venv with a CUDA build of
# PyTorch), then `python -m benchmarks gpu`: the GPU preset for 2 folds x 2 epochs with mixed
# precision and the GPU cache, the same under torchrun DDP on every GPU present, samples/s,
# peak GPU memory, data-wait share per epoch, and one AlexNet3D step's TFLOP/s against the
# bf16 peak. Expected under 8 minutes on one data-centre GPU. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
cuda() { .venv/bin/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; }
if [ ! -x .venv/bin/python ]; then
    make setup TORCH_SPEC="${TORCH_SPEC:-torch}"  # PyPI's Linux torch is a CUDA build
elif ! cuda; then
    echo "gpu_check: .venv holds a CPU build of torch; installing a CUDA build" >&2
    .venv/bin/pip install --quiet --force-reinstall "${TORCH_SPEC:-torch}"
fi
cuda || { echo "gpu_check: PyTorch sees no CUDA GPU" >&2; exit 1; }
exec .venv/bin/python -m benchmarks gpu
