#!/usr/bin/env bash
# An uneven search (the cnn, trials of 1 or 4 epochs drawn by a seeded random sampler: the
# lockstep code draws the same trials each time, the asynchronous code's two processes each
# draw their own) with two jobs at a time on the parallel launcher, for each checkout given,
# in the order given: its wall time and the epochs its trials ran, in trial order.
#   git worktree add /tmp/before b3a3b00
#   bash experiments/search/uneven.sh /tmp/before . /tmp/before .
# Each checkout runs with this repository's .venv; the data: 8,000 synthetic training images.
set -u
py=${PYTHON:-$(pwd)/.venv/bin/python}
data=$(mktemp -d)
$py -c "import sys; sys.path.insert(0, 'tests'); from conftest import write_dataset; from pathlib import Path; write_dataset(Path('$data'), n_train=8000, n_test=500)"
for tree in "$@"; do
  rev=$(git -C "$tree" rev-parse --short HEAD)
  out=$(mktemp -d)
  start=$(date +%s.%N)
  (cd "$tree" && $py -m fashion_lab -m hydra/sweeper=optuna hydra/launcher=parallel \
    hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2 hydra.sweeper.n_trials=8 \
    hydra.sweeper.pruner=null '~hydra.sweeper.sampler.n_startup_trials' \
    hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler \
    'trainer.max_epochs=choice(1,4)' 'optimizer.lr=interval(0.001,0.002)' \
    data.root="$data" data.system_dir=null data.download=false data.verify_checksums=false \
    data.val_size=500 trainer.enable_progress_bar=false paths.log_dir="$out" \
    hydra.sweep.dir="$out/sweep" trainer.precision=32-true module.steps_per_call=1 \
    >/dev/null 2>&1)
  end=$(date +%s.%N)
  $py - "$rev" "$out/sweep" "$start" "$end" <<'PY'
import json, sys
from pathlib import Path
rev, sweep, start, end = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
paths = sorted(sweep.glob("*/results.json"), key=lambda p: int(p.parent.name.split("_")[0]))
records = [json.loads(p.read_text()) for p in paths]
epochs = [r.get("epochs") for r in records]
print(f"{rev}: {end - start:.1f} s wall, {len(records)} trials, epochs {epochs} "
      f"(sum {sum(e or 0 for e in epochs)}), statuses {sorted({r['status'] for r in records})}")
PY
done
