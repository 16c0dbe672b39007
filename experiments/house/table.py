"""What before_after.sh printed, as a table: `python experiments/house/table.py LOG`."""

import json
import re
import sys
from pathlib import Path

HEADER = (
    "| code | benchmark: framework img/s | hand loop img/s | framework / hand loop "
    "| default run: wall (command) | wall (results.json) | training img/s | test accuracy |"
)
RUN = re.compile(
    r"([\d.]+) s wall .*?, ([\d.]+) s in results.json, ([\d.]+) train img/s, test acc ([\d.]+)"
)

rows, bench = [], {}
for line in Path(sys.argv[1]).read_text().splitlines():
    rev, _, rest = line.partition(" ")
    if rest.startswith("benchmark: "):
        bench[rev] = json.loads(rest.removeprefix("benchmark: "))
        continue
    run = RUN.search(rest)
    b = bench.pop(rev)
    rows.append(
        f"| {rev} | {b['framework']['images_per_s']:,} | {b['hand_loop']['images_per_s']:,} | "
        f"{b['framework_vs_hand_loop']:.3f} | {run[1]} s | {run[2]} s | {float(run[3]):,.0f} | "
        f"{float(run[4]):.2%} |"
    )
print(HEADER)
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
print("\n".join(rows))
