// The watchdog's operations view: reads /api/overview every second, and what Prometheus
// says (/api/alerts: the alerts that fire, what people felt) every five, while the tab is
// visible (nothing while hidden or closed), and draws them. Tests read `window.opsView`.

const REFRESH_MS = 1000;
const ALERTS_EVERY = 5; // refreshes between two reads of /api/alerts
const $ = (id) => document.getElementById(id);
const exposed = { loads: 0, failures: 0, overview: null, alerts: null };
window.opsView = exposed;

let timer = null;

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

const seconds = (value) => (value < 60 ? `${value.toFixed(1)} s` : `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`);
const clock = (unix) => new Date(unix * 1000).toLocaleTimeString();
const names = (list) => (list.length ? list.join(', ') : '-');

function drawSummary(data) {
  const { health, rooms } = data;
  document.body.dataset.health = health.status;
  const problems = health.problems.length ? `: ${health.problems.join('; ')}` : '';
  const people = rooms.people_waiting;
  const waiting = people === 1 ? '1 person waiting' : `${people} people waiting`;
  const standby = data.role === 'standby'
    ? ' It stands by: the leader looks at the rooms, and its view shows who waits.'
    : '';
  $('summary').textContent = `Watchdog ${health.status} (${data.role})${problems}. ${waiting}.${standby}`;
  $('waiting-count').textContent = String(people);
  $('tile-waiting').dataset.alert = String(people > 0);
  $('room-count').textContent = String(rooms.listed);
  $('room-meter').max = Math.max(rooms.threshold, rooms.listed, 1);
  $('room-meter').high = rooms.threshold;
  $('room-meter').value = rooms.listed;
  $('room-threshold').textContent = `alert above ${rooms.threshold}`;
  $('tile-rooms').dataset.alert = String(rooms.alert);
  $('close-count').textContent = `${rooms.close} of ${rooms.known}`;
  const jobs = data.workers.jobs === 1 ? '1 job' : `${data.workers.jobs} jobs`;
  const silent = data.workers.silent ? `, ${data.workers.silent} not answering` : '';
  $('link-count').textContent = `${data.workers.links} (${jobs}${silent})`;
  $('role').textContent = data.role;
}

function drawRooms(data) {
  const rows = data.room_list.map((room) => {
    const row = element('tr');
    row.dataset.room = room.name;
    row.dataset.waiting = String(room.waiting_for !== null);
    const waiting = room.waiting_for === null ? '-' : `waiting ${seconds(room.waiting_for)}`;
    const attention = [room.attention];
    if (room.replacing) attention.push(`replacing ${room.replacing}`);
    if (room.dispatches) attention.push(`${room.dispatches} dispatched`);
    if (room.failed) attention.push('failed');
    row.append(
      element('th', room.name),
      element('td', names(room.people)),
      element('td', names(room.agents)),
      element('td', waiting),
      element('td', attention.join(', ')),
    );
    row.firstChild.scope = 'row';
    return row;
  });
  if (!rows.length) {
    const row = element('tr');
    const cell = element('td', 'No rooms in scope.');
    cell.colSpan = 5;
    row.append(cell);
    rows.push(row);
  }
  $('rooms').tBodies[0].replaceChildren(...rows);
  $('rooms-more').hidden = !data.more;
  $('rooms-more').textContent = `and ${data.more} more rooms (the list shows the most urgent)`;
}

function drawRecoveries(data) {
  const items = data.recoveries.map((item) => {
    const line = element('li');
    line.dataset.cause = item.cause;
    line.append(
      element('time', clock(item.at)),
      ' ',
      element('strong', item.cause.replaceAll('_', ' ')),
      ` in ${item.room}`,
      item.detail ? `: ${item.detail}` : '',
    );
    return line;
  });
  if (!items.length) items.push(element('li', 'None since the watchdog started.', 'empty'));
  $('recoveries').replaceChildren(...items);
}

