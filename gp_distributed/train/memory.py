"""Resident memory of this process, for the workers' memory metrics (Linux /proc; 0.0 elsewhere).

`peak_rss_gib` is the kernel's high-water mark of resident memory (VmHWM); `reset_peak_rss` sets it back
to the current resident size (writing 5 to /proc/self/clear_refs), so a phase's peak can be told apart
from an earlier, larger one (building the whole model before ZeRO-3 partitions it).
"""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_rss_gib() -> float:
    """Peak resident set size of this process since start or the last `reset_peak_rss`, in GiB."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return 0.0


def reset_peak_rss() -> None:
    """Start a new peak from the current resident size (no-op where the kernel does not allow it)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass
