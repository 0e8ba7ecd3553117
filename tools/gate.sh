#!/usr/bin/env bash
# The closed-loop gate of a model on maps it never trained on (the 10 val maps by default), every map at once:
# one eval process a map, spread over the GPUs (on a CPU, two at a time). One H200: 10 maps x 20 episodes x 2
# settings in 155-175 s. tools/train_and_gate.sh runs it after training; alone it judges a model or a planner
# setting (PLANNER_YAML: e.g. route candidates, carry_plan) with no training.
#
#   MODEL=experiments/checkpoints/stride_mapread_c2.safetensors OUT=runs/gate tools/gate.sh
#
# env (defaults in brackets): MODEL, OUT (writes OUT/<map>/, OUT/<map>.log, OUT/pooled/results.md)
#   GATE_MAPS [maps/val/*.yaml: carry maps/val, it is not in git]  GATE_EPISODES [20]  GATE_SEED [7000]
#   GATE_SETTINGS ["averse:0.1 neutral"]  PLANNER_YAML [config/planner.yaml]
# Map k (0-based, in sorted order) resets its episodes from GATE_SEED + k x GATE_EPISODES (risky_nav.episode_seeds
# computes it): maps that shared env seeds would share their risk-event draws.
set -uo pipefail
: "${MODEL:?MODEL is required}" "${OUT:?OUT is required}"
mkdir -p "$OUT"
LOG_DIR="$OUT" source "$(dirname "$0")/device_python_env.sh"
parallel=$([[ $DEVICE == cuda ]] && echo 16 || echo 2)
start=$SECONDS
# shellcheck disable=SC2086  # GATE_MAPS is a glob, GATE_SETTINGS a list
ls ${GATE_MAPS:-maps/val/*.yaml} | awk '{print NR - 1, $0}' | \
  OUT="$OUT" MODEL="$MODEL" DEVICE="$DEVICE" GPUS="$GPUS" SETTINGS="${GATE_SETTINGS:-averse:0.1 neutral}" \
  EPISODES="${GATE_EPISODES:-20}" SEED="${GATE_SEED:-7000}" YAML="${PLANNER_YAML:-config/planner.yaml}" \
  xargs -P "$parallel" -n 2 bash -c 'map=$(basename "$1" .yaml); gpu=$(( GPUS > 0 ? $0 % GPUS : 0 ));
    CUDA_VISIBLE_DEVICES=$gpu python3 -m rs_diffuser_ros.eval --checkpoint "$MODEL" --layout "$1" \
      --settings $SETTINGS --episodes "$EPISODES" --seed "$(python3 -m risky_nav.episode_seeds "$SEED" "$0" "$EPISODES")" --device "$DEVICE" --workers 1 \
      --env-workers "$([[ $DEVICE == cuda ]] && echo 1 || echo 0)" --max-paths 10 --planner-yaml "$YAML" \
      --out "$OUT/$map" --no-progress >"$OUT/$map.log" 2>&1 || echo "gate run on $map failed: $OUT/$map.log"'
python3 -m rs_diffuser_ros.eval.pooled "$OUT"/gen*/ --group-by-kind --per-map --tail --out "$OUT/pooled" >/dev/null \
  && sed -n '/^## All/,/^## Map kind/p;/^## Per map/,$p' "$OUT/pooled/results.md"
grep -h "^Controller stops" "$OUT"/gen*/results.md | sed 's/^/  /' | sort | uniq -c | sort -rn | head -5
echo "gate: $((SECONDS - start)) s"
