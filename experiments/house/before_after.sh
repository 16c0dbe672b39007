#!/usr/bin/env bash
# The benchmark and the default run for each checkout given, in the order given (alternate them):
#   git worktree add /tmp/before b3a3b00
#   bash experiments/house/before_after.sh /tmp/before . /tmp/before .
# Each checkout runs with this repository's .venv (fashion_lab imported from the checkout).
set -u
py=${PYTHON:-$(pwd)/.venv/bin/python}
for tree in "$@"; do
  rev=$(git -C "$tree" rev-parse --short HEAD)
  bench=$(cd "$tree" && $py -m fashion_lab.benchmark --epochs 3 --repeats 1 2>/dev/null | tail -1)
  echo "$rev benchmark: $bench"
  out=$(mktemp -d)/run
  start=$(date +%s.%N)
  (cd "$tree" && $py -m fashion_lab trainer.enable_progress_bar=false hydra.run.dir="$out" >/dev/null 2>&1)
  end=$(date +%s.%N)
  $py - "$rev" "$out/results.json" "$start" "$end" <<'PY'
import json, sys
rev, path, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
r = json.load(open(path))
print(f"{rev} default run: {end - start:.1f} s wall (command), {r['wall_time_s']} s in results.json, "
      f"{r['train_images_per_s']} train img/s, test acc {r['test_acc']:.4f}, status {r['status']}")
PY
done
