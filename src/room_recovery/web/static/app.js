// The voice agent page (the spec's voice-agent-selector.html), layer 3 of room recovery.
//
// Connect: ask the page's server for a token for a fresh room (it dispatches the chosen
// agent), join, and wait at most `join_timeout` seconds for an agent. When the agent is
// lost while the room says a replacement is on its way (room status `recovering`, written
// by the worker monitor or the watchdog), stay in the room and wait for it (bounded).
// When no agent comes, or the room is marked failed, leave and retry in a NEW room after 1 s, 2 s, 3 s
// (retry_step × n); after `max_retries` retries, show what to check. Disconnect (and,
// best effort, closing the tab) sends `room_cleanup` to the agent, then leaves; a closing
// tab also sends a beacon so that the page server deletes the room (see web/server.py).
//
// This module keeps the session's state and runs its timers; what each event leads to
// (statuses, attempts, how long to wait, when to retry) is decided in session.js, which
// Node tests without a browser. The page's server is asked through api.js; LiveKit's room
// and its events are room.js. The messages and the room status it reads use the names the
// server sends in /api/config (protocol.js); what it explains when it cannot connect is
// problems.js; the page's elements and how they are drawn, view.js; the agent's state,
// levels, mute and microphone once an agent is there, conversation.js.
// Tests read `window.roomRecovery` (status, attempts, messages sent, error shown).

import { ConnectionState } from '/vendor/livekit-client.esm.mjs';
import { fetchConfig, leaveBeacon, requestLeave, requestToken } from '/static/api.js';
import * as conversation from '/static/conversation.js';
import {
  agentMissing,
  connectProblem,
  microphoneProblem,
  pageServerUnreachable,
} from '/static/problems.js';
import {
  cleanupMessage,
  encode,
  isFailed,
  isRecovering,
  publish,
  recoveryWait,
  publishOptions,
  roomStatus,
  selectionMessage,
  useProtocol,
} from '/static/protocol.js';
import { SessionReporter } from '/static/report.js';
import { agentLeaves, findAgent, newRoom } from '/static/room.js';
import {
  DEFAULTS,
  GOODBYE_WAIT_MS,
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
  waitingText,
  withOverrides,
} from '/static/session.js';
import {
  fillAgents,
  hideProblem,
  showAttempts,
  showProblem,
  showStatus,
  ui,
} from '/static/view.js';

/** @typedef {import('/vendor/livekit-client.esm.mjs').Room} Room */
/** @typedef {import('/vendor/livekit-client.esm.mjs').RemoteParticipant} RemoteParticipant */
/** @typedef {import('/vendor/livekit-client.esm.mjs').RemoteTrack} RemoteTrack */
/** @typedef {import('/static/api.js').Grant} Grant */
/** @typedef {import('/static/api.js').Leave} Leave */
/** @typedef {import('/static/problems.js').PageProblem} PageProblem */
/** @typedef {import('/static/session.js').AgentChoice} AgentChoice */
/** @typedef {import('/static/session.js').AgentWait} AgentWait */
/** @typedef {import('/static/session.js').Attempt} Attempt */
/** @typedef {import('/static/session.js').Config} Config */
/** @typedef {import('/static/session.js').Failure} Failure */
/** @typedef {import('/static/session.js').Outcome} Outcome */
/** @typedef {import('/static/session.js').Status} Status */
/** @typedef {ReturnType<typeof setTimeout> | undefined} Timer */

// What tests and curious people can read from the console.
const exposed = {
  status: /** @type {Status} */ ('loading'),
  statusText: '',
  statuses: /** @type {Status[]} */ ([]), // each status shown, in order (repeats collapsed)
  // LiveKit's connection: none | connected | reconnecting
  connection: /** @type {'none' | 'connected' | 'reconnecting'} */ ('none'),
  config: /** @type {Config | null} */ (null),
  agent: /** @type {string | null} */ (null),
  room: /** @type {string | null} */ (null),
  identity: /** @type {string | null} */ (null),
  agentIdentity: /** @type {string | null} */ (null),
  attempts: /** @type {Attempt[]} */ ([]), // one per room tried, see session.js
  messages: /** @type {{type: string, room: string, ok: boolean}[]} */ ([]), // data messages sent
  error: /** @type {{kind: string, title: string} | null} */ (null), // the problem shown
  microphone: 'off', // off | on | refused | missing
  agentAudio: false,
  // after Disconnect: did the agent leave before the page did?
  agentLeftFirst: /** @type {boolean | null} */ (null),
  leaveRequests: 0, // how many times the page asked its server to delete its room
  // what the server answered when the page could still hear it
  leaveAnswers: /** @type {unknown[]} */ ([]),
  recoveries: 0, // times the agent was lost and the page waited in its room for another
  // each session's report to the page's server, and the HTTP status it got (0: a beacon)
  reports: /** @type {import('/static/report.js').SentReport[]} */ ([]),
  conversation: conversation.seen, // agent state, mute, levels (conversation.js)
};
Object.assign(window, { roomRecovery: exposed });

