#!/usr/bin/env bash
# Prepare, on a machine with pip and the data, what benchmarks/device_check.sh needs on a lent GPU
# machine that has torch, pytorch-lightning and torchmetrics but no registry access:
#   .device/wheels/  hydra-core, omegaconf, antlr4-python3-runtime, kornia, kornia-rs (CPython 3.12,
#                    manylinux x86-64; wandb is not needed: the check never imports it)
#   .device/data/    T91 HR and the Set5/Set14/B100 HR images (LR is made there by our MATLAB-exact
#                    bicubic, so no LR files travel)
# .device/ is git-ignored; pass it as the device call's carry path. Prints the sizes (limit 64 MiB
# for everything that travels). Usage: bash benchmarks/device_bundle.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-${LIT_SISR_DATA:-../shared/data}}
out=.device
rm -rf "$out/wheels" "$out/data"
mkdir -p "$out/wheels" "$out/data/train/T91" "$out/data/benchmark"
# The versions this repository is tested with (inside the requirements.txt ranges).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$out/wheels" \
  hydra-core==1.3.8 omegaconf==2.3.1 kornia==0.9.0 kornia-rs==0.2.0 \
  || { echo "error: pip download failed (see above)"; exit 2; }
# hydra-core 1.3 needs antlr4 4.9.*, published as a source archive only: build its (pure Python) wheel.
python3 -m pip wheel -q --no-deps -w "$out/wheels" antlr4-python3-runtime==4.9.3 \
  || { echo "error: pip wheel antlr4-python3-runtime failed (see above)"; exit 2; }
cp -r "$data/train/T91/HR" "$out/data/train/T91/HR"
for set in Set5 Set14 B100; do
  mkdir -p "$out/data/benchmark/$set"
  cp -r "$data/benchmark/$set/HR" "$out/data/benchmark/$set/HR"
done
ls "$out/wheels"
du -sh "$out/wheels" "$out/data"; du -sh "$out"
echo "repository files that travel besides: $(git ls-files -z | du -ch --files0-from=- | tail -1 | cut -f1)"
