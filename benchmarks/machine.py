"""What a benchmark ran on, for its JSON: one definition shared by the scripts in benchmarks/."""
from __future__ import annotations

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
