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
// The messages and the room status it reads use the names the server sends in /api/config
// (protocol.js); what it explains when it cannot connect is problems.js; the page's
// elements and how they are drawn, view.js; the agent's state, levels, mute and
// microphone once an agent is there, conversation.js.
// Tests read `window.roomRecovery` (status, attempts, messages sent, error shown).

import {
  ConnectionState,
  DefaultReconnectPolicy,
  ParticipantKind,
  Room,
  RoomEvent,
  Track,
} from '/vendor/livekit-client.esm.mjs';
import {
  agentMissing,
  connectProblem,
  microphoneProblem,
  pageServerUnreachable,
  tokenRefused,
} from '/static/problems.js';
import * as conversation from '/static/conversation.js';
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
import {
  fillAgents,
  hideProblem,
  showAttempts,
  showProblem,
  showStatus,
  ui,
} from '/static/view.js';

const DEFAULTS = { join_timeout: 15, max_retries: 3, retry_step: 1 };
// How long Disconnect waits for the agent to leave first; then the page leaves and asks its
// server to delete the room, all within 2 s, even for an agent that ignores the goodbye.
const GOODBYE_WAIT_MS = 1200;
// After the agent left: how long to wait in the room for a `recovering` mark before leaving
// for a new room (the mark is written before a dead agent is removed; this covers a page
// that hears of the departure first).
const MARK_WAIT_MS = 1500;
// LiveKit's client retries a lost connection for about 45 s, always on the same node. The page
// allows it about 9 s (resumes at once, then 0.3, 1.2, 2.7 and 4.8 s apart, give or take half):
// a node that died is then left for a new room, on a node that answers (the server's choice).
const RECONNECT_DELAYS_MS = [0, 300, 1200, 2700, 4800];
// ...and at most this long in all: each of those tries may hang up to 15 s on a node that takes
// connections and never answers (hung, or its port taken), which would make 9 s a minute.
const CONNECTION_LOST_MS = 10000;
const ACTIVE = new Set(['waiting', 'connected', 'reconnecting', 'retrying']);
const WAITING = new Set(['waiting', 'reconnecting']); // in a room, for an agent

// What tests and curious people can read from the console.
const exposed = {
  status: 'loading',
  statusText: '',
  statuses: [], // each status shown, in order (repeats collapsed)
  connection: 'none', // LiveKit's connection: none | connected | reconnecting
  config: null,
  agent: null,
  room: null,
  identity: null,
  agentIdentity: null,
  attempts: [], // {number, retry, agent, room, startedAt, endedAt, outcome, detail}
  messages: [], // data messages sent: {type, room, ok}
  error: null, // {kind, title}
  microphone: 'off', // off | on | refused | missing
  agentAudio: false,
  agentLeftFirst: null, // after Disconnect: did the agent leave before the page did?
  leaveRequests: 0, // how many times the page asked its server to delete its room
  leaveAnswers: [], // what the server answered when the page could still hear it
  recoveries: 0, // times the agent was lost and the page waited in its room for another
  conversation: conversation.seen, // agent state, mute, levels (conversation.js)
};
window.roomRecovery = exposed;

// The state of the session; `generation` changes whenever an attempt ends, so that late
// events and timers of an earlier attempt are ignored.
const session = {
  config: { ...DEFAULTS, agents: [] },
  agent: null,
  retries: 0,
  room: null,
  attempt: null,
  generation: 0,
  joinTimer: null,
  retryTimer: null,
  recoveryTimer: null,
  connectionTimer: null, // runs while LiveKit resumes a lost connection
  joinExtended: false,
  lostAgent: null, // identity of the agent whose replacement the page is waiting for
  leave: null, // {room, identity, leave_key}: for the beacon when the tab closes
};

const joinedRooms = new WeakSet(); // rooms whose connect() succeeded

const isCurrent = (generation) => generation === session.generation;
const isAgent = (participant) => participant.kind === ParticipantKind.AGENT;
const findAgent = (room) => [...room.remoteParticipants.values()].find(isAgent);
const seconds = (value) => `${Number(value.toFixed(2))} s`;

// --- what the person sees -------------------------------------------------------------