function drawChart(data) {
  const buckets = data.time_to_agent;
  const total = buckets.reduce((sum, bucket) => sum + bucket.count, 0);
  const most = Math.max(1, ...buckets.map((bucket) => bucket.count));
  let lower = 0;
  const bars = buckets.map((bucket) => {
    const label = bucket.le === null ? `> ${lower} s` : `≤ ${bucket.le} s`;
    lower = bucket.le ?? lower;
    const bar = element('div', undefined, 'bar');
    const fill = element('span', undefined, 'fill');
    fill.style.height = `${(100 * bucket.count) / most}%`; // CSSOM: allowed by the CSP
    bar.append(element('span', String(bucket.count), 'count'), fill, element('span', label, 'label'));
    bar.title = `${bucket.count} joins ${label}`;
    return bar;
  });
  $('chart').replaceChildren(...bars);
  const description = buckets
    .filter((bucket) => bucket.count)
    .map((bucket) => `${bucket.count} within ${bucket.le === null ? 'more than 60' : bucket.le} s`)
    .join(', ');
  $('chart').setAttribute('aria-label', total ? `Time to agent: ${description}` : 'No joins measured yet');
  $('chart-note').textContent = `${total} joins since the watchdog started: a person's join to the first agent's.`;
}

function drawLoops(data) {
  const loops = Object.entries(data.health.loops ?? {}).map(([name, loop]) => {
    const ok = !loop.stalled && !loop.failures;
    const item = element('li', undefined, ok ? 'ok' : 'bad');
    const when = loop.last_ok_ago === null ? 'not yet' : `${loop.last_ok_ago} s ago`;
    const trouble = loop.stalled ? 'stalled' : loop.failures ? `${loop.failures} failures: ${loop.last_error}` : 'ok';
    item.append(element('strong', name), ` every ${loop.interval} s; last success ${when}; ${trouble}`);
    return item;
  });
  $('loops').replaceChildren(...loops);
}

function drawAlerts(data) {
  const items = data.alerts.map((alert) => {
    const item = element('li', undefined, alert.state);
    item.dataset.alert = alert.name;
    item.dataset.severity = alert.severity;
    const since = alert.since ? ` since ${new Date(alert.since).toLocaleTimeString()}` : '';
    item.append(element('strong', alert.name), ` ${alert.state}${since}: ${alert.summary}`);
    return item;
  });
  if (!items.length && data.configured && !data.error) items.push(element('li', 'None firing.', 'empty'));
  $('alerts').replaceChildren(...items);
  const firing = data.alerts.filter((alert) => alert.state === 'firing').length;
  document.body.dataset.alerts = String(firing);
  $('alerts-note').textContent = data.error ?? `From ${data.url}, with alerts/room-recovery.rules.yml.`;
}

function drawPeople(data) {
  const people = data.people;
  if (!people) {
    $('people').replaceChildren();
    $('people-note').textContent = data.error ?? '';
    return;
  }
  const sessions = people.sessions;
  const count = (outcome) => String(sessions[outcome] ?? 0);
  const time = (value) => (value === null ? '-' : seconds(value));
  const facts = [
    ['Got an agent', count('agent')],
    ['Told no agent came', count('explained')],
    ['Left before an agent', count('left')],
    ['Time to agent p50 / p95', `${time(people.p50)} / ${time(people.p95)}`],
    ['Retries in new rooms', String(people.retries ?? 0)],
    ['Recoveries seen', String(people.recoveries ?? 0)],
  ].flatMap(([term, value]) => [element('dt', term), element('dd', value)]);
  $('people').replaceChildren(...facts);
  $('people-note').textContent = `Sessions in the last ${people.window}, as each person's page reported it.`;
}

async function refreshAlerts() {
  try {
    const response = await fetch('/api/alerts', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    exposed.alerts = data;
    drawAlerts(data);
    drawPeople(data);
  } catch (error) {
    $('alerts-note').textContent = `Could not read the alerts (${error.message}).`;
  }
}

async function refresh() {
  timer = null;
  if (exposed.loads % ALERTS_EVERY === 0) refreshAlerts();
  try {
    const response = await fetch('/api/overview', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    exposed.overview = data;
    exposed.loads += 1;
    drawSummary(data);
    drawRooms(data);
    drawRecoveries(data);
    drawChart(data);
    drawLoops(data);
  } catch (error) {
    exposed.failures += 1;
    document.body.dataset.health = 'unreachable';
    $('summary').textContent = `The watchdog is not answering (${error.message}); retrying...`;
  }
  schedule();
}

function schedule() {
  if (!document.hidden && timer === null) timer = setTimeout(refresh, REFRESH_MS);
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    clearTimeout(timer);
    timer = null;
  } else if (timer === null) {
    refresh();
  }
});
refresh();
