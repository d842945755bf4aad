#!/usr/bin/env bash
# The one device check (docs/benchmarks.md, "Device check"): on a lent GPU machine,
#   bash benchmarks/device_check.sh                 # every part, about 8 minutes, results in one file
#   bash benchmarks/device_check.sh --rehearse      # the same parts at tiny sizes on the CPU
# Needs .device/ from benchmarks/device_bundle.sh (wheels of hydra-core, omegaconf, antlr4, kornia,
# kornia-rs, installed here into a scratch folder when the machine lacks them; T91 and benchmark HR
# images). The results file is $OUT/device_check.md when $OUT is set, else under .device/work*/.
# Further options go to benchmarks/device_check.py (--parts, --train-steps, --data, --out).
set -uo pipefail
cd "$(dirname "$0")/.."
need="import hydra, omegaconf, kornia"
if ! python3 -c "$need" 2>/dev/null; then
  if ! ls .device/wheels/*.whl >/dev/null 2>&1; then
    echo "error: hydra-core/omegaconf/kornia are missing and .device/wheels has no wheels: run" \
         "bash benchmarks/device_bundle.sh where pip works, and carry .device" >&2
    exit 2
  fi
  site=${TMPDIR:-/tmp}/lit_sisr_site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    .device/wheels/*.whl || { echo "error: installing .device/wheels/*.whl failed (see above)" >&2; exit 2; }
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
  python3 -c "$need" || { echo "error: .device/wheels installed, but '$need' still fails (see above)" >&2; exit 2; }
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
args=()
if [ -n "${OUT:-}" ]; then args=(--out "$OUT/device_check.md"); fi
exec python3 benchmarks/device_check.py "${args[@]}" "$@"
