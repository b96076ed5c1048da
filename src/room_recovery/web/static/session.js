// The session's decisions, over plain data: what each status allows, what an attempt
// records, how long to wait for an agent, when to retry in a new room and when to give up,
// and what the person is told meanwhile. No DOM, no LiveKit, no fetch, no import: Node
// imports this module as it is (tests/js/session.test.mjs); app.js keeps the state, runs
// the timers and applies what these functions decide.
//
// Times from the server's config (join_timeout, retry_step, a mark's wait) are in seconds;
// the page's own (…_MS) in milliseconds.

/**
 * The page's timing, in seconds: the server's (`PageConfig` in web/policy.py), then the
 * page address's overrides (`withOverrides`).
 * @typedef {object} Timing
 * @property {number} join_timeout wait this long for an agent after starting an attempt
 * @property {number} max_retries new rooms to try after the first attempt failed
 * @property {number} retry_step the n-th retry waits n × retry_step
 */

/**
 * An agent the person can choose (`AgentChoice.to_dict` in web/policy.py).
 * @typedef {object} AgentChoice
 * @property {string} name
 * @property {string} label
 * @property {boolean} [automatic]
 */

/** @typedef {Timing & {agents: AgentChoice[]}} Config */

/**
 * loading | idle: before a session; waiting: in a room, for an agent; connected;
 * reconnecting: in a room, for the agent that replaces a lost one; retrying: between rooms;
 * failed: no agent came; error: the page cannot go on (a problem it explains);
 * disconnecting | disconnected: the person left.
 * @typedef {'loading' | 'idle' | 'waiting' | 'connected' | 'reconnecting' | 'retrying'
 *   | 'failed' | 'error' | 'disconnecting' | 'disconnected'} Status
 */

/**
 * How an attempt ended: pending while it runs; joined when an agent came (what happens
 * after is added to its detail); else why it did not.
 * @typedef {'pending' | 'joined' | 'timeout' | 'agent-left' | 'connection-lost'
 *   | 'marked-failed' | 'disconnected' | 'error' | 'cancelled'} Outcome
 */

/**
 * One room tried; tests read them in `window.roomRecovery.attempts`.
 * @typedef {object} Attempt
 * @property {number} number 1, 2, ... over the page's life
 * @property {number} retry 0 for a session's first attempt, then 1, 2, ...
 * @property {string} agent the chosen agent's name
 * @property {string | null} room
 * @property {string} [node] the LiveKit server it was sent to (set with `room`)
 * @property {number} startedAt
 * @property {number | null} endedAt
 * @property {Outcome} outcome
 * @property {string} detail
 */

/**
 * Why an attempt failed, as it is recorded.
 * @typedef {{outcome: Outcome, detail: string}} Failure
 */

/**
 * Waiting for an agent: how long, and the failure if none comes by then.
 * @typedef {{ms: number, failure: Failure}} AgentWait
 */

/** @type {Timing} */
export const DEFAULTS = { join_timeout: 15, max_retries: 3, retry_step: 1 };
// How long Disconnect waits for the agent to leave first; then the page leaves and asks its
// server to delete the room, all within 2 s, even for an agent that ignores the goodbye.
export const GOODBYE_WAIT_MS = 1200;
// After the agent left: how long to wait in the room for a `recovering` mark before leaving
// for a new room (the mark is written before a dead agent is removed; this covers a page
// that hears of the departure first).
export const MARK_WAIT_MS = 1500;
// LiveKit's client retries a lost connection for about 45 s, always on the same node. The page
// allows it about 9 s (resumes at once, then 0.3, 1.2, 2.7 and 4.8 s apart, give or take half):
// a node that died is then left for a new room, on a node that answers (the server's choice).
export const RECONNECT_DELAYS_MS = [0, 300, 1200, 2700, 4800];
// ...and at most this long in all: each of those tries may hang up to 15 s on a node that takes
// connections and never answers (hung, or its port taken), which would make 9 s a minute.
export const CONNECTION_LOST_MS = 10000;

/** @type {ReadonlySet<Status>} */
const ACTIVE = new Set(['waiting', 'connected', 'reconnecting', 'retrying']);
/** @type {ReadonlySet<Status>} */
const WAITING = new Set(['waiting', 'reconnecting']); // in a room, for an agent
// An attempt is under way in these; while retrying its room is gone already, so a late
// event of that room cannot fail it again.
/** @type {ReadonlySet<Status>} */
const UNDER_WAY = new Set(['waiting', 'reconnecting', 'connected']);