function setStatus(status, text) {
  exposed.status = status;
  exposed.statusText = text;
  if (exposed.statuses.at(-1) !== status) exposed.statuses.push(status);
  const active = ACTIVE.has(status);
  const busy = active || status === 'loading' || status === 'disconnecting';
  showStatus(status, text, { active, busy, canConnect: session.config.agents.length > 0 });
}

// LiveKit lost the connection and is resuming it (same room, same agent): say so, without
// changing the session's status.
function showConnection(room, connection, generation) {
  if (session.room !== room) return;
  exposed.connection = connection;
  clearTimeout(session.connectionTimer);
  session.connectionTimer = connection !== 'reconnecting' ? null : setTimeout(() => {
    const detail = `the connection to LiveKit was lost for ${CONNECTION_LOST_MS / 1000} s`;
    attemptFailed(generation, 'connection-lost', detail);
  }, CONNECTION_LOST_MS);
  ui.status.textContent = connection === 'reconnecting'
    ? 'Your connection dropped; reconnecting...'
    : exposed.statusText;
}

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
  const attempt = {
    number: exposed.attempts.length + 1,
    retry: session.retries,
    agent: session.agent.name,
    room: null,
    startedAt: Date.now(),
    endedAt: null,
    outcome: 'pending',
    detail: '',
  };
  exposed.attempts.push(attempt);
  session.attempt = attempt;
  renderAttempts();
  return attempt;
}

function endAttempt(outcome, detail) {
  const attempt = session.attempt;
  if (!attempt) return;
  if (attempt.outcome === 'pending') {
    attempt.outcome = outcome;
    attempt.detail = detail;
  } else {
    attempt.detail = `${attempt.detail}; then ${detail}`;
  }
  attempt.endedAt = Date.now();
  if (outcome !== 'joined') session.attempt = null;
  renderAttempts();
}

function clearTimers() {
  clearTimeout(session.joinTimer);
  clearTimeout(session.retryTimer);
  clearTimeout(session.recoveryTimer);
  clearTimeout(session.connectionTimer);
  session.joinTimer = null;
  session.retryTimer = null;
  session.recoveryTimer = null;
  session.connectionTimer = null;
}

function takeRoom() {
  const room = session.room;
  session.room = null;
  clearTimeout(session.connectionTimer);
  session.connectionTimer = null;
  exposed.agentAudio = false;
  exposed.connection = 'none';
  ui.agentAudio.replaceChildren();
  ui.audioButton.hidden = true;
  conversation.end();
  return room;
}

async function startSession(event) {
  event?.preventDefault();
  if (ACTIVE.has(exposed.status) || exposed.status === 'disconnecting') return;
  clearError();
  session.agent = session.config.agents.find((a) => a.name === ui.agentSelect.value);
  exposed.agent = session.agent.name;
  session.retries = 0;
  await startAttempt();
}

