// The conversation once an agent is in the room: the agent's state as it publishes it
// (`lk.agent.state`, as LiveKit's agent front ends read it), a level meter for its voice and
// one for the person's microphone, a mute button, and a choice of microphone when there are
// several. Levels come from livekit-client's own `createAudioAnalyser` (what components-js'
// `useTrackVolume` uses), read ten times a second while the tab is visible.
//
// app.js calls begin(room) when it joins, agent(participant) when an agent is there,
// microphoneOn() once the microphone is published, and end() when it leaves the room.

import { Room, RoomEvent, Track, createAudioAnalyser } from '/vendor/livekit-client.esm.mjs';

/** @typedef {import('/vendor/livekit-client.esm.mjs').Participant} Participant */
/** @typedef {import('/vendor/livekit-client.esm.mjs').LocalAudioTrack} LocalAudioTrack */
/** @typedef {import('/vendor/livekit-client.esm.mjs').RemoteAudioTrack} RemoteAudioTrack */
/** @typedef {'agent' | 'microphone'} MeterName */
/** @typedef {ReturnType<typeof createAudioAnalyser>} Analyser */
/** @typedef {{analyser: Analyser, element: HTMLMeterElement}} Meter */

const LEVEL_EVERY_MS = 100;
/** @type {Record<string, string>} */
const STATE_TEXT = {
  initializing: 'getting ready',
  listening: 'listening',
  thinking: 'thinking',
  speaking: 'speaking',
};

/** @param {string} id an element of index.html, which has them all */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ui = {
  panel: $('conversation'),
  agentState: $('agent-state'),
  agentLevel: /** @type {HTMLMeterElement} */ ($('agent-level')),
  micLevel: /** @type {HTMLMeterElement} */ ($('mic-level')),
  muteButton: /** @type {HTMLButtonElement} */ ($('mute-button')),
  micChoice: $('mic-choice'),
  micSelect: /** @type {HTMLSelectElement} */ ($('mic-select')),
};

// What tests read (part of window.roomRecovery, see app.js).
export const seen = {
  agentState: /** @type {string | null} */ (null), // the agent's state now, or null
  // each state the page showed, in order (repeats collapsed)
  agentStates: /** @type {string[]} */ ([]),
  muted: false,
  levels: { agent: 0, microphone: 0 }, // the loudest level read so far in this room, 0..1
  microphones: 0, // microphones offered in the choice
};

/** @type {string | null} */
let attributeName = null; // from /api/config (LiveKit's `lk.agent.state`)
/**
 * @type {{room: Room | null, agent: Participant | null, meters: Map<MeterName, Meter>,
 *   timer: ReturnType<typeof setInterval> | undefined}}
 */
const current = { room: null, agent: null, meters: new Map(), timer: undefined };

/** @param {string | undefined} name */
export function useAttribute(name) {
  attributeName = name ?? null;
}

/** @param {Room} room */
export function begin(room) {
  end();
  current.room = room;
  seen.levels = { agent: 0, microphone: 0 };
  room
    .on(RoomEvent.ParticipantAttributesChanged, (changed, participant) => {
      if (participant === current.agent && attributeName && attributeName in changed) showState();
    })
    .on(RoomEvent.TrackSubscribed, (track, _publication, participant) => {
      if (participant === current.agent && track.kind === Track.Kind.Audio) {
        meter('agent', /** @type {RemoteAudioTrack} */ (track), ui.agentLevel);
      }
    })
    .on(RoomEvent.TrackMuted, syncMute)
    .on(RoomEvent.TrackUnmuted, syncMute)
    .on(RoomEvent.MediaDevicesChanged, listMicrophones)
    .on(RoomEvent.ActiveDeviceChanged, (kind) => {
      if (kind === 'audioinput') microphoneOn(); // a new track to measure
    });
}

/**
 * An agent is in the room (a new one after a recovery, too).
 * @param {import('/vendor/livekit-client.esm.mjs').RemoteParticipant} participant
 */
export function agent(participant) {
  current.agent = participant;
  ui.panel.hidden = false;
  showState();
  const track = participant.getTrackPublication(Track.Source.Microphone)?.audioTrack
    ?? [...participant.audioTrackPublications.values()].find((p) => p.audioTrack)?.audioTrack;
  if (track) meter('agent', track, ui.agentLevel);
}

// The agent left; a replacement may come (app.js says what the person should expect).
export function agentGone() {
  current.agent = null;
  dropMeter('agent');
  ui.agentLevel.value = 0;
  showState();
}

