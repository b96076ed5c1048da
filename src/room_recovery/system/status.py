"""What `status` and `logs` show: each part's state and health, the rooms, the log files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp

from ..core.errors import ConfigurationError, RoomRecoveryError
from ..core.health import check_health
from ..core.manager import RoomManager
from ..core.settings import Settings
from .options import PART_NAMES, SystemOptions
from .part import PartStatus
from .processes import live_record


def read_status(state_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((state_dir / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def collect_status(settings: Settings, options: SystemOptions) -> dict[str, object]:
    """Each part's pid, port, state and live health, and the room count."""
    supervisor = live_record(options.supervisor_pidfile)
    status = read_status(options.state_dir) or {}
    parts_raw = status.get("parts", {})
    parts: dict[str, dict[str, object]] = dict(parts_raw) if isinstance(parts_raw, dict) else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for name, part in parts.items():
            record = live_record(options.state_dir / "run" / f"{name}.pid")
            part["running"] = record is not None
            url = part.get("health_url")
            if record is None:
                part["healthy"] = False
            elif isinstance(url, str):
                health = await check_health(session, url)
                part["healthy"] = health.healthy
                part["problem"] = health.problem
            else:  # no health check (your own agent): running and past its start
                part["healthy"] = part.get("state") == PartStatus.HEALTHY
    rooms: int | str
    try:
        async with RoomManager(settings=settings, request_timeout=3) as manager:
            rooms = len(await manager.list_rooms())
    except RoomRecoveryError as exc:
        rooms = f"unknown ({exc})"
    return {
        "running": supervisor is not None,
        "supervisor_pid": supervisor.pid if supervisor else None,
        "page_url": status.get("page_url"),
        "ops_url": status.get("ops_url"),
        "log_dir": str(options.state_dir / "logs"),
        "parts": parts,
        "rooms": rooms,
    }


def log_paths(options: SystemOptions, names: list[str]) -> list[Path]:
    """The log files of the named parts (all parts and the supervisor when none is named)."""
    log_dir = options.state_dir / "logs"
    extras = sorted(p.stem for glob in ("agent-*.log", "livekit-*.log") for p in log_dir.glob(glob))
    known = ["supervisor", *PART_NAMES, *extras]
    wanted = names or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ConfigurationError(f"unknown part {unknown[0]!r}: choose from {', '.join(known)}")
    return [log_dir / f"{name}.log" for name in wanted]


def follow(paths: list[Path], lines: int, keep_following: bool) -> None:
    """Print the last `lines` of each log, then (with `keep_following`) new lines as they come."""
    positions: dict[Path, int] = {}
    for path in paths:
        if not path.exists():
            print(f"==> {path} (no log yet)")
            positions[path] = 0
            continue
        text = path.read_text(errors="replace").splitlines()
        print(f"==> {path} <==")
        print("\n".join(text[-lines:]))
        positions[path] = path.stat().st_size
    while keep_following:
        for path in paths:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < positions[path]:  # rotated
                positions[path] = 0
            if size > positions[path]:
                with path.open("rb") as handle:
                    handle.seek(positions[path])
                    chunk = handle.read()
                positions[path] = size
                for line in chunk.decode(errors="replace").splitlines():
                    print(f"[{path.stem}] {line}", flush=True)
        time.sleep(0.3)
