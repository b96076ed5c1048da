// The session's one report to the page's server (web/reports.py): what the person felt.
// A session is one press of Connect until the page gives up or the person leaves; its
// report is decided in session.js (`sessionReport`) and sent once, signed with the last
// grant's `outcome_key`. Tests read the reports in `window.roomRecovery.reports`.

import { reportOutcome } from '/static/api.js';
import { sessionReport } from '/static/session.js';

/** @typedef {import('/static/session.js').SessionReport & {status: number}} SentReport */
/** @typedef {{room: string, identity: string, outcome_key: string}} ReportKey */

export class SessionReporter {
  /** each report sent, with the HTTP status it got (0: by beacon, or not yet) */
  reports = /** @type {SentReport[]} */ ([]);
  startedAt = 0;
  agentAt = /** @type {number | null} */ (null);
  attemptsBefore = 0;
  recoveriesBefore = 0;
  key = /** @type {ReportKey | null} */ (null);
  sent = true; // no session yet

  /**
   * Connect was pressed: a session starts, after `attempts` rooms and `recoveries` seen.
   * @param {number} attempts
   * @param {number} recoveries
   */
  start(attempts, recoveries) {
    Object.assign(this, {
      startedAt: Date.now(),
      agentAt: null,
      attemptsBefore: attempts,
      recoveriesBefore: recoveries,
      key: null,
      sent: false,
    });
  }

  /**
   * An attempt got its grant: its key signs the report.
   * @param {{room: string, identity: string, outcome_key: string}} grant
   */
  granted({ room, identity, outcome_key }) {
    this.key = { room, identity, outcome_key };
  }

  /** An agent came (only the session's first counts). */
  agentCame() {
    this.agentAt ??= Date.now();
  }

  /**
   * The session ended: the page gave up (`explained`) or the person left. Sends the report
   * once; from a closing tab (`closing`) by beacon.
   * @param {'explained' | 'left'} how
   * @param {boolean} closing
   * @param {number} attempts rooms tried over the page's life
   * @param {number} recoveries recoveries seen over the page's life
   */
  end(how, closing, attempts, recoveries) {
    if (this.sent || !this.key) return;
    this.sent = true;
    const report = sessionReport({
      startedAt: this.startedAt,
      agentAt: this.agentAt,
      attempts: attempts - this.attemptsBefore,
      recoveries: recoveries - this.recoveriesBefore,
    }, how);
    const record = { ...report, status: 0 };
    this.reports.push(record);
    reportOutcome({ ...this.key, ...report }, closing)
      .then((status) => { record.status = status; })
      .catch((error) => console.warn('reporting the session failed', error));
  }
}
