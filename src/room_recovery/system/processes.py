"""Pidfiles that are checked before they are believed, process groups, and who holds a port.

A pidfile records the pid and the exact command line of a process the project started.
It is trusted only while /proc/<pid>/cmdline still matches: a pid the kernel has reused
for another program is never signalled. Nothing here kills by name.

Each part `up` runs leads a session and process group of its own (`group`): a wrapper
(`sh -c ...`, a script) and the worker it starts are stopped together, by signalling the
group, first SIGTERM, then SIGKILL after a bounded grace. A group outlives its leader only
through the leader's own descendants, and Linux never hands out a pid that is still a
group's id: so a group whose leader is gone is still ours, and one whose leader's pid runs
another program no longer exists.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ProcessError

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class PidRecord:
    """What a pidfile holds."""

    name: str
    pid: int
    argv: tuple[str, ...]
    started_at: float
    group: bool = False  # it leads a process group of its own: stop the whole group


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when the process that started it dies.

    So a supervisor, test run or benchmark that is itself killed leaves no orphans.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def command_line(pid: int) -> tuple[str, ...] | None:
    """The running process's argv, or None when no such process exists."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:
        return None  # a zombie, or a kernel thread
    return tuple(part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0"))


def write_pidfile(path: Path, record: PidRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(
        json.dumps(
            {
                "name": record.name,
                "pid": record.pid,
                "argv": list(record.argv),
                "started_at": record.started_at,
                "group": record.group,
            }
        )
    )
    temporary.replace(path)


def read_pidfile(path: Path) -> PidRecord | None:
    """The record, or None when the file is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
        return PidRecord(
            data["name"],
            int(data["pid"]),
            tuple(data["argv"]),
            data["started_at"],
            bool(data.get("group", False)),
        )
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def is_ours(record: PidRecord) -> bool:
    """Whether the pid still runs the very command line we started."""
    return command_line(record.pid) == record.argv


def group_alive(pgid: int) -> bool:
    """Whether any process is left running in process group `pgid` (zombies, dead but not
    yet reaped by whoever inherited them, do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    """The pids of the running (not zombie) processes of group `pgid`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command, which may hold spaces
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to every process of group `pgid` (none left: nothing happens)."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def group_is_ours(record: PidRecord) -> bool:
    """Whether the recorded process group still runs something of ours: its leader with
    our command line, or, the leader gone, the leader's own leftovers."""
    if not record.group:
        return False
    leader = command_line(record.pid)
    if leader is not None and leader != record.argv:
        return False  # the pid runs another program: our group no longer exists
    return group_alive(record.pid)


def leftover_record(path: Path) -> PidRecord | None:
    """Like `live_record`, and also a part whose leader died but whose group lives on."""
    record = read_pidfile(path)
    if record is not None and group_is_ours(record):
        return record
    return live_record(path)


def live_record(path: Path) -> PidRecord | None:
    """The pidfile's record if its process is still ours; a stale pidfile is removed."""
    record = read_pidfile(path)
    if record is None:
        if path.exists():
            logger.warning("removing unreadable pidfile %s", path)
            path.unlink(missing_ok=True)
        return None
    if is_ours(record):
        return record
    logger.info(
        "removing stale pidfile %s (pid %d is gone or runs something else)",
        path,
        record.pid,
        extra={"pidfile": str(path), "pid": record.pid},
    )
    path.unlink(missing_ok=True)
    return None


def stop_recorded(record: PidRecord, grace: float = 10.0) -> bool:
    """SIGTERM the recorded process (its whole group, for a part), wait up to `grace`,
    then SIGKILL it; only if still ours. Returns True when it was running and has stopped.
    """
    if record.group:
        return stop_group(record.pid, grace, record.name) if group_is_ours(record) else False
    if not is_ours(record):
        return False
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_ours(record):
            return True
        time.sleep(0.05)
    if is_ours(record):
        logger.warning(
            "%s (pid %d) ignored SIGTERM for %gs, killing it", record.name, record.pid, grace
        )
        os.kill(record.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while is_ours(record) and time.monotonic() < deadline:
            time.sleep(0.05)
    return not is_ours(record)


def stop_group(pgid: int, grace: float, name: str = "") -> bool:
    """SIGTERM group `pgid`, wait up to `grace` for it to empty, then SIGKILL what is left.
    Blocking: for the CLI (`down`); the supervisor waits asynchronously. True once empty."""
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_alive(pgid):
        logger.warning("%s (group %d) ignored SIGTERM for %gs, killing it", name, pgid, grace)
        signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return not group_alive(pgid)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP port can be bound on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str:
    """Who listens on a TCP port, as 'pid N (command)' when /proc tells, else 'another program'."""
    inodes = _listening_inodes(port)
    if inodes:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                for fd in (proc / "fd").iterdir():
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        argv = command_line(int(proc.name)) or ("?",)
                        return f"pid {proc.name} ({' '.join(argv)[:80]})"
            except (PermissionError, FileNotFoundError, ProcessLookupError, NotADirectoryError):
                continue
    return "another program"


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def require_free_port(port: int, what: str, option: str) -> None:
    """Raise ProcessError naming the port and who holds it, when it is taken."""
    if not port_is_free(port):
        raise ProcessError(
            f"port {port} for {what} is in use by {port_holder(port)}; that program is left "
            f"alone. Stop it, or choose another port with {option}."
        )
