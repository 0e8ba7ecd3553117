#!/usr/bin/env bash
# One device call: (collect,) train, and gate the model closed loop on maps it never trained on, all inside the
# call's time. A general model has so far been judged on the 10 val maps on the 2-core CPU (~25 min a candidate);
# on the GPU that gate takes about a minute, so a call can train and say whether the model is worth more.
#
#   DATASET=datasets/riskynav/maps1000ld-v0 OUT=runs/m3 INIT=runs/m2/model.safetensors BUDGET_S=560 \
#       tools/train_and_gate.sh
#
# env (defaults in brackets):
#   DATASET   the training set, or several separated by spaces (trained as one, e.g. a scripted set and its
#             eval.handover set); the first is collected when it has no dataset_stats.json, from COLLECT (the arguments of
#             `python -m risky_nav.collect` after --out, e.g. "--generate 1000 --generate-seed 19000
#             --episodes-per-map 20 --seed 112 --mix shortcut=0.2,...")
#   CONFIG    [config/experiments/stride_mapread.yaml]   INIT  model to start from (--init-from) [none]
#   OUT       run folder; its model.safetensors is copied on as training goes, so a cut call keeps the last one
#   BUDGET_S  seconds for everything [560]; the gate keeps GATE_S of them [100 on two GPUs or more; 180 on one,
#             where the gate of 10 maps x 20 episodes x 2 settings took 155-175 s]
#   GATE_MAPS, GATE_EPISODES, GATE_SETTINGS, GATE_SEED, PLANNER_YAML: the gate's (tools/gate.sh)
#   BATCH [1024 a GPU]  STEPS [400000: the deadline ends it]  TRAIN_ARGS [none]  more arguments of the training
#             (e.g. "--train-only critic": a fresh critic on INIT's frozen networks)
#   HANDOVER_EPISODES [0: none]  episodes a map of eval.handover data (DAgger's aggregation: the controller of
#             HANDOVER_FROM [INIT] drives at HANDOVER_SETTING [averse:0.1], then the detour expert) on the first
#             dataset's maps of kind HANDOVER_KIND [tradeoff], collected before training by one CPU process a share of
#             the maps (one dataset each, OUT/handover/partN) and trained on with the others
#   HANDOVER_ARGS [none]  more arguments of eval.handover (e.g. --keep-controller-part, as c1's data had it)
#   HANDOVER_MAPS [all]  only the first N of those maps (measured on the x2 kind, 30 processes: 240 maps took 228 s,
#             60 maps 74 s; training then loads for ~100-130 s, the goal fields 44 s of it, before its first step)
#   HANDOVER_DEVICE [cpu]  cuda: the controllers plan on the GPUs, HANDOVER_PROCS_PER_GPU [6] processes each (on the
#             CPU a map took ~28 s a process; on one H200 with 14 processes, 16 cores, 160 maps took 184 s and 120 maps
#             126 s: ~15 s a map a process, the GPU halves it and no more)
#   HANDOVER_REPEAT [1]  list the handover sets this many times in the training set, so their windows are drawn that
#             many times as often (the scripted set has ~10x the episodes)
#   KEEP_HANDOVER [none]  pack the handover sets into this .tgz before training, in pieces of 15 MB (KEEP_HANDOVER.aa,
#             .ab, ...: a device call returns files of up to 16 MiB), to carry to a later call: `cat X.tgz.* | tar xz`
#             gives handover/partN/ again, to list in its DATASET
#   KEEP_MODEL [none]  copy the trained model here (e.g. $OUT/model.safetensors on the device) before the gate
#             starts, so a call cut short in the gate still brings the weights back. Name the device's $OUT before
#             this script's OUT is set: in `OUT=/tmp/r KEEP_MODEL=$OUT/m ...` bash expands $OUT to /tmp/r, and the
#             weights stay on the machine (d1's were saved only because the machine was still warm); so
#             `O=$OUT; OUT=/tmp/r KEEP_MODEL=$O/model.safetensors ...`
# Writes OUT/train.log, OUT/gate/<map>/ and OUT/gate/pooled/results.md (pooled, per map kind, one row per map).
# Carry .wheels312/ on a machine without pybullet/minari (tools/gpu_eval.sh installs them the same way).
set -uo pipefail
: "${DATASET:?DATASET is required}" "${OUT:?OUT is required}"
deadline=$(( $(date +%s) + ${BUDGET_S:-560} ))
config=${CONFIG:-config/experiments/stride_mapread.yaml}
mkdir -p "$OUT"
LOG_DIR="$OUT" source "$(dirname "$0")/device_python_env.sh"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # KINDS.md: no NVLink multicast
gate_s=${GATE_S:-$([[ $GPUS -gt 1 ]] && echo 100 || echo 180)}
start=$SECONDS
read -ra datasets <<<"$DATASET"