/** @param {number} value */
const seconds = (value) => `${Number(value.toFixed(2))} s`;
/** @param {string} text */
const capitalize = (text) => text.charAt(0).toUpperCase() + text.slice(1);

// --- statuses ---------------------------------------------------------------------------

/**
 * Whether the page is in a room, waiting for an agent.
 * @param {Status} status
 */
export const isWaiting = (status) => WAITING.has(status);

/**
 * Whether Connect may start a session: not while one runs or is being left.
 * @param {Status} status
 */
export const canStart = (status) => !ACTIVE.has(status) && status !== 'disconnecting';

/**
 * Whether the current attempt can still fail.
 * @param {Status} status
 */
export const canFail = (status) => UNDER_WAY.has(status);

/**
 * What the controls allow in `status`: `active`, a session runs (Disconnect works);
 * `busy`, nothing new can be started; `canConnect`, there is an agent to choose.
 * @param {Status} status
 * @param {number} agents how many agents the page offers
 */
export function controls(status, agents) {
  const active = ACTIVE.has(status);
  const busy = active || status === 'loading' || status === 'disconnecting';
  return { active, busy, canConnect: agents > 0 };
}

/**
 * Adds `status` to the statuses shown, unless it is the one shown already.
 * @param {Status[]} statuses
 * @param {Status} status
 */
export function noteStatus(statuses, status) {
  if (statuses.at(-1) !== status) statuses.push(status);
}

/**
 * The status while an attempt waits for its agent; retries say which attempt they are.
 * @param {number} retries retries made so far in this session
 * @param {number} maxRetries
 */
export function waitingText(retries, maxRetries) {
  const count = retries ? ` (attempt ${retries + 1} of ${maxRetries + 1})` : '';
  return `Waiting for agent to join...${count}`;
}

// --- attempts ---------------------------------------------------------------------------

/**
 * A new attempt, before it has a room.
 * @param {number} number
 * @param {number} retry
 * @param {string} agent
 * @param {number} now
 * @returns {Attempt}
 */
export function newAttempt(number, retry, agent, now) {
  return {
    number,
    retry,
    agent,
    room: null,
    startedAt: now,
    endedAt: null,
    outcome: 'pending',
    detail: '',
  };
}

/**
 * Ends `attempt`: its first end is its outcome; a later one (a joined agent lost, a
 * disconnect) is added to its detail. Returns the attempt while it goes on: one an agent
 * joined is the session's until the agent is lost or the person leaves.
 * @param {Attempt} attempt
 * @param {Outcome} outcome
 * @param {string} detail
 * @param {number} now
 * @returns {Attempt | null}
 */
export function endAttempt(attempt, outcome, detail, now) {
  if (attempt.outcome === 'pending') {
    attempt.outcome = outcome;
    attempt.detail = detail;
  } else {
    attempt.detail = `${attempt.detail}; then ${detail}`;
  }
  attempt.endedAt = now;
  return outcome === 'joined' ? attempt : null;
}

// --- waiting for an agent ---------------------------------------------------------------

/**
 * No agent within the join timeout (`timeout` seconds): the attempt fails, unless the room
 * says one is on its way (`wait`: the mark's wait in seconds, else null); then it waits
 * that much longer, once (`extended`: it did already).
 * @param {number} timeout
 * @param {number | null} wait
 * @param {boolean} extended
 * @returns {{extendBy: number, timeout: number} | {failure: Failure}}
 */
export function afterJoinTimeout(timeout, wait, extended) {
  if (wait !== null && !extended) return { extendBy: wait, timeout: timeout + wait };
  return { failure: { outcome: 'timeout', detail: `no agent joined within ${seconds(timeout)}` } };
}

/**
 * The agent of a connected session left. When the room says its replacement is on its way
 * (`wait` seconds, else null), wait that long for the replacement; else wait a little for
 * such a mark (MARK_WAIT_MS). Either way the attempt then fails: the session moves on to a
 * new room.
 * @param {string} identity the agent that left
 * @param {number | null} wait
 * @returns {AgentWait}
 */
export function afterAgentLeft(identity, wait) {
  if (wait !== null) return replacementWait(wait);
  const detail = `the agent ${identity} left`;
  return { ms: MARK_WAIT_MS, failure: { outcome: 'agent-left', detail } };
}

/**
 * The room says a replacement agent is on its way: wait `wait` seconds for it.
 * @param {number} wait
 * @returns {AgentWait}
 */
export function replacementWait(wait) {
  const detail = `no new agent within ${seconds(wait)}`;
  return { ms: wait * 1000, failure: { outcome: 'agent-left', detail } };
}

