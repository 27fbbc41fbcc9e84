"""Evaluate many (clean, noisy, enhanced) files in parallel, summarise and save the results.

An *item* names one test clip::

    {"id": "clip0001", "snr_label": "-5", "clean_path": ..., "noisy_path": ..., "enhanced_path": ...}

A *record* is the item (paths as str, ``snr_label`` as str) plus the ``compute_metrics`` fields
``noisy``, ``enhanced``, ``delta``, ``errors``, ``seconds``, ``n_samples``.

Files are evaluated in a ``ProcessPoolExecutor`` (forkserver start on Linux), one worker per core.
DNSMOS keeps its ONNX session in a module global of ``metrics``, so each worker loads it once, on
its first DNSMOS call, and reuses it for every later file it gets; a :class:`ScoringPool` keeps
the workers (and their sessions) for several ``evaluate_files`` calls, e.g. one per model.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import math
import multiprocessing
import os
import re
import sys
import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np

from tinyse_tf.atomic import atomic_open
from tinyse_tf.constants import SAMPLE_RATE
from tinyse_tf.evaluation import metrics as _metrics
from tinyse_tf.evaluation.metrics import (DEFAULT_METRICS, error_string,
                                          compute_metrics, empty_result, metric_keys)

SIDES = ("noisy", "enhanced", "delta")
RESULT_FIELDS = ("noisy", "enhanced", "delta", "errors", "seconds", "n_samples")
PATH_FIELDS = ("clean_path", "noisy_path", "enhanced_path")
ALL_LABEL = "all"


_SNR_LABEL = re.compile(r"(?:snr_?)?([-+]?\d+(?:\.\d+)?)\s*(?:dB)?", re.IGNORECASE)


def _load(path) -> np.ndarray:
    """Mono float64 at 16 kHz (any rate or channel count is converted by ``load_audio``)."""
    from tinyse_tf.data.audio_io import load_audio

    return load_audio(path, SAMPLE_RATE).astype(np.float64)


def _new_record(item: Mapping) -> dict:
    rec = dict(item)
    rec["id"] = str(rec.get("id"))
    rec["snr_label"] = str(rec.get("snr_label"))
    for key in PATH_FIELDS:
        if key in rec:
            rec[key] = os.fspath(rec[key])
    return rec


def evaluate_item(item: Mapping, metrics: Sequence[str] = DEFAULT_METRICS) -> dict:
    """Load one item's three files and compute its record; never raises for a bad file.

    Without ``noisy_path`` only the enhanced file is scored (``noisy``/``delta`` empty).
    An item may carry ``noisy_values`` (the ``noisy`` dict of an earlier record of the same
    clean/noisy pair) to skip the noisy side; it is not copied into the record.
    """
    item = dict(item)
    noisy_values = item.pop("noisy_values", None)
    rec = _new_record(item)
    try:
        clean, enhanced = _load(item["clean_path"]), _load(item["enhanced_path"])
        noisy = _load(item["noisy_path"]) if "noisy_path" in item else None
    except Exception as exc:
        result = empty_result(metrics)
        if "noisy_path" not in item:
            result["noisy"], result["delta"] = {}, {}
        # AudioError messages already name the file and the fix in one line.
        result["errors"]["input"] = str(exc) if hasattr(exc, "path") else error_string(exc)
    else:
        result = compute_metrics(clean, noisy, enhanced, metrics, noisy_values=noisy_values)
    rec.update(result)
    return rec


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. under ``taskset`` or a container's
    cpuset), else ``os.cpu_count()``: the default number of workers."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _init_worker() -> None:
    """Pool initializer: drop a DNSMOS session inherited through fork; each worker loads its own."""
    _metrics.forget_dnsmos()


def _start_method(requested: str | None) -> str | None:
    """forkserver on Linux unless asked otherwise (see ``evaluate_files``)."""
    if requested is None:
        methods = multiprocessing.get_all_start_methods()
        return "forkserver" if sys.platform.startswith("linux") and "forkserver" in methods else None
    if requested == "fork" and _metrics.dnsmos_loaded():
        warnings.warn("mp_context='fork' after DNSMOS ran in this process: onnxruntime does not "
                      "survive fork and the workers' DNSMOS calls can hang; use 'forkserver'",
                      RuntimeWarning, stacklevel=3)
    return requested


class ScoringPool:
    """Worker processes shared by several ``evaluate_files(..., pool=)`` calls, so workers start,
    import the metric libraries and load DNSMOS once, not once per call. A context manager.

    A pool broken by a crashed worker (e.g. a segfault in a C library) fails the files in flight
    (``errors["worker"]``) and is replaced by a fresh one at the next submit.

    Args:
        workers: processes; None -> ``usable_cores()``. Started on demand, up to this many.
        mp_context: start method, as for ``evaluate_files``.
    """

    def __init__(self, workers: int | None = None, mp_context: str | None = None):
        self.workers = int(usable_cores() if workers is None else workers)
        if self.workers <= 0:
            raise ValueError(f"ScoringPool needs at least one worker, got {workers}")
        self._context = multiprocessing.get_context(_start_method(mp_context))
        self._executor = self._new_executor()

    def _new_executor(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context,
                                      initializer=_init_worker)

    def submit(self, fn, *args) -> cf.Future:
        try:
            return self._executor.submit(fn, *args)
        except cf.BrokenExecutor:  # a worker died earlier
            self._executor.shutdown(wait=False)
            self._executor = self._new_executor()
            return self._executor.submit(fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "ScoringPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def evaluate_files(items: Iterable[Mapping], metrics: Sequence[str] = DEFAULT_METRICS,
                   workers: int | None = None, progress: bool = True,
                   mp_context: str | None = None, pool: ScoringPool | None = None) -> list[dict]:
    """Compute per-file metrics for many items, in parallel over files.

    Args:
        items: dicts with ``id``, ``snr_label``, ``clean_path``, ``enhanced_path`` and, for
            improvements over the input, ``noisy_path`` (any rate or channel count); other keys
            are copied into the records.
        metrics: metric groups, a subset of ``("si_sdr", "sdr", "pesq", "estoi", "dnsmos")``.
        workers: worker processes; None -> ``usable_cores()``; 0 -> evaluate in this process.
        progress: show a tqdm progress bar.
        mp_context: multiprocessing start method. None -> "forkserver" on Linux (the platform
            default elsewhere): "fork" is faster to start but a forked worker hangs in onnxruntime
            when DNSMOS already ran in this process, and inherits TensorFlow's threads. With
            forkserver/spawn, a calling script needs an ``if __name__ == "__main__":`` guard.
        pool: a :class:`ScoringPool` to run in (``workers`` and ``mp_context`` are then unused);
            None -> a pool of ``workers`` processes for this call only.
    Returns:
        One record per item, in input order, the same whichever way they are run. A file that
        fails to load, or a metric that fails, gives NaN values and an ``errors`` entry; a
        crashed worker gives ``errors["worker"]``.
    """
    items = list(items)
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    metric_keys(metrics)  # validate names before starting any worker
    for item in items:
        missing = [k for k in ("id", "snr_label", "clean_path", "enhanced_path") if k not in item]
        clash = [k for k in RESULT_FIELDS if k in item]
        if missing or clash:
            raise ValueError(f"bad item {item!r}: missing {missing}, reserved keys {clash}")
    if not items:
        return []
    if workers is None:
        workers = usable_cores()
    workers = min(int(workers), len(items))

    from tqdm.auto import tqdm

    records: list[dict | None] = [None] * len(items)
    with tqdm(total=len(items), desc="evaluate", unit="file", disable=not progress) as bar:
        if pool is None and workers <= 0:
            for i, item in enumerate(items):
                records[i] = evaluate_item(item, metrics)
                bar.update()
            return records
        with (ScoringPool(workers, mp_context) if pool is None
              else contextlib.nullcontext(pool)) as pool:
            futures = {pool.submit(evaluate_item, item, metrics): i for i, item in enumerate(items)}
            for fut in cf.as_completed(futures):
                i = futures[fut]
                try:
                    records[i] = fut.result()
                except Exception as exc:  # e.g. BrokenProcessPool after a segfault in a C library
                    rec = _new_record(items[i])
                    rec.update(empty_result(metrics))
                    rec["errors"]["worker"] = error_string(exc)
                    records[i] = rec
                bar.update()
    return records


def snr_value(label) -> float | None:
    """The input SNR a label names ("-5", "snr_-5", "5 dB" -> -5.0 / 5.0), or None ("mixed")."""
    match = _SNR_LABEL.fullmatch(str(label).strip())
    return float(match.group(1)) if match else None


def label_order(labels: Iterable[str]) -> list[str]:
    """Numeric SNR labels ascending, then the others in first-seen order."""
    labels = list(dict.fromkeys(labels))
    numeric = sorted((lab for lab in labels if snr_value(lab) is not None), key=snr_value)
    return numeric + [lab for lab in labels if snr_value(lab) is None]


def _keys_of(records: Sequence[Mapping]) -> list[str]:
    keys: dict[str, None] = {}
    for rec in records:
        for side in SIDES:
            keys.update(dict.fromkeys(rec.get(side, {})))
    return list(keys)


def _stats(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)}


def summarize(records: Sequence[Mapping]) -> dict:
    """Mean, standard deviation (ddof=0) and count of every metric, per SNR label and overall.

    NaN values (failed metrics) are left out; ``n`` counts the finite values used.

    Returns:
        ``{snr_label: {side: {metric_key: {"mean", "std", "n"}}}}`` with side in noisy / enhanced /
        delta; labels ordered numerically (-5, 0, 5), then the others (e.g. "mixed"), then "all"
        over every record.
    """
    keys = _keys_of(records)
    groups: dict[str, list[Mapping]] = {lab: [] for lab in label_order(str(r["snr_label"]) for r in records)}
    for rec in records:
        groups[str(rec["snr_label"])].append(rec)
    groups[ALL_LABEL] = list(records)
    return {
        label: {side: {k: _stats([r.get(side, {}).get(k, math.nan) for r in group]) for k in keys}
                for side in SIDES}
        for label, group in groups.items()
    }


def write_records_csv(records: Sequence[Mapping], path, sides: Sequence[str] = SIDES,
                      id_header: Sequence[str] = ("id", "snr_label")) -> None:
    """Write one row per record (atomically): the id and SNR label (headed ``id_header``),
    <side>.<metric> columns for ``sides``, n_samples, the three paths when present, and
    ``errors`` as "key: message" joined by " | "."""
    keys = _keys_of(records)
    paths = [k for k in PATH_FIELDS if any(k in r for r in records)]
    header = [*id_header, *(f"{s}.{k}" for k in keys for s in sides), "n_samples", *paths,
              "errors"]
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for rec in records:
            errors = " | ".join(f"{k}: {v}" for k, v in rec.get("errors", {}).items())
            writer.writerow([rec["id"], rec["snr_label"],
                             *(repr(float(rec.get(s, {}).get(k, math.nan))) for k in keys
                               for s in sides),
                             rec.get("n_samples", 0), *(rec.get(k, "") for k in paths), errors])