// The state of the session; `generation` changes whenever an attempt ends, so that late
// events and timers of an earlier attempt are ignored.
const session = {
  config: /** @type {Config} */ ({ ...DEFAULTS, agents: [] }),
  agent: /** @type {AgentChoice | undefined} */ (undefined),
  retries: 0,
  room: /** @type {Room | null} */ (null),
  attempt: /** @type {Attempt | null} */ (null),
  generation: 0,
  joinTimer: /** @type {Timer} */ (undefined),
  retryTimer: /** @type {Timer} */ (undefined),
  recoveryTimer: /** @type {Timer} */ (undefined),
  // runs while LiveKit resumes a lost connection
  connectionTimer: /** @type {Timer} */ (undefined),
  joinExtended: false,
  // identity of the agent whose replacement the page is waiting for
  lostAgent: /** @type {string | null} */ (null),
  leave: /** @type {Leave | null} */ (null), // for the beacon when the tab closes
  report: new SessionReporter(), // the session's one report to the page's server
};
exposed.reports = session.report.reports;

/** @type {WeakSet<Room>} */
const joinedRooms = new WeakSet(); // rooms whose connect() succeeded

/** @param {number} generation */
const isCurrent = (generation) => generation === session.generation;

// The session's agent: chosen by Connect before the first attempt (Connect stays disabled
// until the list it is chosen from is there).
function chosenAgent() {
  if (!session.agent) throw new Error('no agent chosen');
  return session.agent;
}

// --- what the person sees -------------------------------------------------------------

/**
 * @param {Status} status
 * @param {string} text
 */
function setStatus(status, text) {
  exposed.status = status;
  exposed.statusText = text;
  noteStatus(exposed.statuses, status);
  showStatus(status, text, controls(status, session.config.agents.length));
}

/**
 * LiveKit lost the connection and is resuming it (same room, same agent): say so, without
 * changing the session's status.
 * @param {Room} room
 * @param {'connected' | 'reconnecting'} connection
 * @param {number} generation
 */
function showConnection(room, connection, generation) {
  if (session.room !== room) return;
  exposed.connection = connection;
  clearTimeout(session.connectionTimer);
  session.connectionTimer = connection !== 'reconnecting' ? undefined : setTimeout(() => {
    attemptFailed(generation, connectionLost.failure);
  }, connectionLost.ms);
  ui.status.textContent = connection === 'reconnecting'
    ? 'Your connection dropped; reconnecting...'
    : exposed.statusText;
}

/** @param {PageProblem} problem */
function showError(problem) {
  exposed.error = { kind: problem.kind, title: problem.title };
  showProblem(problem);
}

function clearError() {
  exposed.error = null;
  hideProblem();
}

const renderAttempts = () => showAttempts(exposed.attempts);

// --- attempts -------------------------------------------------------------------------

function recordAttempt() {
  const number = exposed.attempts.length + 1;
  const attempt = newAttempt(number, session.retries, chosenAgent().name, Date.now());
  exposed.attempts.push(attempt);
  session.attempt = attempt;
  renderAttempts();
  return attempt;
}

/**
 * @param {Outcome} outcome
 * @param {string} detail
 */
function endCurrentAttempt(outcome, detail) {
  if (!session.attempt) return;
  session.attempt = endAttempt(session.attempt, outcome, detail, Date.now());
  renderAttempts();
}

