# Sourced by the device scripts (tools/gate.sh, tools/gpu_eval.sh, tools/train_and_gate.sh) with LOG_DIR set: makes
# this checkout and the sim importable, and installs the carried wheels (.wheels312/: pybullet, gymnasium,
# farama-notifications, minari, pytest for cp312) only where they are missing; a machine with its own (this repo's
# venv) keeps them. Sets GPUS (the CUDA devices torch sees) and DEVICE (cuda where there is one, else cpu).
if [[ -d .wheels312 ]] && ! python3 -c "import pybullet, gymnasium, minari" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .wheels312/*.whl >"$LOG_DIR/pip.log" 2>&1 \
    || { tail -5 "$LOG_DIR/pip.log"; exit 1; }
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:$PWD/sim:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
GPUS=$(python3 -c 'import torch; print(torch.cuda.device_count())')
DEVICE=$([[ $GPUS -gt 0 ]] && echo cuda || echo cpu)