async function startAttempt() {
  const generation = ++session.generation;
  const attempt = recordAttempt();
  const { max_retries: maxRetries } = session.config;
  const count = session.retries ? ` (attempt ${session.retries + 1} of ${maxRetries + 1})` : '';
  setStatus('waiting', `Waiting for agent to join...${count}`);
  const timeout = session.config.join_timeout;
  session.joinExtended = false;
  session.joinTimer = setTimeout(() => joinTimedOut(generation, timeout), timeout * 1000);
  let grant = null;
  try {
    grant = await requestToken(session.agent.name);
    if (!isCurrent(generation)) return;
    attempt.room = exposed.room = grant.room;
    attempt.node = grant.url;
    exposed.identity = grant.identity;
    session.leave = { room: grant.room, identity: grant.identity, leave_key: grant.leave_key };
    renderAttempts();
    const room = newRoom(generation);
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

async function requestToken(agent) {
  let response;
  try {
    response = await fetch('/api/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ agent }),
      cache: 'no-store',
    });
  } catch {
    throw pageServerUnreachable();
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const reason = body.error || response.statusText || 'no reason given';
    throw tokenRefused(`The server answered HTTP ${response.status}: ${reason}`, false);
  }
  return body;
}

function newRoom(generation) {
  const room = new Room({ reconnectPolicy: new DefaultReconnectPolicy(RECONNECT_DELAYS_MS) });
  room
    .on(RoomEvent.ParticipantConnected, (participant) => {
      if (isAgent(participant)) agentJoined(room, participant, generation);
    })
    .on(RoomEvent.ParticipantDisconnected, (participant) => {
      if (isAgent(participant) && !findAgent(room)) agentLost(room, participant, generation);
    })
    .on(RoomEvent.RoomMetadataChanged, (metadata) => onRoomMetadata(metadata, generation))
    .on(RoomEvent.TrackSubscribed, onTrackSubscribed)
    .on(RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((el) => el.remove()))
    .on(RoomEvent.AudioPlaybackStatusChanged, () => {
      ui.audioButton.hidden = room.canPlaybackAudio;
    })
    .on(RoomEvent.Reconnecting, () => showConnection(room, 'reconnecting', generation))
    .on(RoomEvent.Reconnected, () => showConnection(room, 'connected', generation))
    .on(RoomEvent.Disconnected, (reason) => {
      // a connect() that fails rejects, and that is handled where it was called
      if (!joinedRooms.has(room)) return;
      attemptFailed(generation, 'disconnected', `the connection closed (reason ${reason})`);
    });
  return room;
}

function agentJoined(room, participant, generation) {
  // Agents listed at join time are handled once connect() has returned.
  if (!isCurrent(generation) || room.state !== ConnectionState.Connected) return;
  conversation.agent(participant);
  if (!WAITING.has(exposed.status)) return;
  clearTimeout(session.joinTimer);
  clearTimeout(session.recoveryTimer);
  session.recoveryTimer = null;
  session.retries = 0;
  exposed.agentIdentity = participant.identity;
  endAttempt('joined', `${participant.identity} joined`);
  setStatus('connected', `Connected: ${session.agent.label} joined. You can talk now.`);
  sendMessage(room, selectionMessage(session.agent));
  enableMicrophone(room, generation);
}

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
    setStatus('connected', `Connected to ${session.agent.label}, but your microphone is off.`);
  }
}

function onTrackSubscribed(track, publication, participant) {
  if (track.kind !== Track.Kind.Audio) return;
  const element = track.attach();
  element.dataset.participant = participant.identity;
  ui.agentAudio.append(element);
  exposed.agentAudio = true;
}

// The watchdog marks a room it gave up on (room-recovery's status in the metadata: failed),
// and a room whose agent is being replaced (recovering).
function onRoomMetadata(metadata, generation) {
  const mark = roomStatus(metadata);
  if (isFailed(mark)) {
    const reason = mark.reason ? `: ${mark.reason}` : '';
    attemptFailed(generation, 'marked-failed', `the room was marked failed${reason}`);
  } else if (isRecovering(mark, session.lostAgent) && session.recoveryTimer
    && WAITING.has(exposed.status) && isCurrent(generation)) {
    waitForReplacement(generation, recoveryWait(mark)); // the mark came after the departure
  }
}

// The agent left. Stay in the room while a replacement is on its way; else try a new room.
function agentLost(room, participant, generation) {
  if (!isCurrent(generation) || exposed.status !== 'connected') return;
  const detail = `the agent ${participant.identity} left`;
  exposed.agentIdentity = null;
  exposed.recoveries += 1;
  session.lostAgent = participant.identity;
  conversation.agentGone();
  setStatus('reconnecting', 'Reconnecting your agent... (it dropped out; a new one is on its way)');
  const mark = roomStatus(room.metadata);
  if (isRecovering(mark, participant.identity)) {
    waitForReplacement(generation, recoveryWait(mark));
    return;
  }
  clearTimeout(session.recoveryTimer);
  session.recoveryTimer = setTimeout(() => {
    session.recoveryTimer = null;
    attemptFailed(generation, 'agent-left', detail);
  }, MARK_WAIT_MS);
}

function waitForReplacement(generation, waitSeconds) {
  clearTimeout(session.recoveryTimer);
  session.recoveryTimer = setTimeout(() => {
    session.recoveryTimer = null;
    attemptFailed(generation, 'agent-left', `no new agent within ${seconds(waitSeconds)}`);
  }, waitSeconds * 1000);
}