function clearTimers() {
  clearTimeout(session.joinTimer);
  clearTimeout(session.retryTimer);
  clearTimeout(session.recoveryTimer);
  clearTimeout(session.connectionTimer);
  session.joinTimer = undefined;
  session.retryTimer = undefined;
  session.recoveryTimer = undefined;
  session.connectionTimer = undefined;
}

function takeRoom() {
  const room = session.room;
  session.room = null;
  clearTimeout(session.connectionTimer);
  session.connectionTimer = undefined;
  exposed.agentAudio = false;
  exposed.connection = 'none';
  ui.agentAudio.replaceChildren();
  ui.audioButton.hidden = true;
  conversation.end();
  return room;
}

/** @param {Event} [event] */
async function startSession(event) {
  event?.preventDefault();
  if (!canStart(exposed.status)) return;
  clearError();
  session.agent = session.config.agents.find((a) => a.name === ui.agentSelect.value);
  exposed.agent = chosenAgent().name;
  session.retries = 0;
  session.report.start(exposed.attempts.length, exposed.recoveries);
  await startAttempt();
}

async function startAttempt() {
  const generation = ++session.generation;
  const attempt = recordAttempt();
  setStatus('waiting', waitingText(session.retries, session.config.max_retries));
  const timeout = session.config.join_timeout;
  session.joinExtended = false;
  session.joinTimer = setTimeout(() => joinTimedOut(generation, timeout), timeout * 1000);
  /** @type {Grant | null} */
  let grant = null;
  try {
    grant = await requestToken(chosenAgent().name);
    if (!isCurrent(generation)) return;
    attempt.room = exposed.room = grant.room;
    attempt.node = grant.url;
    exposed.identity = grant.identity;
    session.leave = { room: grant.room, identity: grant.identity, leave_key: grant.leave_key };
    session.report.granted(grant);
    renderAttempts();
    const room = attemptRoom(generation);
    session.room = room;
    conversation.begin(room);
    await room.connect(grant.url, grant.token);
    if (!isCurrent(generation)) return;
    joinedRooms.add(room);
    exposed.connection = 'connected';
    onRoomMetadata(room.metadata, generation);
    const agent = findAgent(room);
    if (agent) agentJoined(room, agent, generation);
  } catch (error) {
    if (isCurrent(generation)) await stopWithProblem(connectProblem(error, grant?.url));
  }
}

/**
 * The room of attempt `generation`; each handler ignores it once another attempt began.
 * @param {number} generation
 * @returns {Room}
 */
function attemptRoom(generation) {
  const room = newRoom({
    agentJoined: (participant) => agentJoined(room, participant, generation),
    agentLost: (participant) => agentLost(room, participant, generation),
    metadata: (metadata) => onRoomMetadata(metadata, generation),
    audio: playAgentAudio,
    playback: () => {
      ui.audioButton.hidden = room.canPlaybackAudio;
    },
    connection: (connection) => showConnection(room, connection, generation),
    closed: (reason) => {
      // a connect() that fails rejects, and that is handled where it was called
      if (!joinedRooms.has(room)) return;
      attemptFailed(generation, connectionClosed(reason));
    },
  });
  return room;
}

/**
 * @param {Room} room
 * @param {RemoteParticipant} participant
 * @param {number} generation
 */
function agentJoined(room, participant, generation) {
  // Agents listed at join time are handled once connect() has returned.
  if (!isCurrent(generation) || room.state !== ConnectionState.Connected) return;
  conversation.agent(participant);
  if (!isWaiting(exposed.status)) return;
  session.report.agentCame();
  clearTimeout(session.joinTimer);
  clearTimeout(session.recoveryTimer);
  session.recoveryTimer = undefined;
  session.retries = 0;
  exposed.agentIdentity = participant.identity;
  endCurrentAttempt('joined', `${participant.identity} joined`);
  setStatus('connected', `Connected: ${chosenAgent().label} joined. You can talk now.`);
  sendMessage(room, selectionMessage(chosenAgent()));
  enableMicrophone(room, generation);
}

/**
 * @param {Room} room
 * @param {number} generation
 */
async function enableMicrophone(room, generation) {
  try {
    await room.localParticipant.setMicrophoneEnabled(true);
    if (!isCurrent(generation)) return;
    exposed.microphone = 'on';
    await conversation.microphoneOn();
  } catch (error) {
    if (!isCurrent(generation)) return;
    const problem = microphoneProblem(error);
    exposed.microphone = problem.microphone;
    showError(problem);
    setStatus('connected', `Connected to ${chosenAgent().label}, but your microphone is off.`);
  }
}

