"""What people felt: each page reports its session once, with a key only this server gives,
and the page server exports the reports for Prometheus. A hostile page gets a 4xx and one
line, and never grows the metrics' cardinality. (The page's side is in tests/js and
tests/test_page.py.)"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from room_recovery.core.errors import ConfigurationError
from room_recovery.core.settings import load_settings
from room_recovery.web import create_app, running
from room_recovery.web.limits import TokenLimits
from room_recovery.web.outcomes import (
    MAX_SECONDS,
    Ended,
    PageMetrics,
    ReportBook,
    SessionOutcome,
    outcome_from_body,
)
from room_recovery.web.policy import OUTCOME_WINDOW, BadRequest, Forbidden, outcome_key
from room_recovery.web.reports import LOOPBACK, may_read_metrics, metrics_networks

SETTINGS = load_settings(livekit_api_key="k", livekit_api_secret="s" * 40, room_prefix="oc-")
JSON = {"Content-Type": "application/json"}


def report(**fields: Any) -> dict[str, Any]:
    body = {
        "room": "oc-r1",
        "identity": "user-1",
        "outcome_key": outcome_key(SETTINGS, "oc-r1", "user-1", int(time.time()) + 60),
        "outcome": "agent",
        "time_to_agent": 1.25,
        "retries": 1,
        "recoveries": 0,
    }
    return body | fields


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# --- the report, as parsed ---------------------------------------------------------------


def test_a_genuine_report_is_read_as_the_page_sent_it() -> None:
    outcome = outcome_from_body(report(), SETTINGS, time.time())
    assert outcome == SessionOutcome("oc-r1", "user-1", Ended.AGENT, 1.25, 1, 0)


def test_a_session_without_an_agent_has_no_time_to_agent() -> None:
    body = report(outcome="explained", time_to_agent=None, retries=3)
    assert outcome_from_body(body, SETTINGS, time.time()).time_to_agent is None
    with pytest.raises(BadRequest, match="null when no agent came"):
        outcome_from_body(report(outcome="left", time_to_agent=3), SETTINGS, time.time())
    with pytest.raises(BadRequest, match="seconds to the agent"):
        outcome_from_body(report(time_to_agent=None), SETTINGS, time.time())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"outcome": "bored"}, "must be one of 'agent', 'explained', 'left'"),
        ({"time_to_agent": -1}, "seconds to the agent"),
        ({"time_to_agent": True}, "seconds to the agent"),
        ({"time_to_agent": "1"}, "seconds to the agent"),
        ({"retries": -1}, "whole numbers"),
        ({"recoveries": 1.5}, "whole numbers"),
        ({"retries": True}, "whole numbers"),
        ({"room": ""}, "non-empty strings"),
        ({"room": "é" * 200}, "at most 256 bytes"),
    ],
)
def test_a_malformed_report_is_refused_saying_what_is_wrong(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        outcome_from_body(report(**fields), SETTINGS, time.time())


def test_a_report_needs_the_key_given_for_its_room_and_identity() -> None:
    with pytest.raises(Forbidden, match="not given for that room and identity"):
        outcome_from_body(report(identity="user-2"), SETTINGS, time.time())
    with pytest.raises(Forbidden, match="not given by this server"):
        outcome_from_body(report(outcome_key="x.y"), SETTINGS, time.time())
    leave_like = report()["outcome_key"].replace("1", "2", 1)
    with pytest.raises(Forbidden):
        outcome_from_body(report(outcome_key=leave_like), SETTINGS, time.time())


def test_a_key_expires_hours_after_its_grant() -> None:
    issued = time.time()
    key = outcome_key(SETTINGS, "oc-r1", "user-1", int(issued + OUTCOME_WINDOW))
    outcome_from_body(report(outcome_key=key), SETTINGS, issued + OUTCOME_WINDOW - 1)
    with pytest.raises(Forbidden, match="expired"):
        outcome_from_body(report(outcome_key=key), SETTINGS, issued + OUTCOME_WINDOW + 1)


def test_absurd_values_are_clamped() -> None:
    outcome = outcome_from_body(
        report(time_to_agent=1e300, retries=10**9, recoveries=10**9), SETTINGS, time.time()
    )
    assert (outcome.time_to_agent, outcome.retries, outcome.recoveries) == (MAX_SECONDS, 100, 100)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
report_fields = st.fixed_dictionaries(
    {
        "room": st.text(max_size=300),
        "identity": st.text(max_size=300),
        "outcome_key": st.text(max_size=80),
        "outcome": st.sampled_from(["agent", "explained", "left", "x"]),
        "time_to_agent": st.none() | st.floats() | st.integers(),
        "retries": st.integers() | st.floats(),
        "recoveries": st.integers(),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, report_fields))
def test_a_report_is_accepted_or_refused_never_anything_else(body: Any) -> None:
    try:
        outcome_from_body(body, SETTINGS, time.time())
    except BadRequest:
        pass


# --- the book: once per grant, and a rate ------------------------------------------------


def test_each_grant_reports_once() -> None:
    book = ReportBook(TokenLimits())
    outcome = outcome_from_body(report(), SETTINGS, time.time())
    assert book.first(outcome, 100.0)
    assert not book.first(outcome, 101.0)


def test_a_client_that_reports_too_fast_is_held_to_the_token_rate() -> None:
    book = ReportBook(TokenLimits(per_minute=60, burst=3))
    assert [book.check_rate("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert book.check_rate("b", 0.0)  # another client is not held back
    assert book.check_rate("a", 1.0)  # one a second comes back
    assert ReportBook(TokenLimits(per_minute=None)).check_rate("a", 0.0)


# --- the metrics -------------------------------------------------------------------------


def test_the_metrics_have_fixed_labels_whatever_is_reported() -> None:
    metrics = PageMetrics(join_timeout=15)
    before = set(samples(metrics.render().decode()))
    for ended in Ended:
        metrics.record(SessionOutcome("r", "u", ended, 2.0 if ended is Ended.AGENT else None, 2, 1))
    after = samples(metrics.render().decode())
    assert set(after) == before
    assert after[("room_recovery_page_sessions_total", (("outcome", "agent"),))] == 1
    assert after[("room_recovery_page_time_to_agent_seconds_count", ())] == 1
    assert after[("room_recovery_page_retries_sum", ())] == 6
    assert after[("room_recovery_page_recoveries_seen_total", ())] == 3
    assert after[("room_recovery_page_join_timeout_seconds", ())] == 15


def test_only_this_machine_and_the_configured_networks_read_the_metrics() -> None:
    assert may_read_metrics("127.0.0.1", LOOPBACK)
    assert may_read_metrics("::1", LOOPBACK)
    assert may_read_metrics("::ffff:127.0.0.1", LOOPBACK)
    assert not may_read_metrics("10.1.2.3", LOOPBACK)
    assert not may_read_metrics("", LOOPBACK)
    wider = metrics_networks(load_settings(room_recovery_metrics_from="10.0.0.0/8, 192.168.1.5"))
    assert may_read_metrics("10.1.2.3", wider) and may_read_metrics("192.168.1.5", wider)
    assert not may_read_metrics("192.168.1.6", wider)
    with pytest.raises(ConfigurationError, match="ROOM_RECOVERY_METRICS_FROM: 'ten' is not"):
        metrics_networks(load_settings(room_recovery_metrics_from="ten"))


# --- through the page server -------------------------------------------------------------


async def test_a_page_reports_its_session_once_and_it_shows_in_metrics() -> None:
    app = create_app(SETTINGS, ["demo-agent"], limits=TokenLimits(per_minute=None))
    async with running(app, "127.0.0.1", 0) as url, aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/token", json={"agent": "demo-agent"}) as response:
            grant = await response.json()
        body = report(room=grant["room"], identity=grant["identity"])
        body["outcome_key"] = grant["outcome_key"]
        answers = []
        for _ in range(2):
            async with http.post(f"{url}/api/outcome", data=json.dumps(body), headers=JSON) as r:
                answers.append((r.status, await r.text()))
        forged = body | {"identity": "someone-else"}
        async with http.post(f"{url}/api/outcome", data=json.dumps(forged), headers=JSON) as r:
            answers.append((r.status, await r.text()))
        async with http.get(f"{url}/metrics") as response:
            assert response.status == 200
            exported = samples(await response.text())
    assert [status for status, _ in answers] == [204, 409, 403]
    assert json.loads(answers[1][1]) == {"error": "this session was already reported"}
    assert exported[("room_recovery_page_sessions_total", (("outcome", "agent"),))] == 1
    assert exported[("room_recovery_page_time_to_agent_seconds_bucket", (("le", "2.0"),))] == 1
    rejected = "room_recovery_page_reports_rejected_total"
    assert exported[(rejected, (("reason", "repeated"),))] == 1
    assert exported[(rejected, (("reason", "forbidden"),))] == 1