// No agent within join_timeout: leave, unless the room says one is on its way (once).
function joinTimedOut(generation, timeout) {
  const mark = roomStatus(session.room?.metadata);
  if (isRecovering(mark) && !session.joinExtended && isCurrent(generation)) {
    session.joinExtended = true;
    const wait = recoveryWait(mark);
    session.joinTimer = setTimeout(() => joinTimedOut(generation, timeout + wait), wait * 1000);
    return;
  }
  attemptFailed(generation, 'timeout', `no agent joined within ${seconds(timeout)}`);
}

async function attemptFailed(generation, outcome, detail) {
  if (!isCurrent(generation) || !['waiting', 'reconnecting', 'connected'].includes(exposed.status)) {
    return;
  }
  const next = ++session.generation;
  session.recoveryTimer = null;
  clearTimers();
  endAttempt(outcome, detail);
  await leave(takeRoom(), false);
  if (isCurrent(next)) retryOrGiveUp(detail);
}

function retryOrGiveUp(detail) {
  const { max_retries: maxRetries, retry_step: step } = session.config;
  if (session.retries >= maxRetries) {
    // the first attempt and its retries (counted again from each agent join)
    const problem = agentMissing(session.retries + 1, detail, session.agent?.name);
    setStatus('failed', 'Not connected: the agent did not join.');
    showError(problem);
    return;
  }
  session.retries += 1;
  const delay = step * session.retries;
  const generation = session.generation;
  setStatus(
    'retrying',
    `${capitalize(detail)}. Retrying with a new room in ${seconds(delay)}`
      + ` (retry ${session.retries} of ${maxRetries})...`,
  );
  session.retryTimer = setTimeout(() => {
    if (isCurrent(generation)) startAttempt();
  }, delay * 1000);
}

const capitalize = (text) => text.charAt(0).toUpperCase() + text.slice(1);

async function stopWithProblem(problem) {
  ++session.generation;
  clearTimers();
  endAttempt('error', problem.title);
  await leave(takeRoom(), false);
  setStatus('error', `${problem.title}.`);
  showError(problem);
}

// --- leaving --------------------------------------------------------------------------

async function disconnect() {
  const generation = ++session.generation;
  clearTimers();
  endAttempt('cancelled', 'you disconnected');
  setStatus('disconnecting', 'Disconnecting...');
  const room = takeRoom();
  await leave(room, true);
  askToDeleteRoom(room, false);
  if (isCurrent(generation)) setStatus('disconnected', 'Disconnected. Press Connect to talk again.');
}

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

// Resolves true once no agent is left in the room (or the room is gone), false on timeout.
function agentLeaves(room, timeoutMs) {
  return new Promise((resolve) => {
    if (!findAgent(room)) {
      resolve(true);
      return;
    }
    const check = () => {
      if (!findAgent(room)) done(true);
    };
    const gone = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    const done = (result) => {
      clearTimeout(timer);
      room.off(RoomEvent.ParticipantDisconnected, check).off(RoomEvent.Disconnected, gone);
      resolve(result);
    };
    room.on(RoomEvent.ParticipantDisconnected, check).on(RoomEvent.Disconnected, gone);
  });
}

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

// The page's server deletes the room if nobody but agents is left in it (`/api/leave`):
// an agent that ignores the goodbye would otherwise keep it for LiveKit's departure
// timeout. A closing tab can only send a beacon; Disconnect can still fetch.
function askToDeleteRoom(room, closing) {
  if (!room || session.leave?.room !== room.name) return;
  const body = JSON.stringify(session.leave);
  exposed.leaveRequests += 1;
  if (closing) {
    navigator.sendBeacon('/api/leave', new Blob([body], { type: 'application/json' }));
    return;
  }
  fetch('/api/leave', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body,
    keepalive: true,
  })
    .then((response) => response.json())
    .then((answer) => exposed.leaveAnswers.push(answer))
    .catch((error) => console.warn('asking to delete the room failed', error));
}

// --- start ----------------------------------------------------------------------------

function withOverrides(config, params) {
  const result = { ...DEFAULTS, ...config };
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

async function loadConfig() {
  const params = new URLSearchParams(window.location.search);
  let config;
  try {
    const response = await fetch('/api/config', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
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