/**
 * @param {RemoteTrack} track an audio track
 * @param {RemoteParticipant} participant
 */
function playAgentAudio(track, participant) {
  const element = track.attach();
  element.dataset.participant = participant.identity;
  ui.agentAudio.append(element);
  exposed.agentAudio = true;
}

/**
 * The watchdog marks a room it gave up on (room-recovery's status in the metadata: failed),
 * and a room whose agent is being replaced (recovering).
 * @param {string | undefined} metadata
 * @param {number} generation
 */
function onRoomMetadata(metadata, generation) {
  const mark = roomStatus(metadata);
  if (isFailed(mark)) {
    attemptFailed(generation, markedFailed(mark?.reason));
  } else if (isRecovering(mark, session.lostAgent) && session.recoveryTimer
    && isWaiting(exposed.status) && isCurrent(generation)) {
    // the mark came after the departure
    waitForAgent(generation, replacementWait(recoveryWait(mark)));
  }
}

/**
 * The agent left. Stay in the room while a replacement is on its way; else try a new room.
 * @param {Room} room
 * @param {RemoteParticipant} participant
 * @param {number} generation
 */
function agentLost(room, participant, generation) {
  if (!isCurrent(generation) || exposed.status !== 'connected') return;
  exposed.agentIdentity = null;
  exposed.recoveries += 1;
  session.lostAgent = participant.identity;
  conversation.agentGone();
  setStatus('reconnecting', 'Reconnecting your agent... (it dropped out; a new one is on its way)');
  const mark = roomStatus(room.metadata);
  const wait = isRecovering(mark, participant.identity) ? recoveryWait(mark) : null;
  waitForAgent(generation, afterAgentLeft(participant.identity, wait));
}

/**
 * Waits `wait.ms` in the room for an agent; without one by then, the attempt fails.
 * @param {number} generation
 * @param {AgentWait} wait
 */
function waitForAgent(generation, { ms, failure }) {
  clearTimeout(session.recoveryTimer);
  session.recoveryTimer = setTimeout(() => {
    session.recoveryTimer = undefined;
    attemptFailed(generation, failure);
  }, ms);
}

/**
 * No agent within `timeout` seconds: leave, unless the room says one is on its way (once).
 * @param {number} generation
 * @param {number} timeout
 */
function joinTimedOut(generation, timeout) {
  const mark = roomStatus(session.room?.metadata);
  const wait = isRecovering(mark) && isCurrent(generation) ? recoveryWait(mark) : null;
  const next = afterJoinTimeout(timeout, wait, session.joinExtended);
  if ('failure' in next) {
    attemptFailed(generation, next.failure);
    return;
  }
  session.joinExtended = true;
  session.joinTimer = setTimeout(
    () => joinTimedOut(generation, next.timeout),
    next.extendBy * 1000,
  );
}

/**
 * @param {number} generation
 * @param {Failure} failure
 */
async function attemptFailed(generation, { outcome, detail }) {
  if (!isCurrent(generation) || !canFail(exposed.status)) return;
  const next = ++session.generation;
  clearTimers();
  endCurrentAttempt(outcome, detail);
  await leave(takeRoom(), false);
  if (isCurrent(next)) retryOrGiveUp(detail);
}

/** @param {string} detail why the attempt failed */
function retryOrGiveUp(detail) {
  const next = afterFailure(session.retries, session.config, detail);
  if (next.giveUp) {
    const problem = agentMissing(next.attempts, detail, session.agent?.name);
    setStatus('failed', next.text);
    showError(problem);
    reportSession('explained', false);
    return;
  }
  session.retries = next.retry;
  const generation = session.generation;
  setStatus('retrying', next.text);
  session.retryTimer = setTimeout(() => {
    if (isCurrent(generation)) startAttempt();
  }, next.delay * 1000);
}

/** @param {PageProblem} problem */
async function stopWithProblem(problem) {
  ++session.generation;
  clearTimers();
  endCurrentAttempt('error', problem.title);
  await leave(takeRoom(), false);
  setStatus('error', `${problem.title}.`);
  showError(problem);
  reportSession('explained', false);
}

