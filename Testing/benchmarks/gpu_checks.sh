#!/usr/bin/env bash
# Every GPU figure BENCHMARKS.md lacks, in one run of about 8 minutes on one GPU (e.g. the lent device machine):
#   bash Testing/benchmarks/gpu_checks.sh [OUT_DIR]
# Prints each benchmark's table and writes them to OUT_DIR (default: $OUT, else ./gpu_checks).
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:-${OUT:-gpu_checks}}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
run() {  # name, timeout seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "== $name" | tee -a "$out/summary.txt"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  echo "rc=$?" >> "$out/$name.log"
  grep -v "^W[0-9]" "$out/$name.log" | tail -20 | tee -a "$out/summary.txt"
}
run gan_synthesis 150 python Testing/benchmarks/bench_synthesis.py --device cuda --families gan3d --sizes 128 256x256x128 \
  --precisions fp32 bf16 --channels 16,32,64,128 8,16,32,64 --channels-last --cases 32 --label-workers 8 --repeats 3
run diffusion_synthesis 120 python Testing/benchmarks/bench_synthesis.py --device cuda --families diffusion \
  --sizes 128 256x256x128 --precisions fp32 bf16 --repeats 2
run gan_training_128 150 python Testing/benchmarks/bench_training.py --device cuda --grid 128 --amp bf16 --plain-amp \
  --steps 10 --repeats 2
run gan_training_2mm 60 python Testing/benchmarks/bench_training.py --device cuda --grid 2mm --amp bf16 --plain-amp \
  --steps 10 --repeats 2
run gpu_tests 90 python -m pytest -q -x Testing/unit/test_inference.py Testing/unit/test_training.py -k "not ddp"
