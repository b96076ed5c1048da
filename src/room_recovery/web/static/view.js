// What the person sees: the page's elements, and how status, problems and attempts are
// drawn into them. app.js decides what to show; this only shows it.

/** @typedef {import('/static/problems.js').PageProblem} PageProblem */
/** @typedef {import('/static/session.js').Attempt} Attempt */
/** @typedef {import('/static/session.js').AgentChoice} AgentChoice */

/** @param {string} id an element of index.html, which has them all */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

export const ui = {
  form: /** @type {HTMLFormElement} */ ($('session-form')),
  agentSelect: /** @type {HTMLSelectElement} */ ($('agent-select')),
  connectButton: /** @type {HTMLButtonElement} */ ($('connect-button')),
  disconnectButton: /** @type {HTMLButtonElement} */ ($('disconnect-button')),
  status: $('status'),
  audioButton: /** @type {HTMLButtonElement} */ ($('audio-button')),
  error: $('error'),
  errorTitle: $('error-title'),
  errorMessage: $('error-message'),
  errorHelp: $('error-help'),
  attempts: $('attempts'),
  agentAudio: $('agent-audio'),
};

/**
 * `active`: a session runs (Disconnect works); `busy`: nothing new can be started.
 * @param {string} status
 * @param {string} text
 * @param {{active: boolean, busy: boolean, canConnect: boolean}} controls
 */
export function showStatus(status, text, { active, busy, canConnect }) {
  document.body.dataset.state = status;
  ui.status.textContent = text;
  ui.connectButton.disabled = busy || !canConnect;
  ui.agentSelect.disabled = busy;
  ui.disconnectButton.disabled = !active;
}

/** @param {PageProblem} problem */
export function showProblem(problem) {
  ui.errorTitle.textContent = problem.title;
  ui.errorMessage.textContent = problem.message;
  ui.errorHelp.replaceChildren(helpList(problem.help));
  ui.error.hidden = false;
}

export function hideProblem() {
  ui.error.hidden = true;
  ui.errorHelp.replaceChildren();
}

/** @param {PageProblem['help']} help */
function helpList(help) {
  const list = document.createElement('ol');
  for (const [text, command] of help) {
    const item = document.createElement('li');
    item.append(text);
    if (command) {
      const code = document.createElement('code');
      code.textContent = command;
      item.append(' ', code);
    }
    list.append(item);
  }
  return list;
}

/** @param {Attempt[]} attempts */
export function showAttempts(attempts) {
  ui.attempts.replaceChildren(
    ...attempts.map((attempt) => {
      const item = document.createElement('li');
      const room = attempt.room ?? '(no room yet)';
      const detail = attempt.detail ? `: ${attempt.detail}` : '';
      item.textContent = `${room}: ${attempt.outcome}${detail}`;
      return item;
    }),
  );
}

/**
 * @param {AgentChoice[]} agents
 * @param {string | null} preferred the page address's ?agent=
 */
export function fillAgents(agents, preferred) {
  ui.agentSelect.replaceChildren(
    ...agents.map((agent) => new Option(agent.label, agent.name, false, agent.name === preferred)),
  );
}
