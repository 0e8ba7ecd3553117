#!/usr/bin/env bash
# Train the shipped default model on a lent GPU machine (Python 3.12 + torch, no registry):
# carried cp312 wheels (.wheels312/) and the dataset tarball (.carry/) come with the call.
#   tools/gpu_train.sh <dataset tgz> <time budget s>   -> $OUT/model.safetensors, losses.csv, train.log
set -euo pipefail
tgz="$1"; budget="${2:-420}"
python3 -m pip install -q --no-index --find-links .wheels312 h5py tqdm PyYAML safetensors gymnasium >/tmp/pip.log 2>&1 || { tail -5 /tmp/pip.log; exit 1; }
mkdir -p datasets && tar xzf "$tgz" -C datasets
export PYTHONPATH="$PWD:$PWD/sim"
ds="datasets/$(tar tzf "$tgz" | awk 'NR==1{split($0,a,"/"); print a[1]"/"a[2]}')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
# Time a short run, then size the real one to the budget.
python3 -m rs_diffuser_ros.core.train --dataset "$ds" --out /tmp/probe --steps 400 --log-every 200 --device cuda --no-progress >/tmp/probe.log 2>&1 || true
per_step=$(awk -F, 'NR>1{s=$1; w=$NF} END{print w/s}' /tmp/probe/losses.csv)
steps=$(python3 -c "print(int(min(60000, ${budget} / ${per_step}) // 1000 * 1000))")
echo "probe: ${per_step} s/step -> training ${steps} steps"
python3 -m rs_diffuser_ros.core.train --dataset "$ds" --out /tmp/run --steps "$steps" --device cuda --no-progress \
  --log-every 250 --checkpoint-every 5000 "${@:3}" >"$OUT/train.log" 2>&1 || echo "train exited $? (see train.log)"
cp /tmp/run/model.safetensors /tmp/run/losses.csv "$OUT/"
[ -f /tmp/run/summary.json ] && cp /tmp/run/summary.json "$OUT/"
tail -3 /tmp/run/losses.csv
