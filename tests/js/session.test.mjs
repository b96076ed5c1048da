// The page's session, as decided in web/static/session.js: no browser, no LiveKit, no
// server. The page applies these decisions (app.js); the Chromium tests (tests/test_page.py
// and others) check that it does, end to end.
//   node --test tests/js/

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  CONNECTION_LOST_MS,
  DEFAULTS,
  MARK_WAIT_MS,
  RECONNECT_DELAYS_MS,
  afterAgentLeft,
  afterFailure,
  afterJoinTimeout,
  canFail,
  canStart,
  connectionClosed,
  connectionLost,
  controls,
  endAttempt,
  isWaiting,
  markedFailed,
  newAttempt,
  noteStatus,
  replacementWait,
  sessionReport,
  waitingText,
  withOverrides,
} from '../../src/room_recovery/web/static/session.js';

const NO_AGENT = 'no agent joined within 15 s';

// What the person reads, status after status, when no agent ever comes: each attempt
// waits, fails after the join timeout, and the next one starts once its delay is over.
function everyAttemptTimesOut(timing) {
  const shown = [];
  let retries = 0;
  for (;;) {
    shown.push(waitingText(retries, timing.max_retries));
    const next = afterFailure(retries, timing, NO_AGENT);
    shown.push(next.text);
    if (next.giveUp) return { shown, attempts: next.attempts };
    retries = next.retry;
  }
}

describe('a session without an agent', () => {
  it('after the join timeout retries in a new room after 1 s, then 2 s, then 3 s, '
    + 'then shows what to check', () => {
    const { shown, attempts } = everyAttemptTimesOut(DEFAULTS);
    assert.deepEqual(shown, [
      'Waiting for agent to join...',
      'No agent joined within 15 s. Retrying with a new room in 1 s (retry 1 of 3)...',
      'Waiting for agent to join... (attempt 2 of 4)',
      'No agent joined within 15 s. Retrying with a new room in 2 s (retry 2 of 3)...',
      'Waiting for agent to join... (attempt 3 of 4)',
      'No agent joined within 15 s. Retrying with a new room in 3 s (retry 3 of 3)...',
      'Waiting for agent to join... (attempt 4 of 4)',
      'Not connected: the agent did not join.',
    ]);
    assert.equal(attempts, 4, 'what to check names four attempts: the first and three retries');
  });

  it('waits retry_step × n before the n-th retry, in seconds rounded for people', () => {
    const timing = { ...DEFAULTS, retry_step: 0.2 };
    const retries = [0, 1, 2].map((retries) => afterFailure(retries, timing, NO_AGENT));
    assert.deepEqual(retries.map((next) => next.delay), [0.2, 0.4, 0.2 * 3]);
    assert.match(retries[2].text, /in 0\.6 s \(retry 3 of 3\)/); // not 0.6000000000000001
  });

  it('with max_retries 0 shows what to check after the first attempt', () => {
    const { shown, attempts } = everyAttemptTimesOut({ ...DEFAULTS, max_retries: 0 });
    assert.deepEqual(shown, [
      'Waiting for agent to join...',
      'Not connected: the agent did not join.',
    ]);
    assert.equal(attempts, 1);
  });

  it('counts retries again from the last agent that joined', () => {
    // app.js sets retries to 0 when an agent joins: a later failure starts over at 1 s
    const next = afterFailure(0, DEFAULTS, 'the agent agent-1 left');
    assert.deepEqual(next, {
      giveUp: false,
      retry: 1,
      delay: 1,
      text: 'The agent agent-1 left. Retrying with a new room in 1 s (retry 1 of 3)...',
    });
  });
});

describe('the join timeout', () => {
  it('ends the attempt when no agent joined in time', () => {
    assert.deepEqual(afterJoinTimeout(15, null, false), {
      failure: { outcome: 'timeout', detail: NO_AGENT },
    });
  });

  it('waits longer, once, when the room says an agent is on its way', () => {
    const first = afterJoinTimeout(15, 10, false);
    assert.deepEqual(first, { extendBy: 10, timeout: 25 });
    assert.deepEqual(afterJoinTimeout(first.timeout, 10, true), {
      failure: { outcome: 'timeout', detail: 'no agent joined within 25 s' },
    });
  });
});