/**
 * LiveKit lost the connection and resumes it: this long at most, then a new room.
 * @type {AgentWait}
 */
export const connectionLost = {
  ms: CONNECTION_LOST_MS,
  failure: {
    outcome: 'connection-lost',
    detail: `the connection to LiveKit was lost for ${CONNECTION_LOST_MS / 1000} s`,
  },
};

/**
 * The watchdog gave up on the room (its mark says failed, maybe with a reason).
 * @param {unknown} reason
 * @returns {Failure}
 */
export function markedFailed(reason) {
  const why = reason ? `: ${reason}` : '';
  return { outcome: 'marked-failed', detail: `the room was marked failed${why}` };
}

/**
 * The connection to a joined room closed, and LiveKit will not resume it.
 * @param {unknown} reason LiveKit's DisconnectReason
 * @returns {Failure}
 */
export function connectionClosed(reason) {
  return { outcome: 'disconnected', detail: `the connection closed (reason ${reason})` };
}

// --- after a failed attempt ---------------------------------------------------------------

/**
 * What follows a failed attempt: a new room after retry_step × n seconds for the n-th
 * retry, or, once max_retries retries failed, giving up. `retries` counts the retries made
 * since the session started or an agent last joined.
 * @param {number} retries
 * @param {Timing} timing
 * @param {string} detail why the attempt failed
 * @returns {{giveUp: false, retry: number, delay: number, text: string}
 *   | {giveUp: true, attempts: number, text: string}}
 */
export function afterFailure(retries, timing, detail) {
  const { max_retries: maxRetries, retry_step: step } = timing;
  if (retries >= maxRetries) {
    // the first attempt and its retries (counted again from each agent join)
    const attempts = retries + 1;
    return { giveUp: true, attempts, text: 'Not connected: the agent did not join.' };
  }
  const retry = retries + 1;
  const delay = step * retry;
  const text = `${capitalize(detail)}. Retrying with a new room in ${seconds(delay)}`
    + ` (retry ${retry} of ${maxRetries})...`;
  return { giveUp: false, retry, delay, text };
}

// --- configuration ------------------------------------------------------------------------

/**
 * The server's config with the page address's overrides (?join_timeout=3&retry_step=0.2
 * &max_retries=1, for tests and experiments); a value out of range is ignored, with a
 * warning in the console.
 * @template {Partial<Timing>} T
 * @param {T} config
 * @param {URLSearchParams} params
 * @returns {T & Timing}
 */
export function withOverrides(config, params) {
  const result = { ...DEFAULTS, ...config };
  /**
   * @param {keyof Timing} name
   * @param {(value: number) => boolean} ok
   */
  const number = (name, ok) => {
    if (!params.has(name)) return;
    const value = Number(params.get(name));
    if (Number.isFinite(value) && ok(value)) result[name] = value;
    else console.warn(`ignoring ?${name}=${params.get(name)}`);
  };
  number('join_timeout', (v) => v > 0);
  number('retry_step', (v) => v >= 0);
  number('max_retries', (v) => Number.isInteger(v) && v >= 0);
  return result;
}

// --- the session's report ---------------------------------------------------------------

/**
 * How a session ended, as the person saw it (`Ended` in web/outcomes.py): an agent came;
 * none came and the page explained what to do; none came yet and the person left.
 * @typedef {'agent' | 'explained' | 'left'} Ended
 */

/**
 * What the page reports of one session (`/api/outcome`, without the grant's key).
 * @typedef {object} SessionReport
 * @property {Ended} outcome
 * @property {number | null} time_to_agent seconds from Connect to the first agent
 * @property {number} retries new rooms tried after the first
 * @property {number} recoveries times the agent dropped out and the page waited for another
 */

/**
 * The report of a session that started (Connect) at `startedAt` and ends now, by `how`:
 * the page gave up (`explained`), or the person left.
 * @param {{startedAt: number, agentAt: number | null, attempts: number, recoveries: number}} session
 *   times in ms; `attempts`: rooms tried in this session
 * @param {'explained' | 'left'} how
 * @returns {SessionReport}
 */
export function sessionReport({ startedAt, agentAt, attempts, recoveries }, how) {
  const cameAt = agentAt === null ? null : Math.max(0, agentAt - startedAt) / 1000;
  return {
    outcome: cameAt === null ? how : 'agent',
    time_to_agent: cameAt === null ? null : Number(cameAt.toFixed(3)),
    retries: Math.max(0, attempts - 1),
    recoveries,
  };
}
