"""Shared by the scripts in benchmarks/: what a benchmark ran on, and where its JSON report goes."""
from __future__ import annotations

import json
import os
import platform


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """``{"platform", "processor", "cpus", "python"}`` of this machine."""
    return {"platform": platform.platform(), "processor": cpu_name(), "cpus": os.cpu_count(),
            "python": platform.python_version()}


def emit_json(report: dict, path=None) -> None:
    """Write ``report`` as indented JSON to ``path`` (atomically), or print it when no path."""
    from tinyse_tf.atomic import atomic_write_text

    text = json.dumps(report, indent=2)
    if path:
        atomic_write_text(path, text + "\n")
    else:
        print(text)


def write_report(out, report: dict, text: str) -> None:
    """Write ``OUT.json`` (the report) and ``OUT.md`` (its table) atomically; print the table."""
    from tinyse_tf.atomic import atomic_write_json, atomic_write_text

    atomic_write_json(f"{out}.json", report)
    atomic_write_text(f"{out}.md", text)
    print(text)
