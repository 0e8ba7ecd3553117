#!/usr/bin/env bash
# Train models on a lent GPU machine (Python 3.12 + torch, no registry): carried cp312 wheels
# (.wheels312/) and dataset tarballs (.carry/) come with the call.
#   tools/gpu_train.sh <time budget s per model> <dataset tgz>...    one after another, sized to the budget
#   STEPS=15000 PARALLEL=1 DEADLINE_S=480 tools/gpu_train.sh - <dataset tgz>...
#       a fixed step count, every dataset in its own process on the one GPU at once (training is
#       kernel-launch bound, so three runs share a card at little cost); a run still going at
#       DEADLINE_S is stopped and its last checkpoint (every 2500 steps) is what comes back.
#   -> $OUT/<dataset>.safetensors, <dataset>.losses.csv, train.log
set -euo pipefail
budget="$1"; shift
python3 -m pip install -q --no-index --find-links .wheels312 h5py tqdm PyYAML safetensors gymnasium >/tmp/pip.log 2>&1 || { tail -5 /tmp/pip.log; exit 1; }
export PYTHONPATH="$PWD:$PWD/sim"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

unpack() {  # tgz -> the dataset directory it holds
  mkdir -p datasets && tar xzf "$1" -C datasets
  echo "datasets/$(tar tzf "$1" | awk 'NR==1{split($0,a,"/"); print a[1]"/"a[2]}')"
}

collect() {  # copy one run's model and losses to $OUT
  local name="$1"
  cp "/tmp/run_$name/model.safetensors" "$OUT/$name.safetensors"
  cp "/tmp/run_$name/losses.csv" "$OUT/$name.losses.csv"
  echo "$name: last logged $(tail -1 "/tmp/run_$name/losses.csv")"
}

if [[ "${PARALLEL:-0}" == 1 ]]; then
  pids=(); names=()
  for tgz in "$@"; do
    ds="$(unpack "$tgz")"; name="$(basename "$ds")"; names+=("$name")
    echo "$name: training ${STEPS} steps (in parallel)"
    timeout "${DEADLINE_S:-480}" python3 -m rs_diffuser_ros.core.training.train --dataset "$ds" --out "/tmp/run_$name" \
      --steps "$STEPS" --device cuda --no-progress --log-every 250 --checkpoint-every 2500 \
      >"/tmp/train_$name.log" 2>&1 &
    pids+=($!)
  done
  start=$SECONDS
  for pid in "${pids[@]}"; do wait "$pid" || echo "a run exited $? (124: stopped at the deadline)"; done
  echo "all runs done in $((SECONDS - start)) s"
  for name in "${names[@]}"; do
    cat "/tmp/train_$name.log" >>"$OUT/train.log"
    collect "$name"
  done
  exit 0
fi

per_step=""
for tgz in "$@"; do
  ds="$(unpack "$tgz")"; name="$(basename "$ds")"
  if [[ -z "$per_step" ]]; then  # time a short run once, then size every run to the budget
    python3 -m rs_diffuser_ros.core.training.train --dataset "$ds" --out /tmp/probe --steps 400 --log-every 200 --device cuda --no-progress >/tmp/probe.log 2>&1 || { tail -20 /tmp/probe.log; exit 1; }
    per_step=$(awk -F, 'NR>1{s=$1; w=$NF} END{print w/s}' /tmp/probe/losses.csv)
  fi
  steps=$(python3 -c "print(int(min(60000, ${budget} / ${per_step}) // 1000 * 1000))")
  echo "$name: ${per_step} s/step -> training ${steps} steps"
  python3 -m rs_diffuser_ros.core.training.train --dataset "$ds" --out "/tmp/run_$name" --steps "$steps" --device cuda --no-progress \
    --log-every 250 --checkpoint-every 5000 >>"$OUT/train.log" 2>&1 || echo "train $name exited $? (see train.log)"
  collect "$name"
done