export async function microphoneOn() {
  const room = current.room;
  const track = room?.localParticipant.getTrackPublication(Track.Source.Microphone)?.audioTrack;
  if (!track) return;
  meter('microphone', track, ui.micLevel);
  ui.muteButton.disabled = false;
  syncMute();
  await listMicrophones();
}

export function end() {
  for (const name of [...current.meters.keys()]) dropMeter(name);
  clearInterval(current.timer);
  current.timer = undefined;
  current.room = null;
  current.agent = null;
  seen.agentState = null;
  ui.panel.hidden = true;
  ui.muteButton.disabled = true;
  ui.micChoice.hidden = true;
  ui.agentLevel.value = 0;
  ui.micLevel.value = 0;
  setMuted(false);
}

// --- the agent's state ------------------------------------------------------------------

function showState() {
  const state = (attributeName && current.agent?.attributes?.[attributeName]) || null;
  seen.agentState = state;
  if (state && seen.agentStates.at(-1) !== state) seen.agentStates.push(state);
  ui.panel.dataset.agentState = state ?? (current.agent ? 'unknown' : 'absent');
  if (!current.agent) ui.agentState.textContent = 'No agent in the room.';
  else if (!state) ui.agentState.textContent = 'The agent is here.';
  else ui.agentState.textContent = `The agent is ${STATE_TEXT[state] ?? state}.`;
}

// --- mute -------------------------------------------------------------------------------

async function toggleMute() {
  const room = current.room;
  if (!room) return;
  const muted = !seen.muted;
  ui.muteButton.disabled = true;
  try {
    // mutes the published track: the server shows it muted, the agent hears silence
    await room.localParticipant.setMicrophoneEnabled(!muted);
    setMuted(muted);
  } catch (error) {
    console.warn('could not change the microphone', error);
  } finally {
    ui.muteButton.disabled = !current.room;
  }
}

function syncMute() {
  const publication = current.room?.localParticipant.getTrackPublication(Track.Source.Microphone);
  if (publication) setMuted(publication.isMuted);
}

/** @param {boolean} muted */
function setMuted(muted) {
  seen.muted = muted;
  ui.muteButton.setAttribute('aria-pressed', String(muted));
  ui.muteButton.textContent = muted ? 'Unmute microphone' : 'Mute microphone';
  ui.panel.dataset.muted = String(muted);
}

// --- microphones --------------------------------------------------------------------------

async function listMicrophones() {
  const room = current.room;
  if (!room) return;
  /** @type {MediaDeviceInfo[]} */
  let devices = [];
  try {
    devices = await Room.getLocalDevices('audioinput', false);
  } catch (error) {
    console.warn('could not list microphones', error);
  }
  devices = devices.filter((device) => device.deviceId && device.deviceId !== 'default');
  seen.microphones = devices.length;
  const active = room.getActiveDevice('audioinput');
  ui.micSelect.replaceChildren(
    ...devices.map((device, index) => new Option(
      device.label || `Microphone ${index + 1}`,
      device.deviceId,
      false,
      device.deviceId === active,
    )),
  );
  ui.micChoice.hidden = devices.length < 2;
}

async function chooseMicrophone() {
  const room = current.room;
  if (!room) return;
  try {
    await room.switchActiveDevice('audioinput', ui.micSelect.value);
  } catch (error) {
    console.warn('could not switch the microphone', error);
  }
}

// --- levels -------------------------------------------------------------------------------

/**
 * @param {MeterName} name
 * @param {LocalAudioTrack | RemoteAudioTrack} track
 * @param {HTMLMeterElement} element
 */
function meter(name, track, element) {
  dropMeter(name);
  try {
    // the track itself, not a clone: a muted microphone then reads 0
    const analyser = createAudioAnalyser(track);
    current.meters.set(name, { analyser, element });
  } catch (error) {
    console.warn(`no level meter for ${name}`, error);
    return;
  }
  if (!current.timer) current.timer = setInterval(readLevels, LEVEL_EVERY_MS);
}

/** @param {MeterName} name */
function dropMeter(name) {
  const entry = current.meters.get(name);
  if (!entry) return;
  current.meters.delete(name);
  entry.element.value = 0;
  entry.analyser.cleanup().catch(() => {});
}

function readLevels() {
  if (document.hidden) return;
  for (const [name, { analyser, element }] of current.meters) {
    const level = Math.min(1, analyser.calculateVolume());
    element.value = level;
    seen.levels[name] = Math.max(seen.levels[name], level);
  }
}

ui.muteButton.addEventListener('click', toggleMute);
ui.micSelect.addEventListener('change', chooseMicrophone);
