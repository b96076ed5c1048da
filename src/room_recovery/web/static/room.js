// LiveKit's side of a session: a Room that gives up on a lost connection soon (see
// RECONNECT_DELAYS_MS), its events told in the session's terms (an agent joined, the last
// agent left, ...), and waiting for the agent to leave after the goodbye.

import {
  DefaultReconnectPolicy,
  ParticipantKind,
  Room,
  RoomEvent,
  Track,
} from '/vendor/livekit-client.esm.mjs';
import { RECONNECT_DELAYS_MS } from '/static/session.js';

/** @typedef {import('/vendor/livekit-client.esm.mjs').Participant} Participant */
/** @typedef {import('/vendor/livekit-client.esm.mjs').RemoteParticipant} RemoteParticipant */
/** @typedef {import('/vendor/livekit-client.esm.mjs').RemoteTrack} RemoteTrack */

/**
 * What happens in a room, as app.js hears of it.
 * @typedef {object} RoomEvents
 * @property {(participant: RemoteParticipant) => void} agentJoined
 * @property {(participant: RemoteParticipant) => void} agentLost the last agent left
 * @property {(metadata: string) => void} metadata the room's metadata changed
 * @property {(track: RemoteTrack, participant: RemoteParticipant) => void} audio a track to play
 * @property {() => void} playback whether the browser lets the page play sound changed
 * @property {(connection: 'reconnecting' | 'connected') => void} connection LiveKit is
 *   resuming a lost connection, or did
 * @property {(reason: unknown) => void} closed the connection closed (LiveKit's reason)
 */

/** @param {Participant} participant */
export const isAgent = (participant) => participant.kind === ParticipantKind.AGENT;
/** @param {Room} room */
export const findAgent = (room) => [...room.remoteParticipants.values()].find(isAgent);

/**
 * A room, not yet connected, that tells `events` what happens in it.
 * @param {RoomEvents} events
 */
export function newRoom(events) {
  const room = new Room({ reconnectPolicy: new DefaultReconnectPolicy(RECONNECT_DELAYS_MS) });
  room
    .on(RoomEvent.ParticipantConnected, (participant) => {
      if (isAgent(participant)) events.agentJoined(participant);
    })
    .on(RoomEvent.ParticipantDisconnected, (participant) => {
      if (isAgent(participant) && !findAgent(room)) events.agentLost(participant);
    })
    .on(RoomEvent.RoomMetadataChanged, events.metadata)
    .on(RoomEvent.TrackSubscribed, (track, _publication, participant) => {
      if (track.kind === Track.Kind.Audio) events.audio(track, participant);
    })
    .on(RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((el) => el.remove()))
    .on(RoomEvent.AudioPlaybackStatusChanged, events.playback)
    .on(RoomEvent.Reconnecting, () => events.connection('reconnecting'))
    .on(RoomEvent.Reconnected, () => events.connection('connected'))
    .on(RoomEvent.Disconnected, events.closed);
  return room;
}

/**
 * Resolves true once no agent is left in the room (or the room is gone), false on timeout.
 * @param {Room} room
 * @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
export function agentLeaves(room, timeoutMs) {
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
    /** @param {boolean} result */
    const done = (result) => {
      clearTimeout(timer);
      room.off(RoomEvent.ParticipantDisconnected, check).off(RoomEvent.Disconnected, gone);
      resolve(result);
    };
    room.on(RoomEvent.ParticipantDisconnected, check).on(RoomEvent.Disconnected, gone);
  });
}
