#!/usr/bin/env bash
# GPU benchmark: training images/s, peak GPU memory and host synchronisations per batch of
# convnext_large at 512 px, bf16 autocast and channels-last: cxrlt's learner (as `cxrlt run`
# builds it) against a plain PyTorch loop (torch's fused AdamW) in the same process; whether
# cxrlt's loader with on-device augmentation keeps up (loader images/s over training images/s);
# then the cxrlt learner with DDP on every GPU present (scaling efficiency).
#
# On a GPU machine, from anywhere, with the repository's .venv (or any Python where torch,
# timm and fastai import; cxrlt is put on PYTHONPATH from this checkout). Installs nothing.
#
#     bash bench/gpu.sh                        # figures in bench/results/gpu.md and gpu.json
#     bash bench/gpu.sh --bs 16 --out /tmp/g   # other flags go to bench/gpu_throughput.py
#     bash bench/gpu.sh --dry-run --out /tmp/g # CPU: tiny model, 2 ranks over gloo (the tests)
#     PYTHON=/path/to/python bash bench/gpu.sh # another interpreter
#
# Steps: (1) one process times the plain arm, the cxrlt arm, then the loader alone, on the
# first GPU and writes gpu.json/.md; (2) with N > 1 GPUs (torch.cuda.device_count(), so
# CUDA_VISIBLE_DEVICES applies), `torchrun --standalone --nproc_per_node=N` runs the cxrlt arm
# on every GPU and adds the multi-GPU images/s and the scaling efficiency against step (1) to
# the same files.
#
# Expected runtime: 1 to 3 minutes on one H100 (imports, drawing ~1,500 synthetic images and
# caching them at 512 px, two models of 200M parameters built, 2 x 45 steps of ~0.1 s each,
# 40 loader batches); the DDP step adds about a minute plus the larger data set N GPUs need
# (drawn once, serially: about 10 s per 1,000 images). Peak memory about 25 GiB per GPU at
# the default batch of 32.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
SCRIPT="$ROOT/bench/gpu_throughput.py"

dry_run=0
for arg in "$@"; do
    if [[ "$arg" == "--dry-run" ]]; then dry_run=1; fi
done

if (( dry_run )); then
    export CUDA_VISIBLE_DEVICES=""  # the CPU path, even on a GPU machine
    ranks=2
else
    ranks=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
    if (( ranks < 1 )); then
        echo "gpu.sh: torch sees no GPU. Run it on a GPU machine, or try: bash bench/gpu.sh --dry-run" >&2
        exit 1
    fi
fi
echo "gpu.sh: $("$PYTHON" --version 2>&1) at $PYTHON; DDP ranks: $ranks"

# (1) one GPU: plain loop, then cxrlt
"$PYTHON" "$SCRIPT" --gpus "$ranks" "$@"

# (2) DDP over every GPU (two CPU ranks over gloo in a dry run)
if (( ranks > 1 )); then
    if (( dry_run )); then export OMP_NUM_THREADS=1; fi  # two ranks share the CPU cores
    "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$ranks" \
        "$SCRIPT" --ddp --gpus "$ranks" "$@"
fi