if [[ ! -f "${datasets[0]}/dataset_stats.json" ]]; then
  : "${COLLECT:?${datasets[0]} has no dataset_stats.json: give COLLECT (risky_nav.collect arguments) to collect it}"
  # shellcheck disable=SC2086  # COLLECT is a list of arguments
  python3 -m risky_nav.collect $COLLECT --workers $(( $(nproc) > 2 ? $(nproc) - 2 : 1 )) --out "${datasets[0]}" \
    >"$OUT/collect.log" 2>&1 || { tail -5 "$OUT/collect.log"; exit 1; }
  echo "collected in $((SECONDS - start)) s"; tail -n 6 "$OUT/collect.log"
fi

if (( ${HANDOVER_EPISODES:-0} > 0 )); then
  from=${HANDOVER_FROM:-${INIT:-}}
  [[ -n "$from" ]] || { echo "HANDOVER_EPISODES needs HANDOVER_FROM or INIT: the model whose controller drives"; exit 1; }
  hdevice=${HANDOVER_DEVICE:-cpu}
  if [[ $hdevice == cuda && $GPUS -gt 0 ]]; then procs=$(( GPUS * ${HANDOVER_PROCS_PER_GPU:-6} ))
  else hdevice=cpu; procs=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 )); fi
  mkdir -p "$OUT/handover"
  ls "${datasets[0]}"/layouts/*-"${HANDOVER_KIND:-tradeoff}".yaml >"$OUT/handover/all_maps.txt" \
    || { echo "no ${HANDOVER_KIND:-tradeoff} maps in ${datasets[0]}/layouts"; exit 1; }
  head -n "${HANDOVER_MAPS:-999999}" "$OUT/handover/all_maps.txt" >"$OUT/handover/maps.txt"
  maps=$(wc -l <"$OUT/handover/maps.txt")
  procs=$(( procs < maps ? procs : maps ))  # never a process without a map
  split -n "r/$procs" -d "$OUT/handover/maps.txt" "$OUT/handover/maps."  # round robin: each share mixes the styles
  for share in "$OUT"/handover/maps.[0-9]*; do
    part=${share##*.}
    # shellcheck disable=SC2046  # one argument per map file
    CUDA_VISIBLE_DEVICES=$(( 10#$part % (GPUS > 0 ? GPUS : 1) )) OMP_NUM_THREADS=1 python3 -m rs_diffuser_ros.eval.handover \
      --checkpoint "$from" --layouts $(cat "$share") --episodes-per-map "$HANDOVER_EPISODES" \
      --setting "${HANDOVER_SETTING:-averse:0.1}" --seed $(( 10#$part * 100000 )) --device "$hdevice" \
      --out "$OUT/handover/part$part" ${HANDOVER_ARGS:-} >"$OUT/handover/part$part.log" 2>&1 &
  done
  wait
  for log in "$OUT"/handover/part[0-9]*.log; do
    [[ -f "${log%.log}/dataset_stats.json" ]] || { echo "handover failed: $log"; tail -3 "$log"; exit 1; }
  done
  for (( r = 0; r < ${HANDOVER_REPEAT:-1}; r++ )); do datasets+=("$OUT"/handover/part[0-9]*/); done
  echo "handover data from $from: $maps maps over $procs $hdevice processes, at $((SECONDS - start)) s"
  grep -h 'recorded' "$OUT"/handover/part[0-9]*.log | awk '{r += $3; a += $5; e += $7} END {
    print "  " r " episodes recorded, " a " arrived, " e " entered a risky region"}'
  [[ -n "${KEEP_HANDOVER:-}" ]] && (cd "$OUT" && tar cz handover/part[0-9]*/) | split -b 15m - "$KEEP_HANDOVER."
fi

train_s=$(( deadline - gate_s - $(date +%s) ))
(( train_s > 30 )) || { echo "no time left to train (${train_s} s)"; exit 1; }
launcher=(python3)
[[ $GPUS -gt 1 ]] && launcher=(python3 -m torch.distributed.run --nproc_per_node "$GPUS")
init=(); [[ -n "${INIT:-}" ]] && init=(--init-from "$INIT")
"${launcher[@]}" -m rs_diffuser_ros.core.training.train --dataset "${datasets[@]}" --config "$config" "${init[@]}" \
  --out "$OUT/run" --steps "${STEPS:-400000}" --batch-size "${BATCH:-1024}" --deadline-s "$train_s" --device "$DEVICE" \
  --log-every 250 --checkpoint-every 2000 --no-progress ${TRAIN_ARGS:-} >"$OUT/train.log" 2>&1
[[ -f "$OUT/run/model.safetensors" ]] || { echo "training wrote no model"; tail -20 "$OUT/train.log"; exit 1; }
echo "trained in $((SECONDS - start)) s: $(grep -E '"steps"' "$OUT/train.log" | head -1 | tr -d ' ,')"
[[ -n "${KEEP_MODEL:-}" ]] && cp "$OUT/run/model.safetensors" "$KEEP_MODEL"
tail -n 1 "$OUT/run/losses.csv"

MODEL="$OUT/run/model.safetensors" OUT="$OUT/gate" "$(dirname "$0")/gate.sh"
echo "end: $((SECONDS - start)) s"
