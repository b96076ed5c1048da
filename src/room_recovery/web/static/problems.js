// What the page explains when it cannot connect: a title, a sentence, and what to run.
// Each problem has a kind the tests read: microphone (missing | refused),
// server-unreachable, token-refused, agent-missing.

import {
  ConnectionError,
  ConnectionErrorReason,
  MediaDeviceFailure,
} from '/vendor/livekit-client.esm.mjs';

/** @typedef {'microphone' | 'server-unreachable' | 'token-refused' | 'agent-missing'} Kind */
/** @typedef {[text: string, command?: string]} Help a step, and the command to run for it */

export class PageProblem extends Error {
  /**
   * @param {Kind} kind
   * @param {string} title
   * @param {string} message
   * @param {Help[]} [help]
   */
  constructor(kind, title, message, help = []) {
    super(message);
    this.kind = kind;
    this.title = title;
    this.help = help;
  }
}

/** @typedef {PageProblem & {microphone: 'missing' | 'refused'}} MicrophoneProblem */

export function pageServerUnreachable() {
  return new PageProblem(
    'server-unreachable',
    "The page's server is not answering",
    'The page could not reach the server that hands out room tokens.',
    [
      ['Check that the voice system is running:', 'room-recovery status'],
      ['Start it if it is not:', 'room-recovery up'],
      ['Then reload this page.'],
    ],
  );
}

/**
 * @param {string | undefined} url
 * @param {unknown} error whatever connecting threw
 */
export function livekitUnreachable(url, error) {
  const reason = /** @type {{message?: string} | undefined} */ (error)?.message || error;
  return new PageProblem(
    'server-unreachable',
    'The LiveKit server is unreachable',
    `Could not connect to the LiveKit server at ${url} (${reason}).`,
    [
      ['Check that LiveKit is running and healthy:', 'room-recovery status'],
      ["Read LiveKit's log:", 'room-recovery logs livekit'],
      ['Restart everything (the nuclear option):', './restart_voice_system.sh'],
    ],
  );
}

/**
 * @param {string} detail
 * @param {boolean} byLiveKit LiveKit refused it (else the page's server did)
 */
export function tokenRefused(detail, byLiveKit) {
  /** @type {Help[]} */
  const help = byLiveKit
    ? [
        ["The page's server signs tokens with LIVEKIT_API_KEY and LIVEKIT_API_SECRET;"
          + " they must match a key pair in the LiveKit server's config."],
        ['Check the settings in .env, then restart:', './restart_voice_system.sh'],
      ]
    : [
        ['Reload the page and choose an agent from the list.'],
        ["If it happens again, read the page server's log:", 'room-recovery logs web'],
      ];
  return new PageProblem(
    'token-refused',
    byLiveKit ? 'LiveKit refused the token' : 'The server refused to give a token',
    detail,
    help,
  );
}

/**
 * @param {unknown} error what enabling the microphone threw
 * @returns {MicrophoneProblem}
 */
export function microphoneProblem(error) {
  const failure = MediaDeviceFailure.getFailure(error);
  if (failure === MediaDeviceFailure.NotFound) {
    const missing = new PageProblem(
      'microphone',
      'No microphone found',
      'The agent can talk to you, but it cannot hear you: this device has no microphone.',
      [['Plug in a microphone or headset, then press Disconnect and Connect again.']],
    );
    return Object.assign(missing, { microphone: /** @type {const} */ ('missing') });
  }
  const refused = new PageProblem(
    'microphone',
    'Microphone access was refused',
    'Microphone access was refused, so the agent cannot hear you. You can still hear it.',
    [
      ['Click the microphone (or padlock) icon in the address bar and choose Allow.'],
      ["On a phone: the browser's site settings → Microphone → Allow."],
      ['Then press Disconnect and Connect again.'],
    ],
  );
  return Object.assign(refused, { microphone: /** @type {const} */ ('refused') });
}

/**
 * @param {number} attempts
 * @param {string} detail why the last attempt failed
 * @param {string} [agent]
 */
export function agentMissing(attempts, detail, agent = 'the agent') {
  return new PageProblem(
    'agent-missing',
    `Failed to connect after ${attempts} attempts`,
    `No agent joined (last attempt: ${detail}). Each attempt used a new room, so the`
      + ` agent "${agent}" is most likely not running or not registered with LiveKit.`,
    [
      ['Check that the voice agent is running and healthy:', 'room-recovery status'],
      ['Ask why no agent came (it dispatches a test agent):', 'room-recovery doctor --probe'],
      ["Read the agent's log for errors:", 'room-recovery logs agent'],
      ['Look for rooms with stuck participants:', 'room-recovery rooms'],
      ['Restart everything (the nuclear option):', './restart_voice_system.sh'],
      ['Then press Connect again.'],
    ],
  );
}

/**
 * @param {unknown} error what asking for a token or connecting threw
 * @param {string} [url] the LiveKit server, once the token named it
 */
export function connectProblem(error, url) {
  if (error instanceof PageProblem) return error;
  if (error instanceof ConnectionError && error.reason === ConnectionErrorReason.NotAllowed) {
    return tokenRefused(`LiveKit at ${url} refused the token (${error.message}).`, true);
  }
  return livekitUnreachable(url, error);
}

