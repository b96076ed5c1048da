// What the page says to agents and reads from the watchdog, built from the names the
// page's server sends in /api/config ("protocol", from room_recovery/protocol/page.py):
// one definition on the Python side, none written again here.
//
// Messages are UTF-8 JSON, sent reliably, without a topic unless the protocol names one.

/**
 * The protocol's names (`page_protocol()` in room_recovery/protocol/page.py).
 * @typedef {object} Protocol
 * @property {{room_cleanup: string, agent_selection: string, topic: string}} messages
 * @property {{key: string, failed: string, recovering: string, recovery_wait: number}} room_status
 * @property {{heartbeat: string, agent_state: string, agent_states: string[]}} attributes
 */

/**
 * room-recovery's status in a room's metadata, as the watchdog or the worker monitor wrote it.
 * @typedef {object} RoomMark
 * @property {string} [status] failed | recovering (the protocol's names)
 * @property {string} [agent] recovering: the agent being replaced
 * @property {unknown} [wait] recovering: seconds to wait for the replacement
 * @property {string} [reason] failed: why
 */

/** @typedef {{type: string} & Record<string, string>} Message */
/** @typedef {import('/vendor/livekit-client.esm.mjs').Room} Room */

const SEND_TIMEOUT_MS = 2000; // a message that cannot be sent must not keep the person in

/** @type {Protocol} set by useProtocol, from /api/config, before any session */
let names;

/** @param {Protocol} protocol */
export function useProtocol(protocol) {
  names = protocol;
}

/**
 * @param {{name: string}} agent
 * @returns {Message}
 */
export function selectionMessage(agent) {
  return { type: names.messages.agent_selection, agent_id: agent.name, agent_name: agent.name };
}

/**
 * @param {Room} room
 * @returns {Message}
 */
export function cleanupMessage(room) {
  return {
    type: names.messages.room_cleanup,
    timestamp: new Date().toISOString(),
    room: room.name,
  };
}

/** @param {Message} message */
export function encode(message) {
  return new TextEncoder().encode(JSON.stringify(message));
}

/** @returns {import('/vendor/livekit-client.esm.mjs').DataPublishOptions} */
export function publishOptions() {
  const topic = names.messages.topic;
  return topic ? { reliable: true, topic } : { reliable: true };
}

/**
 * Publishes `message`; resolves true once handed over, false on error or after 2 s.
 * @param {Room} room
 * @param {Message} message
 */
export async function publish(room, message) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), SEND_TIMEOUT_MS);
  });
  try {
    const sent = room.localParticipant.publishData(encode(message), publishOptions());
    await Promise.race([sent, timeout]);
    return true;
  } catch (error) {
    console.warn(`could not send ${message.type}`, error);
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * room-recovery's status in the room's metadata, or null (also for others' metadata).
 * @param {string | undefined} metadata
 * @returns {RoomMark | null}
 */
export function roomStatus(metadata) {
  try {
    return JSON.parse(metadata || 'null')?.[names.room_status.key] ?? null;
  } catch {
    return null;
  }
}

/** @param {RoomMark | null} status */
export const isFailed = (status) => status?.status === names.room_status.failed;

/**
 * Whether the room says a replacement for agent `identity` is on its way (a mark naming
 * another agent is an old recovery's).
 * @param {RoomMark | null} status
 * @param {string | null} [identity]
 */
export const isRecovering = (status, identity) => status?.status === names.room_status.recovering
  && (!status.agent || !identity || status.agent === identity);

/**
 * How long to wait in a recovering room for the replacement agent, in seconds.
 * @param {RoomMark | null} status
 */
export function recoveryWait(status) {
  const wait = Number(status?.wait);
  const bound = names.room_status.recovery_wait;
  return Number.isFinite(wait) && wait > 0 ? Math.min(wait, 2 * bound) : bound;
}