describe('an agent that leaves a connected session', () => {
  it('waits 1.5 s for the room to say a replacement is coming, then tries a new room', () => {
    assert.equal(MARK_WAIT_MS, 1500);
    assert.deepEqual(afterAgentLeft('agent-1', null), {
      ms: MARK_WAIT_MS,
      failure: { outcome: 'agent-left', detail: 'the agent agent-1 left' },
    });
  });

  it('is replaced in the same room when the room says so, within the wait the room names', () => {
    assert.deepEqual(afterAgentLeft('agent-1', 10), {
      ms: 10000,
      failure: { outcome: 'agent-left', detail: 'no new agent within 10 s' },
    });
  });

  it('gets the wait the room names even when the room says so after the departure', () => {
    assert.deepEqual(replacementWait(7.5), {
      ms: 7500,
      failure: { outcome: 'agent-left', detail: 'no new agent within 7.5 s' },
    });
  });
});

describe('the connection', () => {
  it('is resumed by LiveKit for at most 10 s; then the page moves on to a new room', () => {
    assert.deepEqual(connectionLost, {
      ms: CONNECTION_LOST_MS,
      failure: {
        outcome: 'connection-lost',
        detail: 'the connection to LiveKit was lost for 10 s',
      },
    });
  });

  it("leaves LiveKit's own retries (about 9 s) time to finish within those 10 s", () => {
    const retrying = RECONNECT_DELAYS_MS.reduce((sum, delay) => sum + delay, 0);
    assert.equal(retrying, 9000);
    assert.ok(retrying < CONNECTION_LOST_MS);
  });

  it('that closes for good ends the attempt, with LiveKit\'s reason', () => {
    assert.deepEqual(connectionClosed(2), {
      outcome: 'disconnected',
      detail: 'the connection closed (reason 2)',
    });
  });
});

describe('a room the watchdog marked failed', () => {
  it('ends the attempt at once, saying why when the mark does', () => {
    assert.deepEqual(markedFailed('no agent after 3 dispatches'), {
      outcome: 'marked-failed',
      detail: 'the room was marked failed: no agent after 3 dispatches',
    });
    assert.equal(markedFailed(undefined).detail, 'the room was marked failed');
  });
});

describe('the statuses', () => {
  const ALL = [
    'loading', 'idle', 'waiting', 'connected', 'reconnecting', 'retrying',
    'failed', 'error', 'disconnecting', 'disconnected',
  ];
  const where = (test) => ALL.filter(test);

  it('let Connect start a session only when none runs or is being left', () => {
    assert.deepEqual(where(canStart), ['loading', 'idle', 'failed', 'error', 'disconnected']);
  });

  it('enable Disconnect while a session runs, and nothing new while busy', () => {
    assert.deepEqual(where((status) => controls(status, 1).active), [
      'waiting', 'connected', 'reconnecting', 'retrying',
    ]);
    assert.deepEqual(where((status) => controls(status, 1).busy), [
      'loading', 'waiting', 'connected', 'reconnecting', 'retrying', 'disconnecting',
    ]);
  });

  it('offer Connect only when there is an agent to choose', () => {
    assert.equal(controls('idle', 0).canConnect, false);
    assert.equal(controls('idle', 2).canConnect, true);
  });

  it('wait for an agent in a room while waiting or reconnecting', () => {
    assert.deepEqual(where(isWaiting), ['waiting', 'reconnecting']);
  });

  it('let an attempt fail only while it is under way: '
    + 'a late event of a room left behind changes nothing', () => {
    assert.deepEqual(where(canFail), ['waiting', 'connected', 'reconnecting']);
  });

  it('are listed once each time they change, not each time they are shown', () => {
    const statuses = [];
    for (const status of ['idle', 'waiting', 'waiting', 'connected', 'waiting']) {
      noteStatus(statuses, status);
    }
    assert.deepEqual(statuses, ['idle', 'waiting', 'connected', 'waiting']);
  });
});

