#!/usr/bin/env bash
# Train models on a lent GPU machine (Python 3.12 + torch, no registry): carried cp312 wheels
# (.wheels312/) and dataset tarballs (.carry/) come with the call.
#   tools/gpu_train.sh <time budget s per model> <dataset tgz>...
#   -> $OUT/<dataset>.safetensors, <dataset>.losses.csv, <dataset>.summary.json, train.log
set -euo pipefail
budget="$1"; shift
python3 -m pip install -q --no-index --find-links .wheels312 h5py tqdm PyYAML safetensors gymnasium >/tmp/pip.log 2>&1 || { tail -5 /tmp/pip.log; exit 1; }
export PYTHONPATH="$PWD:$PWD/sim"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
per_step=""
for tgz in "$@"; do
  mkdir -p datasets && tar xzf "$tgz" -C datasets
  ds="datasets/$(tar tzf "$tgz" | awk 'NR==1{split($0,a,"/"); print a[1]"/"a[2]}')"
  name="$(basename "$ds")"
  if [[ -z "$per_step" ]]; then  # time a short run once, then size every run to the budget
    python3 -m rs_diffuser_ros.core.train --dataset "$ds" --out /tmp/probe --steps 400 --log-every 200 --device cuda --no-progress >/tmp/probe.log 2>&1 || { tail -20 /tmp/probe.log; exit 1; }
    per_step=$(awk -F, 'NR>1{s=$1; w=$NF} END{print w/s}' /tmp/probe/losses.csv)
  fi
  steps=$(python3 -c "print(int(min(60000, ${budget} / ${per_step}) // 1000 * 1000))")
  echo "$name: ${per_step} s/step -> training ${steps} steps"
  python3 -m rs_diffuser_ros.core.train --dataset "$ds" --out "/tmp/run_$name" --steps "$steps" --device cuda --no-progress \
    --log-every 250 --checkpoint-every 5000 >>"$OUT/train.log" 2>&1 || echo "train $name exited $? (see train.log)"
  cp "/tmp/run_$name/model.safetensors" "$OUT/$name.safetensors"
  cp "/tmp/run_$name/losses.csv" "$OUT/$name.losses.csv"
  [ -f "/tmp/run_$name/summary.json" ] && cp "/tmp/run_$name/summary.json" "$OUT/$name.summary.json"
  tail -1 "/tmp/run_$name/losses.csv"
done
