"""systemd units, for a deployment that does not depend on `up`'s own supervisor.

`room-recovery units --out DIR` writes one unit for each of the watchdog, the page server
and the demo agent (`room-recovery-watchdog.service`, `room-recovery-web.service`,
`room-recovery-agent.service`), with the same commands `up` runs, and `room-recovery.env`:
every setting, the API secret included, readable by its owner only. systemd reads an
`EnvironmentFile` as root before it starts the service as `User=`, so the owner may be the
service's own user. Every unit runs as `User=`, never root (`units` refuses it). Logs go
to journald (`journalctl -u room-recovery-watchdog`); a part that fails is restarted after
a second. livekit-server and your own agent keep their units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..core.logs import LOG_FORMAT_VARIABLE
from ..core.settings import PER_PROCESS_FIELDS, Settings
from .files import write_private
from .options import SystemOptions
from .parts import plan_system
from .supervisor import PartSpec

ENV_FILE = "room-recovery.env"
UNITS = {  # part name → unit name, and what it is
    "watch": ("room-recovery-watchdog", "watchdog: gets an agent to every person left waiting"),
    "web": ("room-recovery-web", "page server: the voice page and its tokens"),
    "agent": ("room-recovery-agent", "demo agent worker"),
}


@dataclass(frozen=True)
class UnitFiles:
    """What `write_units` wrote."""

    env_file: Path
    units: dict[str, Path]  # unit name → its file


def systemd_quote(value: str) -> str:
    """One word for an `ExecStart=` or `Environment=` line, as systemd reads it back:
    double-quoted when it needs to be, with `%` (systemd's specifiers) doubled."""
    value = value.replace("%", "%%")
    if value and not any(c in value for c in " \t\"'\\;$"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_file_text(settings: Settings) -> str:
    """Every setting under the name it is read from, for systemd's `EnvironmentFile`."""
    lines = ["# room-recovery's settings (written by `room-recovery units`); keep it 0600"]
    for name, value in settings.model_dump(exclude=set(PER_PROCESS_FIELDS)).items():
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{name.upper()}="{text}"')
    return "\n".join(lines) + "\n"


def unit_text(
    part: PartSpec,
    description: str,
    env_file: Path,
    working_directory: Path,
    user: str,
    extra_env: Mapping[str, str] | None = None,
) -> str:
    """The unit that runs `part` under systemd: restarted on failure, logs to journald
    (as text lines: journald adds its own fields)."""
    environment = {k: v for k, v in part.env.items() if k != LOG_FORMAT_VARIABLE}
    environment |= extra_env or {}
    service = [
        "Type=simple",
        f"EnvironmentFile={env_file}",
        *(f"Environment={systemd_quote(f'{k}={v}')}" for k, v in sorted(environment.items())),
        f"WorkingDirectory={working_directory}",
        "ExecStart=" + " ".join(systemd_quote(arg) for arg in part.argv),
        "Restart=on-failure",
        "RestartSec=1",
        "TimeoutStopSec=20",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        f"User={user}",
    ]
    return "\n".join(
        [
            "[Unit]",
            f"Description=room-recovery {description}",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            *service,
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def write_units(
    settings: Settings,
    options: SystemOptions,
    out: Path,
    working_directory: Path,
    user: str,
    extra_env: Mapping[str, Mapping[str, str]] | None = None,
) -> UnitFiles:
    """Write the env file (0600) and a unit for each part `options` runs, into `out`;
    `extra_env` adds variables to a part's unit, by part name."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env_file = out / ENV_FILE
    write_private(env_file, env_file_text(settings))
    units: dict[str, Path] = {}
    for part in plan_system(settings, options).parts:
        if part.name not in UNITS:
            continue  # livekit-server and your own agents have units of their own
        name, description = UNITS[part.name]
        path = out / f"{name}.service"
        more = (extra_env or {}).get(part.name)
        path.write_text(unit_text(part, description, env_file, working_directory, user, more))
        units[name] = path
    return UnitFiles(env_file, units)


def install_commands(files: UnitFiles) -> list[str]:
    """The commands that install and start the units."""
    names = " ".join(files.units)
    paths = " ".join(str(path) for path in files.units.values())
    return [
        f"sudo systemctl link {paths}",
        "sudo systemctl daemon-reload",
        f"sudo systemctl enable --now {names}",
    ]
