#!/usr/bin/env bash
# Closed-loop evaluation at scale on a lent GPU machine (or any machine: CPU-only works, smaller).
# The planner plans for every running episode in one batch per control step on the GPU; the
# PyBullet envs are stepped by the machine's cores (risky_nav.vector worker processes).
#
#   tools/gpu_eval.sh OUT [eval options...]
#       one `python -m rs_diffuser_ros.eval` run, e.g. --layout default --settings averse:0.1 --episodes 1024
#   SUITE="default two_risks ..." tools/gpu_eval.sh OUT [eval options...]
#       the shipped layouts, each with its own model and behaviour-cloning policy, PER_GPU (default 2)
#       layouts at a time on each GPU (x2/x4 machines: layouts spread over the GPUs), then OUT/summary.md
#
# Carried wheels (.wheels312/: pybullet, gymnasium, farama-notifications, minari for cp312) are
# installed first where the machine has no registry. Logs: OUT/*.log.
set -uo pipefail
out="$1"; shift
mkdir -p "$out"
LOG_DIR="$out" source "$(dirname "$0")/device_python_env.sh"
cores=$(nproc)
if [[ $DEVICE == cuda ]]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | sed 's/^/gpu: /'
  # Several planner processes share a GPU: while one runs its controllers' Python, another's kernels run
  # (measured on one H200, 4096 episodes: 1 x 1024 envs 3,175/min, 2 x 1024 4,454, 4 x 512 5,051).
  planner_workers=$(( 4 * GPUS ))
else
  planner_workers=$cores   # CPU-only: the planner processes are the parallelism, envs in-process
fi
echo "cores: $cores, gpus: $GPUS"

if [[ -z "${SUITE:-}" ]]; then
  env_workers=$([[ $DEVICE == cuda ]] && echo $(( cores / planner_workers - 1 )) || echo 0)
  exec python3 -m rs_diffuser_ros.eval --device "$DEVICE" --workers "$planner_workers" --env-workers "$env_workers" \
    --out "$out" --no-progress "$@"
fi

M=rs_diffuser_ros/models
runs=(); bc=()
for layout in $SUITE; do
  model=$M/$layout.safetensors; policy=$M/behaviour_cloning_$layout.safetensors
  [[ $layout == default ]] && policy=$M/behaviour_cloning.safetensors
  runs+=("$layout=$model"); bc+=("$layout=$policy")
done
set -- --runs "${runs[@]}" --bc-runs "${bc[@]}" --out "$out" --no-progress "$@"
slots=$(( (GPUS > 0 ? GPUS : 1) * ${PER_GPU:-2} ))
env_workers=$([[ $DEVICE == cuda ]] && echo $(( cores / slots - 1 )) || echo 0)
[[ $env_workers -lt 0 ]] && env_workers=0
start=$SECONDS; i=0; pids=()
for layout in $SUITE; do
  gpu=$(( GPUS > 0 ? i % GPUS : 0 ))
  CUDA_VISIBLE_DEVICES=$gpu python3 -m rs_diffuser_ros.eval.suite --only "$layout" --device "$DEVICE" \
    --workers "$([[ $DEVICE == cuda ]] && echo 1 || echo $(( cores / slots > 0 ? cores / slots : 1 )))" \
    --env-workers "$env_workers" "$@" >"$out/$layout.log" 2>&1 &
  pids+=($!); i=$((i + 1))
  if (( ${#pids[@]} >= slots )); then wait "${pids[0]}" || echo "layout run ${pids[0]} failed (see $out/*.log)"; pids=("${pids[@]:1}"); fi
done
for pid in "${pids[@]}"; do wait "$pid" || echo "layout run $pid failed (see $out/*.log)"; done
echo "suite wall time: $((SECONDS - start)) s for: $SUITE"
python3 -m rs_diffuser_ros.eval.suite --summarise "$@"
