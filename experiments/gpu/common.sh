# Sourced by the GPU session scripts: prints the machine and versions, makes the output folder
# $log (LOG_DIR, or the default the script sets before sourcing this), and defines
#   step CMD...          run CMD between "=== CMD" and "=== exit N after S s"
#   show RESULTS_JSON    the headline figures of one run's results.json
set -u
log=${LOG_DIR:-$log}
mkdir -p "$log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__)"
step() { echo; echo "=== $*"; local t=$SECONDS; "$@"; echo "=== exit $? after $((SECONDS - t)) s"; }
show() { python -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: r.get(k) for k in ('model','test_acc','val_acc_best','train_time_s','train_images_per_s','wall_time_s')})" "$1"; }
