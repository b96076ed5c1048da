"""One acting watchdog among many: a lease in Redis (redis-py's `Lock`), renewed and fenced.

Any number of watchdogs may run against one deployment, one per machine. With `REDIS_URL`
set they share a lock in Redis; the one holding it leads and acts, the others keep their
view of the rooms and wait. The lease lasts `lease` seconds and the leader renews it every
`renew` seconds (`Lock.reacquire`, refused once the lock is no longer its own), so a standby
takes over at most `lease + renew` seconds after the leader dies.

Fencing: each time a watchdog takes the lead it draws the next epoch (`INCR`). Before every
action (a dispatch, a removal, a room's status) `fence()` checks that its lease has not run
out on its own clock, and that the epoch and the lock in Redis are still its own (a Redis
restarted empty starts the epochs again: the lock's random token tells two leads apart).
A Redis round trip is not the call itself, so `check_lease()` is checked again *right
before each LiveKit call that changes something* (`Transport.before_change`), on this
watchdog's monotonic clock, which runs on while the process is stopped: a leader stalled
between its fence and its call finds, when it resumes, that its lease ran out, and does not
make the call. Each such call is bounded well below the lease (`CALL_TIMEOUT`), so one that
started in time ends before a successor may act. Each dispatch also `claim`s its room
(`SET NX` with an expiry): all watchdogs together dispatch to a room at most once per claim,
across a change of leader.
Without `REDIS_URL` there is no election and the one watchdog leads.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from ..core.errors import NotLeading, RoomRecoveryError
from ..core.settings import redacted_url as redacted

logger = logging.getLogger(__name__)

LEASE = 3.0  # seconds a leader's lock lasts unless renewed
RENEW = 1.0  # seconds between renewals (and a standby's tries)
CALL_TIMEOUT = LEASE / 3  # a LiveKit call of a leader: ends well before its lease could
MARGIN = 0.25  # a call is not started in the lease's last moment


__all__ = ["NotLeading"]  # re-exported: the error lives in core, where calls are checked


class RedisUnreachableError(RoomRecoveryError):
    """Redis did not answer: no watchdog can lead (or keep leading) until it does."""


class Leadership:
    """The election as seen by one watchdog. `step()` runs every `renew` seconds."""

    def __init__(
        self, url: str = "", scope: str = "", lease: float = LEASE, renew: float = RENEW
    ) -> None:
        if url and renew >= lease:
            raise ValueError("a lease must outlast its renewal interval")
        self.url = url
        self.lease = lease
        self.renew = renew
        self.identity = uuid.uuid4().hex[:8]  # this watchdog, in logs
        self.epoch: int | None = None  # while this watchdog leads
        self.takeovers = 0
        self._answered_at = time.monotonic()  # when Redis last answered (-inf: it refused)
        self._until = 0.0  # monotonic time until which the lease surely holds
        base = f"room-recovery:{scope}:watchdog"
        self._epoch_key = f"{base}:epoch"
        self._claim_key = f"{base}:dispatch:"
        self._redis: redis.Redis | None = None
        self._lock: Lock | None = None
        if url:
            self._redis = redis.Redis.from_url(url, socket_timeout=lease / 2)
            self._lock = self._redis.lock(f"{base}:leader", timeout=lease, thread_local=False)

    @property
    def elected(self) -> bool:
        """Whether an election runs (REDIS_URL is set)."""
        return self._redis is not None

    @property
    def reachable(self) -> bool:
        """Whether Redis answered within a lease: a Redis that hangs (stopped, or its host
        gone) shows as unreachable after a lease even when every call is cut short by the
        loop's own time limit, and one that refuses at once."""
        return time.monotonic() - self._answered_at < self.lease

    @property
    def leading(self) -> bool:
        """Whether this watchdog may act now, as far as it knows without asking Redis."""
        return not self.elected or (self.epoch is not None and time.monotonic() < self._until)

    @asynccontextmanager
    async def _redis_calls(self) -> AsyncIterator[None]:
        try:
            yield
            self._answered_at = time.monotonic()
        except LockError:
            self._answered_at = time.monotonic()  # Redis answered: the lock was not ours
            raise
        except (RedisError, OSError) as exc:
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise asyncio.CancelledError from exc  # we were stopped, Redis was not lost
            self._answered_at = -math.inf
            raise RedisUnreachableError(
                f"Redis unreachable at {redacted(self.url)} ({exc}); no watchdog acts until "
                "it answers. Is redis-server running? Check REDIS_URL."
            ) from None

    def role(self) -> str:
        return "leader" if self.leading else "standby"

    async def close(self) -> None:
        if self._redis is None:
            return
        if self.epoch is not None and self._lock is not None:
            try:  # a clean stop hands over at once instead of after the lease
                async with asyncio.timeout(self.lease):
                    await self._lock.release()
            except Exception as exc:  # already lost, or Redis gone: fine
                logger.debug("lease not released: %s", exc)
        await self._redis.aclose()

    async def step(self) -> None:
        """Take the lead if it is free, or renew it; raises when Redis cannot be reached
        (the loop that runs this shows it as failing)."""
        if self._redis is None or self._lock is None:
            return
        started = time.monotonic()
        if self.epoch is None:
            async with self._redis_calls():
                if not await self._lock.acquire(blocking=False):
                    return
                self.epoch = int(await self._redis.incr(self._epoch_key))
            self._until = started + self.lease
            self.takeovers += 1
            logger.warning(
                "👑 watchdog %s leads (epoch %d)",
                self.identity,
                self.epoch,
                extra={"epoch": self.epoch, "watchdog": self.identity},
            )
            return
        try:
            async with self._redis_calls():
                await self._lock.reacquire()
        except LockError:
            self._lose("its lease was taken")
            return
        except Exception:
            if time.monotonic() >= self._until:
                self._lose("it could not renew its lease in time")
            raise
        self._until = started + self.lease

    def check_lease(self) -> None:
        """Raise NotLeading unless this watchdog's lease still holds, on its own clock (no
        I/O): called right before each LiveKit call that changes something."""
        if self._redis is None:
            return
        if self.epoch is None or time.monotonic() >= self._until - MARGIN:
            raise NotLeading(f"watchdog {self.identity}'s lease ran out before its call")

    async def fence(self) -> None:
        """Raise NotLeading unless this watchdog leads now, by its lease and by the epoch."""
        if self._redis is None or self._lock is None:
            return
        if not self.leading:
            raise NotLeading(f"watchdog {self.identity} is not the leader")
        async with self._redis_calls():  # one round trip
            current, holder = await self._redis.mget(self._epoch_key, self._lock.name)
        if current is None or int(current) != self.epoch:
            self._lose(f"a newer leader holds epoch {current and int(current)}")
            raise NotLeading(f"watchdog {self.identity} was superseded")
        if holder != self._lock.local.token:
            # a Redis restarted empty forgot the lock and the epoch counter: a successor may
            # lead with the same epoch number, before this leader's next renewal is refused
            self._lose("its lock is no longer in Redis (was Redis restarted?)")
            raise NotLeading(f"watchdog {self.identity} no longer holds the lock")

    async def claim(self, room: str, seconds: float) -> bool:
        """Whether this leader may dispatch to `room` now: no watchdog did in `seconds`."""
        await self.fence()
        if self._redis is None:
            return True
        key = self._claim_key + room
        async with self._redis_calls():
            claimed = await self._redis.set(key, self.epoch or 0, nx=True, px=int(seconds * 1000))
        return bool(claimed)

    def _lose(self, why: str) -> None:
        if self.epoch is not None:
            logger.warning(
                "watchdog %s no longer leads (epoch %d): %s",
                self.identity,
                self.epoch,
                why,
                extra={"epoch": self.epoch, "watchdog": self.identity},
            )
        self.epoch = None