// --- leaving --------------------------------------------------------------------------

async function disconnect() {
  const generation = ++session.generation;
  clearTimers();
  endCurrentAttempt('cancelled', 'you disconnected');
  reportSession('left', false);
  setStatus('disconnecting', 'Disconnecting...');
  const room = takeRoom();
  await leave(room, true);
  askToDeleteRoom(room, false);
  if (isCurrent(generation)) setStatus('disconnected', 'Disconnected. Press Connect to talk again.');
}

/**
 * @param {Room | null} room
 * @param {boolean} sayGoodbye
 */
async function leave(room, sayGoodbye) {
  if (!room) return;
  room.removeAllListeners();
  if (sayGoodbye && room.state === ConnectionState.Connected) {
    // The spec's order: the agent hears the goodbye and leaves, then so do we. Leaving at
    // once could close the connection before the message is through.
    const agentGone = agentLeaves(room, GOODBYE_WAIT_MS);
    if (await sendMessage(room, cleanupMessage(room))) exposed.agentLeftFirst = await agentGone;
  }
  try {
    await room.disconnect();
  } catch (error) {
    console.warn('leaving the room failed', error);
  }
}

/**
 * @param {Room} room
 * @param {import('/static/protocol.js').Message} message
 */
async function sendMessage(room, message) {
  const record = { type: message.type, room: room.name, ok: false };
  exposed.messages.push(record);
  record.ok = await publish(room, message);
  return record.ok;
}

// Closing the tab: nothing can be awaited here. Send the goodbye and leave once it is
// handed over (if the page goes first, its connection closes with it), and ask the page's
// server, by beacon, to delete the room, in case the goodbye does not get through.
function leaveOnPageHide() {
  reportSession('left', true);
  const room = takeRoom();
  if (!room) return;
  ++session.generation;
  clearTimers();
  room.removeAllListeners();
  const leave = () => room.disconnect().catch(() => {});
  if (room.state === ConnectionState.Connected) {
    room.localParticipant
      .publishData(encode(cleanupMessage(room)), publishOptions())
      .then(leave, leave);
  } else {
    leave();
  }
  askToDeleteRoom(room, true);
  setStatus('disconnected', 'Disconnected (the page was closed).');
}

/**
 * The page's server deletes the room if nobody but agents is left in it (`/api/leave`):
 * an agent that ignores the goodbye would otherwise keep it for LiveKit's departure
 * timeout. A closing tab can only send a beacon; Disconnect can still fetch.
 * @param {Room | null} room
 * @param {boolean} closing
 */
function askToDeleteRoom(room, closing) {
  if (!room || session.leave?.room !== room.name) return;
  exposed.leaveRequests += 1;
  if (closing) {
    leaveBeacon(session.leave);
    return;
  }
  requestLeave(session.leave)
    .then((answer) => exposed.leaveAnswers.push(answer))
    .catch((error) => console.warn('asking to delete the room failed', error));
}

/**
 * Tells the page's server how the session went, once per session (report.js).
 * @param {'explained' | 'left'} how
 * @param {boolean} closing
 */
function reportSession(how, closing) {
  session.report.end(how, closing, exposed.attempts.length, exposed.recoveries);
}

// --- start ----------------------------------------------------------------------------

async function loadConfig() {
  const params = new URLSearchParams(window.location.search);
  let config;
  try {
    config = await fetchConfig();
  } catch {
    setStatus('error', "The page's server is not answering.");
    showError(pageServerUnreachable());
    return;
  }
  useProtocol(config.protocol);
  conversation.useAttribute(config.protocol.attributes?.agent_state);
  session.config = withOverrides(config, params);
  exposed.config = { ...session.config };
  fillAgents(session.config.agents, params.get('agent'));
  setStatus('idle', 'Choose an agent and press Connect.');
}

ui.form.addEventListener('submit', startSession);
ui.disconnectButton.addEventListener('click', disconnect);
ui.audioButton.addEventListener('click', async () => {
  // Browsers may block sound until the person clicks: this click allows it.
  const room = session.room;
  if (room) await room.startAudio();
  ui.audioButton.hidden = Boolean(room?.canPlaybackAudio);
});
window.addEventListener('pagehide', leaveOnPageHide);
window.addEventListener('beforeunload', leaveOnPageHide);
loadConfig();