describe('an attempt', () => {
  it('starts pending, before its room is known', () => {
    assert.deepEqual(newAttempt(2, 1, 'demo-agent', 1000), {
      number: 2,
      retry: 1,
      agent: 'demo-agent',
      room: null,
      startedAt: 1000,
      endedAt: null,
      outcome: 'pending',
      detail: '',
    });
  });

  it('that an agent joined stays the session\'s, and keeps its outcome when it ends later', () => {
    const attempt = newAttempt(1, 0, 'demo-agent', 1000);
    assert.equal(endAttempt(attempt, 'joined', 'agent-1 joined', 2000), attempt);
    assert.equal(endAttempt(attempt, 'agent-left', 'the agent agent-1 left', 3000), null);
    assert.equal(attempt.outcome, 'joined');
    assert.equal(attempt.detail, 'agent-1 joined; then the agent agent-1 left');
    assert.equal(attempt.endedAt, 3000);
  });

  it('that ends any other way is over', () => {
    const attempt = newAttempt(1, 0, 'demo-agent', 1000);
    assert.equal(endAttempt(attempt, 'timeout', NO_AGENT, 16000), null);
    assert.deepEqual(
      [attempt.outcome, attempt.detail, attempt.endedAt],
      ['timeout', NO_AGENT, 16000],
    );
  });
});

describe('the timing', () => {
  const server = { join_timeout: 15, max_retries: 3, retry_step: 1, agents: [] };

  it("is the spec's unless the server says otherwise: 15 s to join, 3 retries, 1 s step", () => {
    assert.deepEqual(DEFAULTS, { join_timeout: 15, max_retries: 3, retry_step: 1 });
    assert.deepEqual(withOverrides({ agents: [] }, new URLSearchParams()), server);
  });

  it("takes the page address's values, for tests and experiments", () => {
    const params = new URLSearchParams('join_timeout=3&retry_step=0.2&max_retries=0&agent=x');
    assert.deepEqual(withOverrides(server, params), {
      join_timeout: 3, max_retries: 0, retry_step: 0.2, agents: [],
    });
  });

  it('ignores values out of range, with a warning in the console', (t) => {
    const warn = t.mock.method(console, 'warn', () => {});
    const params = new URLSearchParams('join_timeout=0&retry_step=-1&max_retries=1.5');
    assert.deepEqual(withOverrides(server, params), server);
    assert.deepEqual(warn.mock.calls.map((call) => call.arguments[0]), [
      'ignoring ?join_timeout=0',
      'ignoring ?retry_step=-1',
      'ignoring ?max_retries=1.5',
    ]);
  });
});

describe("the session's report", () => {
  const started = { startedAt: 10_000, agentAt: null, attempts: 1, recoveries: 0 };

  it('says an agent came, and when, however the session ended after', () => {
    const session = { ...started, agentAt: 12_345, attempts: 2, recoveries: 1 };
    const report = { outcome: 'agent', time_to_agent: 2.345, retries: 1, recoveries: 1 };
    assert.deepEqual(sessionReport(session, 'left'), report);
    assert.deepEqual(sessionReport(session, 'explained'), report);
  });

  it('says the page explained when it gave up with no agent, after all its rooms', () => {
    assert.deepEqual(sessionReport({ ...started, attempts: 4 }, 'explained'), {
      outcome: 'explained', time_to_agent: null, retries: 3, recoveries: 0,
    });
  });

  it('says the person left when they went before any agent came', () => {
    assert.deepEqual(sessionReport(started, 'left').outcome, 'left');
  });

  it('never reports a negative time or retry count', () => {
    const odd = { startedAt: 5_000, agentAt: 4_000, attempts: 0, recoveries: 0 };
    assert.deepEqual(sessionReport(odd, 'left'), {
      outcome: 'agent', time_to_agent: 0, retries: 0, recoveries: 0,
    });
  });
});
