"""Wall time of the recipe's evaluation stage at the demo's size, row by row.

    python benchmarks/evaluation_stage.py                 # run folder runs/eval-bench
    python benchmarks/evaluation_stage.py --out DIR

The first call builds a run folder with the demo preset's test set (12 utterances x 4 s at -5 / 0 /
5 dB and mixed SNR: 48 files), models, int8 files and metrics, trained for a few steps only:
enhancing and scoring cost the same whatever the weights. Every call then removes ``enhanced/``,
``eval/`` and ``report/`` and times ``Run.evaluate`` (enhance the test set with the 4 Keras models
and the 4 int8 streaming files, score every row, write the report), as the recipe runs it.
Prints one JSON object: seconds per row, the total wall time, the CPU seconds it used (this
process and its worker processes: what an idle machine would divide by its cores), the CPU and
its load average (other jobs on the same cores slow every row).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import threading
import time
from machine import cpu_name  # benchmarks/machine.py: the script folder is on sys.path

#: The demo preset with its training cut to a few steps (test set, models and metrics unchanged).
SHORT_TRAINING = dict(steps_per_epoch=2, validation_steps=1, teacher_epochs=1, student_epochs=2,
                      step1_epochs=1, qat_steps=2)


class TreeCpu:
    """CPU seconds (user + system) used by this process and all its descendants while the block
    runs, sampled from /proc every ``interval`` s (Linux). Pool workers are grandchildren (started
    by multiprocessing's fork server), so ``resource.getrusage`` would miss them; a process that
    ends loses at most its last ``interval`` here. ``seconds`` is None without /proc."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.seconds = interval, None
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _sample(self) -> None:
        parent, cpu = {}, {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue  # ended meanwhile
                parent[int(entry)] = int(fields[1])
                cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / self._tick
        mine = {os.getpid()}
        for pid in parent:  # walk up from each process: is this one an ancestor?
            chain, p = [], pid
            while p in parent and p not in mine:
                chain.append(p)
                p = parent[p]
            if p in mine:
                mine.update(chain)
        for pid in mine:
            self._last[pid] = cpu.get(pid, self._last.get(pid, 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "TreeCpu":
        if os.path.isdir("/proc"):
            self._sample()
            self._start = sum(self._last.values())
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if os.path.isdir("/proc"):
            self._stop.set()
            self._thread.join()
            self._sample()
            self.seconds = round(sum(self._last.values()) - self._start, 1)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/eval-bench", help="run folder (built on first use)")
    args = p.parse_args(argv)

    from tinyse_tf.recipe.presets import get_preset
    from tinyse_tf.recipe.two_step import open_run

    out = pathlib.Path(args.out)
    run = open_run("demo", get_preset("demo", **SHORT_TRAINING), out, verbose=0)
    models = run.train_all()
    files = run.export_all(models)
    for stage in ("enhanced", "eval", "report"):
        shutil.rmtree(out / stage, ignore_errors=True)
    run.timings.clear()
    load = round(os.getloadavg()[0], 1)  # other jobs on the cores slow every row
    t0 = time.perf_counter()
    with TreeCpu() as cpu:
        run.evaluate(models, files)
    result = {"evaluation_s": round(time.perf_counter() - t0, 1), "cpu_s": cpu.seconds,
              "rows_s": {k[len("eval_"):-2]: v for k, v in run.timings.items()
                         if k.startswith("eval_")},
              "files": len(run.test_items), "rows": 4 + len(files),
              "cpu": cpu_name(), "cores": os.cpu_count(),
              "load_average_1min": {"start": load, "end": round(os.getloadavg()[0], 1)}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
