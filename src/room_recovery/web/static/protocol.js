// What the page says to agents and reads from the watchdog, built from the names the
// page's server sends in /api/config ("protocol", from room_recovery/protocol/page.py):
// one definition on the Python side, none written again here.
//
// Messages are UTF-8 JSON, sent reliably, without a topic unless the protocol names one.

const SEND_TIMEOUT_MS = 2000; // a message that cannot be sent must not keep the person in

let names = null;

export function useProtocol(protocol) {
  names = protocol;
}

export function selectionMessage(agent) {
  return { type: names.messages.agent_selection, agent_id: agent.name, agent_name: agent.name };
}

export function cleanupMessage(room) {
  return {
    type: names.messages.room_cleanup,
    timestamp: new Date().toISOString(),
    room: room.name,
  };
}

export function encode(message) {
  return new TextEncoder().encode(JSON.stringify(message));
}

export function publishOptions() {
  const topic = names.messages.topic;
  return topic ? { reliable: true, topic } : { reliable: true };
}

// Publishes `message`; resolves true once handed over, false on error or after 2 s.
export async function publish(room, message) {
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

// room-recovery's status in the room's metadata, or null (also for others' metadata).
export function roomStatus(metadata) {
  try {
    return JSON.parse(metadata || 'null')?.[names.room_status.key] ?? null;
  } catch {
    return null;
  }
}

export const isFailed = (status) => status?.status === names.room_status.failed;

// Whether the room says a replacement for agent `identity` is on its way (a mark naming
// another agent is an old recovery's).
export const isRecovering = (status, identity) => status?.status === names.room_status.recovering
  && (!status.agent || !identity || status.agent === identity);

// How long to wait in a recovering room for the replacement agent, in seconds.
export function recoveryWait(status) {
  const wait = Number(status?.wait);
  const bound = names.room_status.recovery_wait;
  return Number.isFinite(wait) && wait > 0 ? Math.min(wait, 2 * bound) : bound;
}
