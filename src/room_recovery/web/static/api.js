// The page's server (web/server.py): its config, a token for each attempt, deleting
// the room when the person leaves, and the session's report (web/reports.py). What goes wrong asking for a token becomes a problem
// the page explains (problems.js).

import { pageServerUnreachable, tokenRefused } from '/static/problems.js';

/**
 * What /api/config answers: the page's timing, the agents to choose from, the protocol.
 * @typedef {import('/static/session.js').Config
 *   & {protocol: import('/static/protocol.js').Protocol}} ServerConfig
 */

/**
 * What /api/token answers: one attempt's room on a LiveKit server, and the key that lets
 * the page ask for that room to be deleted.
 * @typedef {object} Grant
 * @property {string} url the LiveKit server
 * @property {string} token
 * @property {string} room
 * @property {string} identity
 * @property {number} expires_in
 * @property {string} leave_key
 * @property {string} outcome_key lets the page report how its session went, once
 */

/** @typedef {{room: string, identity: string, leave_key: string}} Leave what /api/leave takes */

/**
 * The config; throws when the server does not answer, or answers with an error.
 * @returns {Promise<ServerConfig>}
 */
export async function fetchConfig() {
  const response = await fetch('/api/config', { cache: 'no-store' });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

/**
 * A token for a new room with `agent` dispatched to it; throws a PageProblem.
 * @param {string} agent
 * @returns {Promise<Grant>}
 */
export async function requestToken(agent) {
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

/**
 * Asks the server to delete the room if nobody but agents is left in it; resolves to its
 * answer. `keepalive`: the request outlives a page that goes on to close.
 * @param {Leave} leave
 * @returns {Promise<{deleted: boolean} | {error: string}>}
 */
export async function requestLeave(leave) {
  const response = await fetch('/api/leave', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(leave),
    keepalive: true,
  });
  return response.json();
}

/**
 * The same, from a closing tab: a beacon is all it can still send.
 * @param {Leave} leave
 */
export function leaveBeacon(leave) {
  const body = JSON.stringify(leave);
  navigator.sendBeacon('/api/leave', new Blob([body], { type: 'application/json' }));
}

/**
 * What /api/outcome takes: the session's report, and its last grant's key.
 * @typedef {import('/static/session.js').SessionReport
 *   & {room: string, identity: string, outcome_key: string}} Outcome
 */

/**
 * Reports how the session went (what people felt, for the operators' metrics); resolves
 * to the HTTP status. `closing`: from a closing tab, by beacon (then it resolves to 0).
 * @param {Outcome} outcome
 * @param {boolean} closing
 * @returns {Promise<number>}
 */
export async function reportOutcome(outcome, closing) {
  const body = JSON.stringify(outcome);
  if (closing) {
    navigator.sendBeacon('/api/outcome', new Blob([body], { type: 'application/json' }));
    return 0;
  }
  const response = await fetch('/api/outcome', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body,
    keepalive: true,
  });
  return response.status;
}
