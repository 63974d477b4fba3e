"""CPU time and resident memory of whole process groups, read from /proc.

Every platform component runs as its own process group (twitch_pipeline/platform/process.py), and some
start children: the TaskManager its PyFlink Python workers, `produce` nothing, the ClickHouse server its
threads only. Summing over the group counts the children too; a child that exited and was reaped by a
member is still counted through the member's cutime/cstime.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Usage:
    cpu_s: float  # user + system, the group's members and their reaped children
    rss_mb: float  # resident memory of the members now
    processes: int


def group_usage(pgid: int) -> Usage:
    cpu = rss = count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces and brackets
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) != pgid:
            continue
        cpu += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
        rss += int(fields[21])
        count += 1
    return Usage(cpu / _TICK, rss * _PAGE / 2**20, count)
