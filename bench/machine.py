"""What a benchmark ran on, for its report. Standard library only: the bench scripts run in different runtimes."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, TypeVar


def _cpu_model() -> Optional[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_bytes() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _load_average() -> Optional[Tuple[float, float, float]]:
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine() -> Dict[str, Any]:
    """CPU model, logical cores, RAM, OS, Python version and the load average when called.

    Keys: `os`, `os_release`, `arch`, `cpu` (None if unknown), `cores`, `ram_bytes` (None if unknown),
    `python`, `load_avg` (1, 5 and 15 minutes, or None where the OS has none).
    """
    return {
        "os": platform.system(),
        "os_release": platform.release(),
        "arch": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_bytes": _ram_bytes(),
        "python": platform.python_version(),
        "load_avg": _load_average(),
    }


def machine_line(info: Dict[str, Any], *extra: str) -> str:
    """One line for a report from `machine()`'s `info`: OS, CPU, cores, RAM and Python, then each of `extra`."""
    ram = info["ram_bytes"]
    return ", ".join([
        f"{info['os']} {info['os_release']} {info['arch']}",
        info["cpu"] or "unknown CPU",
        f"{info['cores']} cores",
        f"{ram / 2**30:.1f} GiB RAM" if isinstance(ram, int) else "RAM unknown",
        f"Python {info['python']}",
        *extra,
    ])


def uptime() -> str:
    """What the `uptime` command prints (empty if it prints nothing)."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()

S = TypeVar("S", bound="Sampler")


class Sampler:
    """Calls `sample()` every `interval` seconds on a thread, from entering the `with` block to
    leaving it (`wanted()` False: not at all)."""

    interval = 0.25

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def wanted(self) -> bool:
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self: S) -> S:
        if self.wanted():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
