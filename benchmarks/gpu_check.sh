#!/usr/bin/env bash
# The GPU check, as it is, on any CUDA machine (about 5 minutes on one GPU; budget 8):
#   bash benchmarks/gpu_check.sh                        # device 0, 640 px, built-in shapes set
#   bash benchmarks/gpu_check.sh --device cpu --smoke   # every step at tiny sizes on the CPU (CI)
# It prints one JSON summary (and exits 1 when a step failed). TensorRT steps need `pip install tensorrt`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 480 python benchmarks/gpu_check.py "$@"
