#!/usr/bin/env bash
# Run fashion_lab with bad inputs a user can give; print each command's exit code and the last
# line it printed, as Markdown tables: bad overrides and data, then a run stopped by a signal and
# resumed with settings its checkpoint fixes.   bash experiments/errors/bad_inputs.sh
set -u
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
quick="paths.log_dir=$work/outputs trainer.max_epochs=1 trainer.enable_progress_bar=false"

# damaged copies of the real files, for the data checks
real=/usr/share/datasets/fashion-mnist
damaged() {  # damaged NAME HOW -> a data.root holding the four files, one of them damaged
  local dir="$work/$1"; mkdir -p "$dir"; cp "$real"/*.gz "$dir"/
  case "$2" in
    truncate) head -c 1000000 "$real/train-images-idx3-ubyte.gz" > "$dir/train-images-idx3-ubyte.gz" ;;
    magic) python3 - "$real/train-images-idx3-ubyte.gz" "$dir/train-images-idx3-ubyte.gz" <<'PY'
import gzip, sys
raw = bytearray(gzip.open(sys.argv[1]).read()); raw[2] = 0x0D
open(sys.argv[2], "wb").write(gzip.compress(bytes(raw)))
PY
    ;;
    md5) python3 - "$real/train-labels-idx1-ubyte.gz" "$dir/train-labels-idx1-ubyte.gz" <<'PY'
import gzip, sys
raw = bytearray(gzip.open(sys.argv[1]).read()); raw[100] = (raw[100] + 1) % 10
open(sys.argv[2], "wb").write(gzip.compress(bytes(raw)))
PY
    ;;
    count) python3 - "$real/t10k-labels-idx1-ubyte.gz" "$dir/t10k-labels-idx1-ubyte.gz" <<'PY'
import gzip, struct, sys
raw = gzip.open(sys.argv[1]).read()
open(sys.argv[2], "wb").write(gzip.compress(raw[:4] + struct.pack(">I", 9000) + raw[8:9008]))
PY
    ;;
  esac
  echo "$dir"
}
printf 'not a checkpoint\n' > "$work/notes.ckpt"

cases=(
  "model=nope"
  "optimizer=adamx"
  "scheduler=step"
  "trainer.max_epoch=3"
  "trainer.limit_val_batches=2"
  "model=dilated_v2 model.dilations=[]"
  "model=dilated_v2 model.dilations=[0,1]"
  "model=dilated_v2 model.dilations=[1.5,2]"
  "model=dilated_v2 model.dilations=[1,2,4,16]"
  "optimizer.lr=-1"
  "optimizer.weight_decay=-1"
  "data.batch_size=0"
  "data.batch_size=60000"
  "data.val_size=60000"
  "trainer.gpus=1"
  "trainer.gpus=4"
  "ckpt_path=/no/such/run"
  "ckpt_path=$work/notes.ckpt"
  "ckpt_path=last paths.log_dir=$work/empty"
  "data.root=$work/none data.system_dir=null data.download=false"
  "data.root=$(damaged md5 md5) data.system_dir=null"
  "data.root=$(damaged trunc truncate) data.system_dir=null"
  "data.root=$(damaged magic magic) data.system_dir=null"
  "data.root=$(damaged count count) data.system_dir=null"
  "optimizer=sgd optimizer.lr=1e30 scheduler=none"
  "trainer.max_epochs=abc"
  "trainer.max_epochs=0"
  "data.verify_checksums=maybe"
  "optimizer.fused=maybe"
  "model=resnet model.width=0"
  "train=false test=false"
  "-m hparams_search=optuna model=cnn"
  "hydra.run.dirx=3"
  "-m --cfg hydra"
  "-cn quick"
  "+trainer.max_epoch=3"
  "model._target_=mypkg.NoSuchNet"
  "model=cnn model.widht=3"
  "data.batch_size=abc"
  "data.augment.hflip=2"
  "seed=-1"
  "module.label_smoothing=2"
  "module.steps_per_call=0"
  "scheduler=cosine scheduler.T_max=0"
  "--config-dir $work/nowhere model=tiny"
  "-m hparams_search=optuna hydra.sweeper.storage=bogus://x"
  "paths.log_dir=/proc/fashion_lab"
  "+model.num_classes=5"
  "trainer.accumulate_grad_batches=0 module.steps_per_call=1"
  "trainer.check_val_every_n_epoch=0"
  "trainer.devices=1000"
  "optimizer.lr=1e6"
  "optimizer=sgd scheduler=none optimizer.lr=0 trainer.limit_train_batches=0.5"
  "model._target_=fashion_lab.models.cnn.cnn model.hidden=64 +model.widht=3"
  "callbacks=[default,early_stopping] callbacks.early_stopping.monitor=val/accc"
)
echo "| overrides | exit | what it printed last |"
echo "| --- | --- | --- |"
for args in "${cases[@]}"; do
  # Hydra's options (and their values) first, then $quick, then the case's overrides, which win
  opts=() overrides=() takes_value=""
  for word in $args; do
    if [ -n "$takes_value" ] || [[ $word == -* ]]; then
      opts+=("$word")
      [[ $word == -cn || $word == --config-name || $word == -cd || $word == --config-dir || $word == --cfg || $word == -c ]] && takes_value=1 || takes_value=""
    else
      overrides+=("$word")
    fi
  done
  # shellcheck disable=SC2086
  out=$(python -m fashion_lab "${opts[@]}" $quick "${overrides[@]}" 2>&1)
  code=$?
  shown=${args//$work/\$TMP}
  last=$(printf '%s\n' "$out" | grep -v '^\s*$' | tail -n 1)
  echo "| \`$shown\` | $code | ${last//$work/\$TMP} |"
done

# a run stopped by a scheduler's signal, then resumed with settings its checkpoint holds
run="$work/run0"
python -m fashion_lab $quick hydra.run.dir="$run" trainer.limit_train_batches=0.05 test=false >/dev/null 2>&1
echo
echo "| command | exit | what it printed last |"
echo "| --- | --- | --- |"
report() {  # report SHOWN COMMAND...: one row
  local shown=$1; shift
  out=$("$@" 2>&1); code=$?
  last=$(printf '%s\n' "$out" | grep -v '^\s*$' | tail -n 1)
  echo "| \`${shown//$work/\$TMP}\` | $code | ${last//$work/\$TMP} |"
}
# shellcheck disable=SC2086
report "timeout --preserve-status -s TERM 15 python -m fashion_lab trainer.max_epochs=6" \
  timeout --preserve-status -s TERM 15 python -m fashion_lab $quick trainer.max_epochs=6 hydra.run.dir="$work/run1"
for change in optimizer.lr=0.05 seed=3 data.val_size=1000 scheduler=cosine model=resnet; do
  # shellcheck disable=SC2086
  report "python -m fashion_lab ckpt_path=$run $change" python -m fashion_lab $quick ckpt_path="$run" $change
done
