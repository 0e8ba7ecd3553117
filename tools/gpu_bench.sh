#!/usr/bin/env bash
# Replanning latency on a lent GPU (issue 7): the CUDA tests of the fast path, then the benchmark table
# (K x DDIM steps x guidance on/off; reference loop vs fast path in fp32, fp16 and bf16) and the training
# throughput, all in under 6 minutes. Run from the repository root on the GPU machine; carry .wheels312/
# (PyYAML, pytest) since there is no registry there:
#   tools/gpu_bench.sh          -> stdout, $OUT/gpu_bench.md (the table), $OUT/tests.log, $OUT/bench.log
# The model is rs_diffuser_ros/models/default.safetensors when present, else random weights of the size
# in config/model.yaml (latency does not depend on the weights); the table's header says which.
# Dry run of this script on a CPU box: BENCH_DEVICE=cpu BENCH_SWEEP="--candidates 8 --ddim-steps 2 --repeats 3" tools/gpu_bench.sh
set -uo pipefail  # no -e: a failing part must not cost the parts after it
OUT="${OUT:-/tmp/gpu_bench}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$PWD/sim"
deadline=$((SECONDS + 345))  # hard limit for everything below, under 6 minutes
left() { echo $((deadline - SECONDS)); }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi failed"
device="${BENCH_DEVICE:-cuda}"
python3 -c "import torch; print('torch', torch.__version__, '| cuda', torch.version.cuda, '|',
  torch.cuda.get_device_name() if '$device' == 'cuda' else 'dry run on CPU')" \
  || { echo "torch (with CUDA) is not importable: nothing to benchmark"; exit 1; }

# Python packages the core needs that the machine may lack, from the carried wheels.
for pkg in yaml:PyYAML safetensors:safetensors pytest:pytest; do
  python3 -c "import ${pkg%%:*}" 2>/dev/null && continue
  if [ -d .wheels312 ]; then
    timeout 60 python3 -m pip install -q --no-index --find-links .wheels312 "${pkg##*:}" >/tmp/pip_${pkg##*:}.log 2>&1 \
      || { echo "could not install ${pkg##*:} from .wheels312:"; tail -3 /tmp/pip_${pkg##*:}.log; }
  else
    echo "${pkg##*:} missing and no .wheels312/ carried"
  fi
done

echo "## 1. fast path vs reference on CUDA (test/test_core_fastpath.py)"
if python3 -m pytest --version >/dev/null 2>&1; then
  # -rs lists skips: on this machine none of the CUDA tests may be skipped.
  timeout 120 python3 -m pytest -q -rs -p no:cacheprovider test/test_core_fastpath.py 2>&1 | tee "$OUT/tests.log" | tail -25
  echo "pytest exit: ${PIPESTATUS[0]}"
else
  echo "pytest not available: the fast path's agreement with the reference is in the table's Δrisk / same-pick columns" \
    | tee "$OUT/tests.log"
fi

echo "## 2. latency table ($(left) s left)"
model=()
ckpt=rs_diffuser_ros/models/default.safetensors
if [ -f "$ckpt" ]; then
  if python3 -c "from rs_diffuser_ros.core.planner import RiskSensitivePlanner as P; P.from_checkpoint('$ckpt', device='cpu')"; then
    model=(--checkpoint "$ckpt")
  else
    echo "$ckpt does not load (above): timing random weights of the same size instead"
  fi
fi
budget=$(( $(left) - 45 ))  # the benchmark stops starting rows after this; then the training timing
sweep=${BENCH_SWEEP:-"--candidates 64 1024 16 256 --ddim-steps 8 4 --repeats 200"}
# shellcheck disable=SC2086  # $sweep is a list of arguments
timeout $(( $(left) - 5 )) python3 -m rs_diffuser_ros.diagnostics.benchmark --device "$device" "${model[@]}" $sweep \
  --guidance on off --paths reference fast --precision fp32 fp16 bf16 \
  --time-budget "$budget" --train-steps 300 --out "$OUT/gpu_bench.md" 2>"$OUT/bench.log"
rc=$?
[ $rc -ne 0 ] && { echo "benchmark exit $rc (124: hit the time limit; the rows made so far are in gpu_bench.md)"; tail -20 "$OUT/bench.log"; }
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
echo "done in ${SECONDS} s"
