"""What `up` learns when one of its agent workers registers, and whom it tells.

livekit-agents logs "registered worker" with the agent name it registered under ("" for
LiveKit's automatic dispatch). The supervisor sees that line the moment it is written, and
`AgentRegistration` acts on it:

* it compares that name with the one `--agent-command` gave (`auto:NAME` means ""): a
  worker registered under another name never gets the page's dispatches, so `up` stops
  at once and says what to write instead (`name_problem`);
* it holds a link to the watchdog for that worker (`protocol.links`, a hello with no jobs)
  for as long as the worker runs, so a person waiting for that agent gets it the moment the
  worker is back after a restart. A worker whose only room-recovery code is the guide's
  request handler links by itself only at its first job: without this, the watchdog would
  find it only by its slow retry.
"""

from __future__ import annotations

import json
import logging
import re

from ..core.link import LinkGroup
from ..core.settings import Settings
from ..protocol import links
from .options import ExtraAgent

logger = logging.getLogger(__name__)

_NAME_IN_TEXT = re.compile(r'"agent_name":\s*"([^"]*)"')


def registered_name(line: str) -> str | None:
    """The agent name in livekit-agents' "registered worker" line (JSON in `start` mode, its
    fields as JSON after the message in `dev` mode); None when the line does not say."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if isinstance(record, dict) and isinstance(record.get("agent_name"), str):
        return str(record["agent_name"])
    found = _NAME_IN_TEXT.search(line)
    return found.group(1) if found else None


def name_problem(agent: ExtraAgent, registered: str) -> str | None:
    """Why a worker registered as `registered` cannot serve `--agent-command` `agent`, with
    what to write instead; None when the names agree."""
    expected = "" if agent.automatic else agent.name
    if registered == expected:
        return None
    command = " ".join(agent.argv)
    if registered == "":
        return (
            f"{agent.part_name} registered without an agent_name (LiveKit's automatic "
            f"dispatch), but --agent-command names it {agent.name!r}, so it would never get "
            f"the page's dispatches: write --agent-command 'auto:{agent.name}={command}' "
            f"(or register the worker with agent_name={agent.name!r})"
        )
    return (
        f"{agent.part_name} registered as agent {registered!r}, but --agent-command says "
        f"{agent.ref!r}, so it would never get the page's dispatches: write "
        f"--agent-command '{registered}={command}'"
    )


class AgentRegistration:
    """One agent worker that `up` runs: checks its name, keeps its link (see the module)."""

    def __init__(
        self, agent: ExtraAgent, settings: Settings, watchdog_urls: tuple[str, ...]
    ) -> None:
        self.agent = agent
        self.settings = settings
        self.watchdog_urls = watchdog_urls
        self._link: LinkGroup | None = None

    def registered(self, line: str) -> str | None:
        """The worker logged `line` (its registration). Returns a problem, or None."""
        name = registered_name(line)
        if name is not None:
            problem = name_problem(self.agent, name)
            if problem is not None:
                return problem
        else:
            name = "" if self.agent.automatic else self.agent.name

        def hello(link: str) -> str:
            return links.hello(f"up:{self.agent.part_name}", name, [], link=link)

        if self._link is not None:  # registered again (LiveKit restarted): tell it again
            self._link.hello_again()
        elif self.watchdog_urls:
            self._link = LinkGroup(self.watchdog_urls, hello, self.settings, name="up")
            self._link.start()
        return None

    async def exited(self) -> None:
        """The worker stopped: its link closes (its agents are its own link's business)."""
        link, self._link = self._link, None
        if link is not None:
            await link.close()
