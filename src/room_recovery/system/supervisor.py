"""The supervisor: starts the parts of the voice system, watches them, restarts them, stops them.

Each part is a child process with a pidfile (checked against its command line before any
signal), a rotated log file fed from its output, and an optional health URL. A part that
dies is restarted with backoff (`policy.restart_delay`); one that keeps dying is marked
failed and left stopped (`policy.should_give_up`), and `status` says so. Each part leads a
process group of its own: a stop or a restart signals the whole group (a wrapper such as
`sh -c` and the worker it started), SIGTERM, then SIGKILL after the part's grace, and what
a dead part left in its group is killed before it starts again. Children get SIGTERM if the
supervisor itself dies (PR_SET_PDEATHSIG); `up` stops any group left over by pidfile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.handlers
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import aiohttp

from ..core.errors import ProcessError
from ..core.health import PartHealth, check_health
from ..rules import restart as policy
from ..rules.restart import RestartPolicy
from .part import (
    PartObserver,
    PartSpec,
    PartState,
    PartStatus,
    exit_of,
    part_status,
    start_process,
)
from .part_output import drain_output, output_lines, rotating_log
from .processes import (
    PidRecord,
    group_alive,
    signal_group,
    write_pidfile,
)

logger = logging.getLogger(__name__)

__all__ = ["PartObserver", "PartSpec", "PartState", "Supervisor", "answers", "exit_of"]


class Supervisor:
    """Runs parts in order; `async with Supervisor(...)` stops them all on exit."""

    def __init__(
        self,
        state_dir: Path,
        parts: list[PartSpec],
        restart: RestartPolicy | None = None,
        after_start: Mapping[str, Callable[[], Awaitable[None]]] | None = None,
        extra_status: Mapping[str, object] | None = None,
        observers: Mapping[str, PartObserver] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.parts = {spec.name: PartState(spec) for spec in parts}
        self.restart = restart or RestartPolicy()
        self.after_start = dict(after_start or {})
        self.observers = dict(observers or {})
        self.extra_status = dict(extra_status or {})
        self._stopping = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every part in order, each healthy before the next; run `after_start` hooks."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for part in self.parts.values():
                await self._start_part(part)
                await self._wait_healthy(part)
                hook = self.after_start.get(part.spec.name)
                if hook is not None:
                    await hook()
                self._watchers.append(asyncio.create_task(self._watch(part)))
        except BaseException:
            await self.stop()
            raise

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Stop every part, last started first, each with a bounded wait."""
        self._stopping.set()
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()
        for part in reversed(list(self.parts.values())):
            await self._stop_part(part)
            self._set_state(part, PartStatus.STOPPED)
            observer = self.observers.get(part.spec.name)
            if observer is not None:
                await observer.exited()
        self._write_status()

    async def _start_part(self, part: PartState) -> None:
        spec = part.spec
        self._set_state(part, PartStatus.STARTING)
        part_log = rotating_log(self.log_dir / f"{spec.name}.log")
        try:
            process, part.exited = await start_process(spec.argv, os.environ | spec.env)
        except OSError as exc:
            raise ProcessError(f"could not start {spec.name} ({spec.argv[0]}): {exc}") from None
        part.process = process
        part.pid = process.pid
        part.ready = asyncio.Event()
        part.misconfigured = None
        part.log_task = asyncio.create_task(self._copy_output(process, part_log, part))
        write_pidfile(
            self.run_dir / f"{spec.name}.pid",
            PidRecord(spec.name, process.pid, spec.argv, time.time(), group=True),
        )
        logger.info("started %s", spec.name, extra={"part": spec.name, "pid": process.pid})
        self._write_status()

    async def _copy_output(
        self, process: asyncio.subprocess.Process, part_log: logging.Logger, part: PartState
    ) -> None:
        """Copy the child's output to its log in chunks: a line of any length (cut into
        MAX_LINE pieces) never blocks the child on a full pipe."""
        assert process.stdout is not None
        ready_line = part.spec.ready_line
        observer = self.observers.get(part.spec.name)
        async for text in output_lines(process.stdout):
            part_log.info(text)
            if ready_line is not None and ready_line in text:
                if observer is not None:
                    self._misconfigured(part, observer.registered(text))
                part.ready.set()

    def _misconfigured(self, part: PartState, problem: str | None) -> None:
        if problem is None or problem == part.misconfigured:
            return
        part.misconfigured = part.problem = problem
        logger.error("%s", problem, extra={"part": part.spec.name})
        self._write_status()

    async def _wait_healthy(self, part: PartState) -> None:
        spec = part.spec
        started = time.monotonic()
        deadline = started + spec.ready_timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                process = part.process
                if process is None or process.returncode is not None:
                    code = process.returncode if process else None
                    raise ProcessError(
                        f"{spec.name} exited with code {code} while starting; see "
                        f"{self.log_dir / (spec.name + '.log')}"
                    )
                if part.misconfigured is not None:
                    raise ProcessError(part.misconfigured)
                if spec.health_url is None:
                    settled = time.monotonic() - started >= spec.settle
                    healthy = settled or part.ready.is_set()
                else:
                    healthy = await answers(session, spec.health_url)
                if healthy:
                    self._set_state(part, PartStatus.HEALTHY)
                    logger.info("%s is healthy", spec.name, extra={"part": spec.name})
                    return
                if time.monotonic() > deadline:
                    raise ProcessError(
                        f"{spec.name} did not become healthy within {spec.ready_timeout:g} s "
                        f"({spec.health_url}); see {self.log_dir / (spec.name + '.log')}"
                    )
                await asyncio.sleep(0.1)

    async def _watch(self, part: PartState) -> None:
        """Restart the part whenever it dies, with backoff, until stopping or giving up."""
        while not self._stopping.is_set():
            assert part.process is not None
            code = await self._until_exit(part)
            await self._end_group(part)  # what it started dies with it, before a new one
            await drain_output(part.log_task, part.spec.name)
            observer = self.observers.get(part.spec.name)
            if observer is not None:
                await observer.exited()
            if self._stopping.is_set():
                return
            now = time.time()
            part.last_exit = code
            part.crash_times.append(now)
            if policy.should_give_up(part.crash_times, now, self.restart):
                self._set_state(part, PartStatus.FAILED)
                logger.error(
                    "%s died %d times within %gs; not restarting it. Fix the cause (see its "
                    "log), then `room-recovery restart`",
                    part.spec.name,
                    len(part.crash_times),
                    self.restart.window,
                    extra={"part": part.spec.name, "exit_code": code},
                )
                return
            delay = policy.restart_delay(
                policy.recent_crashes(part.crash_times, now, self.restart), self.restart
            )
            self._set_state(part, PartStatus.RESTARTING)
            logger.warning(
                "%s exited with code %s; restarting in %gs",
                part.spec.name,
                code,
                delay,
                extra={"part": part.spec.name, "exit_code": code, "delay": delay},
            )
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            except TimeoutError:
                pass
            part.restarts += 1
            try:
                await self._start_part(part)
                await self._wait_healthy(part)
            except ProcessError as exc:
                logger.warning("%s", exc)
                continue
            hook = self.after_start.get(part.spec.name)
            if hook is not None:
                await hook()

    async def _until_exit(self, part: PartState) -> int:
        """Wait for the part to exit, checking its health every `health_every` seconds on
        the way; a part stalled or silent for `unhealthy_after` seconds is killed (the
        caller restarts it with the usual backoff)."""
        process, spec = part.process, part.spec
        assert process is not None
        if spec.health_url is None:
            return await exit_of(part)
        exited = asyncio.create_task(exit_of(part))
        timeout = aiohttp.ClientTimeout(total=max(1.0, min(spec.health_every, 5.0)))
        bad_since: float | None = None
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                while not (await asyncio.wait({exited}, timeout=spec.health_every))[0]:
                    health = await check_health(session, spec.health_url)
                    if exited.done():
                        break
                    bad_since = self._note_health(part, health, bad_since)
                    if bad_since is not None and time.monotonic() - bad_since >= (
                        spec.unhealthy_after
                    ):
                        logger.error(
                            "%s has been %s for %gs (%s); killing it to restart it",
                            spec.name,
                            health.verdict,
                            spec.unhealthy_after,
                            health.problem,
                            extra={"part": spec.name, "pid": process.pid},
                        )
                        signal_group(process.pid, signal.SIGKILL)
                        break
            return await exited
        finally:
            exited.cancel()

    def _note_health(
        self, part: PartState, health: PartHealth, bad_since: float | None
    ) -> float | None:
        """Record a health check in the status; returns since when it needs a restart."""
        state = part_status(health)
        if state != part.state or health.problem != part.problem:
            if health.healthy:
                logger.info("%s is healthy again", part.spec.name, extra={"part": part.spec.name})
            else:
                logger.warning(
                    "%s is %s: %s",
                    part.spec.name,
                    health.verdict,
                    health.problem,
                    extra={"part": part.spec.name},
                )
            part.problem = health.problem
            self._set_state(part, state)
        if not health.needs_restart:
            return None
        return bad_since if bad_since is not None else time.monotonic()

    async def _stop_part(self, part: PartState) -> None:
        process = part.process
        if process is not None and (process.returncode is None or group_alive(process.pid)):
            signal_group(process.pid, signal.SIGTERM)
            if not await self._group_ends(part, part.spec.stop_grace):
                logger.warning(
                    "%s (group %d) still running %gs after SIGTERM; killing it",
                    part.spec.name,
                    process.pid,
                    part.spec.stop_grace,
                )
                signal_group(process.pid, signal.SIGKILL)
                await self._group_ends(part, 5.0)
            logger.info("stopped %s", part.spec.name, extra={"part": part.spec.name})
        await drain_output(part.log_task, part.spec.name)
        (self.run_dir / f"{part.spec.name}.pid").unlink(missing_ok=True)

    async def _end_group(self, part: PartState) -> None:
        """Kill what a part that exited left in its group (a wrapper's child, say)."""
        process = part.process
        if process is not None and group_alive(process.pid):
            logger.warning(
                "%s exited, leaving processes in its group; killing them",
                part.spec.name,
                extra={"part": part.spec.name},
            )
            signal_group(process.pid, signal.SIGKILL)
            await self._group_ends(part, 5.0)

    @staticmethod
    async def _group_ends(part: PartState, timeout: float) -> bool:
        """Wait up to `timeout` for the part and everything in its group to end."""
        deadline = time.monotonic() + timeout
        try:
            await asyncio.wait_for(exit_of(part), timeout)
        except TimeoutError:
            return False
        assert part.process is not None
        while group_alive(part.process.pid):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _set_state(self, part: PartState, state: PartStatus) -> None:
        """The one place a part's state changes; status.json records it at once."""
        part.state = state
        self._write_status()

    def _write_status(self) -> None:
        status = {
            "supervisor_pid": os.getpid(),
            "updated_at": time.time(),
            "parts": {name: part.to_dict() for name, part in self.parts.items()},
        } | self.extra_status
        path = self.state_dir / "status.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status, indent=2))
        temporary.replace(path)


async def answers(session: aiohttp.ClientSession, url: str) -> bool:
    """Whether `url` answers 200 (any failure to reach it is a no)."""
    try:
        async with session.get(url) as response:
            return response.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False
