// iotscope dashboard: plain JavaScript, no framework, no network beyond
// this server. Pages are sections switched by the URL hash; every figure
// comes from the JSON API (see /api/openapi.json).
'use strict';

// Class colours, in the order of NICTER's Atlas legend: the TCP family in
// warm hues, UDP and ICMP in cool ones.
const CLASSES = [
  ['tcp_syn', 'TCP SYN', '#ff3b30'],
  ['tcp_synack', 'TCP SYN/ACK', '#ff2d92'],
  ['tcp_ack', 'TCP ACK', '#ff9500'],
  ['tcp_fin', 'TCP FIN', '#ffcc00'],
  ['tcp_rst', 'TCP RST', '#af52de'],
  ['tcp_push', 'TCP PUSH', '#a2845e'],
  ['tcp_other', 'other TCP', '#8e8e93'],
  ['udp', 'UDP', '#34c759'],
  ['icmp', 'ICMP', '#32ade6'],
  ['other_ip', 'other IP', '#5856d6'],
  ['non_ip', 'non-IP', '#c7c7cc'],
];
const COLOUR = Object.fromEntries(CLASSES.map(([k, , c]) => [k, c]));
const LABEL = Object.fromEntries(CLASSES.map(([k, l]) => [k, l]));
const SERIES_COLOURS = ['#ff3b30', '#32ade6', '#34c759', '#ff9500', '#af52de', '#ffcc00', '#5856d6', '#a2845e'];
const SVG = 'http://www.w3.org/2000/svg';

const state = { me: null, world: null, series: null, zoom: null, map: null, replay: null };

const $ = (sel) => document.querySelector(sel);
const fmt = (n) => (n === null || n === undefined ? '-' : Number(n).toLocaleString('en'));

function el(tag, attrs = {}, ...children) {
  const e = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function showError(message) {
  const box = $('#error');
  box.textContent = message || '';
  box.hidden = !message;
}

// A JSON API call; state-changing calls carry the session's CSRF token.
async function api(path, options = {}) {
  const headers = { Accept: 'application/json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.method && options.method !== 'GET' && state.me) headers['X-CSRF-Token'] = state.me.csrf;
  const resp = await fetch(path, {
    method: options.method || 'GET',
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: 'same-origin',
  });
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) {
    const err = new Error((body && body.error) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function query(form, keys) {
  const q = new URLSearchParams();
  // A preset period, or the from/to fields when "from .. to" is chosen.
  const preset = form.elements.period && form.elements.period.value;
  if (preset) q.set('period', preset);
  for (const k of keys) {
    if (preset && (k === 'since' || k === 'until')) continue;
    const v = form.elements[k] && form.elements[k].value.trim();
    if (v) q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

function fillTable(selector, rows) {
  const body = $(`${selector} tbody`);
  body.replaceChildren(...rows);
}

// ---- account ---------------------------------------------------------------

async function refreshMe() {
  try {
    state.me = await api('/api/me');
  } catch (_) {
    state.me = null;
  }
  $('#whoami').textContent = state.me
    ? `${state.me.name} (${state.me.role}${state.me.isp ? `: ${state.me.isp}` : ''})`
    : '';
  $('#login-link').hidden = !!state.me;
  $('#logout').hidden = !state.me;
}

async function login(ev) {
  ev.preventDefault();
  try {
    state.me = await api('/api/login', {
      method: 'POST',
      body: { name: $('#login-name').value, password: $('#login-password').value },
    });
    $('#login-password').value = '';
    await refreshMe();
    location.hash = '#survey';
  } catch (e) {
    showError(e.message);
  }
}

async function logout() {
  try { await api('/api/logout', { method: 'POST', body: {} }); } catch (_) { /* gone already */ }
  state.me = null;
  await refreshMe();
  location.hash = '#overview';
}

// ---- overview --------------------------------------------------------------

async function loadOverview() {
  const form = $('#ov-form');
  const o = await api(`/api/overview${query(form, ['since', 'until'])}`);
  $('#ov-packets').textContent = fmt(o.packets);
  $('#ov-sources').textContent = fmt(o.sources);
  $('#ov-infected').textContent = fmt(o.infected);
  $('#ov-period').textContent = o.since ? `${o.since} .. ${o.until}` : 'no data';
  // A live sensor's capture: what it lost is shown, never hidden.
  const cap = o.capture_loss;
  $('#ov-capture').hidden = !cap;
  if (cap) {
    const lost = cap.dropped + cap.if_dropped;
    $('#ov-capture').textContent = lost === 0
      ? `Live capture: ${fmt(cap.received)} frames, none dropped.`
      : `Live capture: ${fmt(lost)} of ${fmt(cap.received)} frames dropped in ${cap.lossy_buckets.length} bucket(s); their counts are a lower bound.`;
    $('#ov-capture').classList.toggle('warn', lost > 0);
  }
  const bar = $('#ov-class-bar');
  bar.replaceChildren();
  let x = 0;
  const total = o.classes.reduce((s, c) => s + c.packets, 0) || 1;
  for (const c of o.classes) {
    const w = (c.packets / total) * 1000;
    if (w > 0) {
      bar.append(el('svg:rect', { x, y: 0, width: w, height: 40, fill: COLOUR[c.class], class: 'class-seg', 'data-class': c.class },
        el('svg:title', { text: `${LABEL[c.class]}: ${fmt(c.packets)} packets` })));
    }
    x += w;
  }
  fillTable('#ov-classes', o.classes.map((c) => el('tr', { class: 'class-row', 'data-class': c.class },
    el('td', {}, el('span', { class: 'swatch', 'data-colour': COLOUR[c.class] }), LABEL[c.class] || c.class),
    el('td', { text: fmt(c.packets) }), el('td', { text: fmt(c.sources) }))));
  for (const s of document.querySelectorAll('.swatch')) s.style.background = s.dataset.colour;
  fillTable('#ov-ports', o.top_ports.map((p) => el('tr', {},
    el('td', { text: `${p.port}/${p.proto}` }), el('td', { text: fmt(p.packets) }), el('td', { text: fmt(p.sources) }))));
  fillTable('#ov-countries', o.top_countries.map((c) => el('tr', {},
    el('td', { text: c.country || '(unknown)' }), el('td', { text: fmt(c.sources) }), el('td', { text: fmt(c.packets) }))));
  fillTable('#ov-as', o.top_as.map((a) => el('tr', {},
    el('td', { text: a.asn ? `AS${a.asn} ${a.org}` : '(unknown)' }), el('td', { text: fmt(a.sources) }), el('td', { text: fmt(a.packets) }))));
  if (!o.enrichment.geo) fillTable('#ov-countries', [el('tr', {}, el('td', { colspan: 3, text: 'no location database configured ([enrich] geo)' }))]);
  if (!o.enrichment.asn) fillTable('#ov-as', [el('tr', {}, el('td', { colspan: 3, text: 'no AS table configured ([enrich] asn)' }))]);
}

// ---- map -------------------------------------------------------------------

const W = 960;
const H = 480;
const project = ([lon, lat]) => [((lon + 180) / 360) * W, ((90 - lat) / 180) * H];

// TopoJSON (quantised, delta-encoded arcs) to SVG paths.
function worldPaths(topo) {
  const [sx, sy] = topo.transform.scale;
  const [tx, ty] = topo.transform.translate;
  const arcs = topo.arcs.map((arc) => {
    let x = 0;
    let y = 0;
    return arc.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; });
  });
  const ring = (indices) => {
    const pts = [];
    for (const i of indices) {
      const a = i >= 0 ? arcs[i] : arcs[~i].slice().reverse();
      pts.push(...(pts.length ? a.slice(1) : a));
    }
    // A ring that crosses the antimeridian would draw a line across the
    // whole map: lift the pen where longitude jumps by more than 180 degrees.
    let d = '';
    let prev = null;
    for (const p of pts) {
      const [x, y] = project(p).map((v) => v.toFixed(1));
      d += `${prev === null || Math.abs(p[0] - prev) > 180 ? 'M' : 'L'}${x},${y}`;
      prev = p[0];
    }
    return `${d}Z`;
  };
  return topo.objects.countries.geometries.map((g) => {
    const polys = g.type === 'Polygon' ? [g.arcs] : g.type === 'MultiPolygon' ? g.arcs : [];
    return { name: g.properties && g.properties.name, d: polys.map((p) => p.map(ring).join('')).join('') };
  });
}

async function drawLand() {
  if (state.world) return;
  const topo = await (await fetch('/world.json')).json();
  state.world = worldPaths(topo);
  $('#map-land').replaceChildren(...state.world.map((c) => el('svg:path', { d: c.d, class: 'land' }, el('svg:title', { text: c.name || '' }))));
}

function pointRadius(packets, max) {
  return 1.5 + 8 * Math.sqrt(packets / (max || 1));
}

function drawPoints(points, upTo) {
  const max = points.reduce((m, p) => Math.max(m, p.packets), 0);
  const g = $('#map-points');
  g.replaceChildren();
  for (const p of points) {
    if (upTo !== undefined && p.first_ts > upTo) continue;
    const [x, y] = project([p.lon, p.lat]);
    g.append(el('svg:circle', {
      cx: x.toFixed(1), cy: y.toFixed(1), r: pointRadius(p.packets, max).toFixed(1),
      fill: COLOUR[p.class] || '#999', class: 'pt', 'data-class': p.class, 'data-scanner': p.scanner,
    }, el('svg:title', { text: `${p.country} ${LABEL[p.class] || p.class} (${(p.scanner || "unknown").replace("_", " ")}): ${fmt(p.packets)} packets, first ${p.first_ts}` })));
  }
}

function legend(target, used) {
  $(target).replaceChildren(...CLASSES.filter(([k]) => used.has(k)).map(([k, l, c]) => {
    const s = el('span', { class: 'swatch' });
    s.style.background = c;
    return el('span', { class: 'item' }, s, l);
  }));
}

async function loadMap() {
  await drawLand();
  const form = $('#map-form');
  const m = await api(`/api/map${query(form, ['port', 'since', 'until'])}`);
  state.map = m;
  stopReplay();
  drawPoints(m.points);
  legend('#map-legend', new Set(m.points.map((p) => p.class)));
  $('#map-status').textContent = m.geo
    ? `${fmt(m.points.length)} located sources of ${fmt(m.sources)} (${fmt(m.unlocated)} not in the location database)`
    : 'No location database is configured ([enrich] geo in the config): sources cannot be placed on the map.';
}

function stopReplay() {
  if (state.replay) cancelAnimationFrame(state.replay);
  state.replay = null;
}

// Plays arrivals over ten seconds in first-seen order, as NICTER's Atlas does.
function replay() {
  if (!state.map) return;
  stopReplay();
  const pts = state.map.points.slice().sort((a, b) => (a.first_ts < b.first_ts ? -1 : 1));
  if (!pts.length) return;
  const t0 = Date.parse(pts[0].first_ts);
  const t1 = Date.parse(pts[pts.length - 1].first_ts);
  const started = performance.now();
  const step = (now) => {
    const f = Math.min(1, (now - started) / 10000);
    const upTo = new Date(t0 + (t1 - t0) * f).toISOString();
    drawPoints(pts, f >= 1 ? undefined : upTo);
    $('#map-status').textContent = `Replay: ${upTo}`;
    state.replay = f < 1 ? requestAnimationFrame(step) : null;
  };
  state.replay = requestAnimationFrame(step);
}

// ---- time series -------------------------------------------------------------

async function loadSeries() {
  const form = $('#series-form');
  state.series = await api(`/api/series${query(form, ['ports', 'since', 'until'])}`);
  state.zoom = null;
  drawSeries();
}

function drawSeries() {
  const s = state.series;
  if (!s) return;
  const measure = $('#series-form').elements.measure.value;
  const chart = $('#chart');
  chart.replaceChildren();
  const [lo, hi] = state.zoom || [0, Math.max(0, s.buckets - 1)];
  // Bucket i starts at first + i * bucket_seconds.
  const at = (i) => new Date(Date.parse(s.first) + i * s.bucket_seconds * 1000).toISOString().replace('.000Z', 'Z');
  $('#series-reset').hidden = !state.zoom;
  const L = 60;
  const R = 940;
  const T = 10;
  const B = 320;
  let max = 1;
  for (const line of s.series) for (let i = lo; i <= hi; i++) max = Math.max(max, line[measure][i] || 0);
  const x = (i) => L + ((i - lo) / Math.max(1, hi - lo)) * (R - L);
  const y = (v) => B - (v / max) * (B - T);
  chart.append(el('svg:line', { x1: L, y1: B, x2: R, y2: B, class: 'axis' }), el('svg:line', { x1: L, y1: T, x2: L, y2: B, class: 'axis' }));
  for (const f of [0, 0.5, 1]) {
    chart.append(el('svg:text', { x: L - 6, y: y(max * f) + 4, class: 'tick', 'text-anchor': 'end', text: fmt(Math.round(max * f)) }));
  }
  if (s.buckets) {
    chart.append(el('svg:text', { x: L, y: B + 20, class: 'tick', text: at(lo) }));
    chart.append(el('svg:text', { x: R, y: B + 20, class: 'tick', 'text-anchor': 'end', text: at(hi) }));
  }
  s.series.forEach((line, k) => {
    const colour = SERIES_COLOURS[k % SERIES_COLOURS.length];
    const pts = [];
    for (let i = lo; i <= hi; i++) pts.push(`${x(i).toFixed(1)},${y(line[measure][i] || 0).toFixed(1)}`);
    chart.append(el('svg:polyline', { points: pts.join(' '), stroke: colour, class: 'series-line', 'data-port': line.port },
      el('svg:title', { text: line.port })));
    // Detection episodes starting in the range: a triangle on the axis.
    for (const d of (line.detections || []).filter((d) => d.index >= lo && d.index <= hi)) {
      const cx = x(d.index);
      chart.append(el('svg:polygon', { points: `${cx - 6},${B} ${cx + 6},${B} ${cx},${B - 12}`, fill: colour, class: `detection det-${d.severity}`, 'data-port': line.port, 'data-key': d.key },
        el('svg:title', { text: `${d.kind} (${d.severity}) on ${line.port} from ${d.first_bucket} to ${d.last_bucket}` })));
    }
    if (measure === 'packets') {
      for (const i of line.surges.filter((i) => i >= lo && i <= hi)) {
        chart.append(el('svg:circle', { cx: x(i), cy: y(line.packets[i]), r: 5, stroke: colour, class: 'surge', 'data-port': line.port },
          el('svg:title', { text: `surge on ${line.port} at ${at(i)}: ${fmt(line.packets[i])} packets` })));
      }
    }
  });
  // Buckets in which a live capture dropped frames: a red mark along the
  // top (their figures are a lower bound).
  if (s.dropped) {
    for (let i = lo; i <= hi; i++) {
      if (!s.dropped[i]) continue;
      chart.append(el('svg:rect', { x: x(i) - 2, y: T, width: 4, height: 8, class: 'dropped', 'data-bucket': i },
        el('svg:title', { text: `${at(i)}: ${fmt(s.dropped[i])} frames dropped by the capture (a lower bound)` })));
    }
  }
  $('#series-legend').replaceChildren(...s.series.map((line, k) => {
    const sw = el('span', { class: 'swatch' });
    sw.style.background = SERIES_COLOURS[k % SERIES_COLOURS.length];
    return el('span', { class: 'item' }, sw, line.port);
  }));
  // Drag to zoom: map the dragged pixels back to bucket indices.
  const toIndex = (ev) => {
    const box = chart.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * 960;
    return Math.round(lo + ((px - L) / (R - L)) * (hi - lo));
  };
  chart.onmousedown = (ev) => { state.dragFrom = toIndex(ev); };
  chart.onmouseup = (ev) => {
    if (state.dragFrom === undefined) return;
    const a = Math.max(lo, Math.min(state.dragFrom, toIndex(ev)));
    const b = Math.min(hi, Math.max(state.dragFrom, toIndex(ev)));
    state.dragFrom = undefined;
    if (b - a >= 1) { state.zoom = [a, b]; drawSeries(); }
  };
}

// ---- survey ----------------------------------------------------------------

function needLogin(e) {
  if (e.status === 401) {
    location.hash = '#login';
    showError('Log in to see this page.');
    return true;
  }
  return false;
}

const PAGE = 100;

// Shows "rows a..b of n" and enables the pager's buttons.
function pager(name, offset, shown, total) {
  $(`#${name}-prev`).disabled = offset === 0;
  $(`#${name}-next`).disabled = offset + shown >= total;
  return shown < total ? ` (${fmt(offset + 1)}..${fmt(offset + shown)} shown)` : '';
}

function withPage(q, offset) {
  const sep = q ? '&' : '?';
  return `${q}${sep}limit=${PAGE}&offset=${offset}`;
}

async function loadSurvey() {
  const form = $('#survey-form');
  const offset = state.findingsOffset || 0;
  const r = await api(`/api/findings${withPage(query(form, ['kind', 'severity', 'criticality', 'vendor', 'isp']), offset)}`);
  $('#survey-count').textContent = `${fmt(r.total)} findings${pager('findings', offset, r.findings.length, r.total)}`;
  fillTable('#findings', r.findings.map((f) => el('tr', { class: `finding sev-${f.severity}`, 'data-ip': f.ip, onclick: () => openDevice(f.ip) },
    el('td', { text: f.severity }), el('td', { text: f.ip }), el('td', { text: f.port }), el('td', { text: f.kind }),
    el('td', { text: f.device ? `${f.device.vendor || ''} ${f.device.model || ''}`.trim() : '' }),
    el('td', { text: f.isp || '' }), el('td', { text: f.last_seen }))));
  $('#device').hidden = true;
}

async function openDevice(ip) {
  try {
    const d = await api(`/api/devices/${encodeURIComponent(ip)}`);
    const box = $('#device');
    box.replaceChildren(
      el('h2', { text: `Device ${d.ip}${d.isp ? ` (${d.isp})` : ''}` }),
      el('h3', { text: 'Services' }),
      el('ul', {}, ...d.services.map((s) => el('li', { text: `${s.port}/${s.proto} ${s.status} ${s.service || ''} ${s.banner ? `: ${s.banner.slice(0, 120)}` : ''}` }))),
      el('h3', { text: 'Findings and evidence' }),
      el('ul', { class: 'evidence' }, ...d.findings.map((f) => el('li', {},
        el('strong', { text: `${f.severity} ${f.kind} on ${f.port}` }), el('pre', { text: JSON.stringify(f.evidence, null, 1) })))),
      el('h3', { text: 'Alerts' }),
      el('ul', {}, ...d.alerts.map((a) => el('li', { text: `${a.problem}: ${a.status}` }))),
    );
    box.hidden = false;
    box.scrollIntoView();
  } catch (e) {
    showError(e.message);
  }
}

// ---- alerts ----------------------------------------------------------------

async function setStatus(a, status) {
  try {
    await api('/api/alerts/status', { method: 'POST', body: { ip: a.ip, problem: a.problem, port: a.port, status, note: '' } });
    await loadAlerts();
  } catch (e) {
    showError(e.message);
  }
}

async function loadAlerts() {
  const form = $('#alerts-form');
  const offset = state.alertsOffset || 0;
  const r = await api(`/api/alerts${withPage(query(form, ['status']), offset)}`);
  $('#alerts-count').textContent = `${fmt(r.total)} alerts${pager('alerts', offset, r.alerts.length, r.total)}`;
  const rows = [];
  for (const a of r.alerts) {
    const actions = el('td', {});
    if (a.status !== 'acknowledged' && a.status !== 'fixed') {
      actions.append(el('button', { class: 'ack', onclick: () => setStatus(a, 'acknowledged'), text: 'Acknowledge' }));
    }
    if (state.me && state.me.role === 'operator' && a.status !== 'fixed') {
      actions.append(el('button', { class: 'fix', onclick: () => setStatus(a, 'fixed'), text: 'Mark fixed' }));
    }
    rows.push(el('tr', { class: 'alert', 'data-ip': a.ip, 'data-port': String(a.port ?? ''), 'data-problem': a.problem, 'data-status': a.status },
      el('td', { text: a.port ? `${a.ip}:${a.port}` : a.ip }), el('td', { text: a.problem }), el('td', { text: a.severity }), el('td', { text: a.isp || '' }),
      el('td', { class: 'status', text: a.status }), el('td', { text: a.last_seen }), actions));
    rows.push(el('tr', { class: 'history' }, el('td', { colspan: 7 },
      el('details', {}, el('summary', { text: `History (${a.history.length})` }),
        el('ul', {}, ...a.history.map((h) => el('li', { text: `${h.ts} ${h.status}: ${h.note}` })))))));
  }
  fillTable('#alerts', rows);
}

// ---- honeypot --------------------------------------------------------------

async function loadHoneypot() {
  const r = await api(`/api/honeypot${query($('#hp-form'), ['since', 'until'])}`);
  $('#hp-sessions').textContent = fmt(r.sessions);
  $('#hp-logins').textContent = fmt(r.logins);
  $('#hp-sources').textContent = fmt(r.sources);
  const lim = $('#hp-limited');
  lim.hidden = !r.limited;
  lim.textContent = r.limited ? 'The period holds more sessions than were read: narrow it to see all of them.' : '';
  const chart = $('#hp-chart');
  const max = Math.max(1, ...r.series.map((b) => b.sessions));
  // At least a day's width of slots, so a few hours do not fill the chart.
  const w = 1000 / Math.max(24, r.series.length);
  chart.replaceChildren(...r.series.map((b, i) => el('svg:rect', {
    x: i * w, width: Math.max(1, w - 1), y: 160 - (b.sessions / max) * 160, height: (b.sessions / max) * 160,
    fill: '#ff3b30', 'data-start': b.start,
  }, el('svg:title', { text: `${b.start}: ${b.sessions} sessions, ${b.logins} logins` }))));
  fillTable('#hp-credentials', r.credentials.map((c) => el('tr', {},
    el('td', { text: c.username }), el('td', { text: c.password }), el('td', { text: fmt(c.attempts) }), el('td', { text: fmt(c.successes) }))));
  fillTable('#hp-commands', r.commands.map((c) => el('tr', {}, el('td', {}, el('code', { text: c.input })), el('td', { text: fmt(c.count) }))));
  fillTable('#hp-downloads', r.downloads.map((d) => el('tr', {},
    el('td', {}, el('code', { text: d.url })), el('td', { text: d.kind }), el('td', { text: d.host || '' }),
    el('td', { text: fmt(d.count) }), el('td', { text: d.first_seen }), el('td', { text: d.last_seen }))));
  fillTable('#hp-links', r.links.map((l) => el('tr', {},
    el('td', { text: l.scanner_ip }), el('td', { text: l.loader_ip }), el('td', { text: l.pair || '' }), el('td', { text: l.at }))));
}

// ---- detections ------------------------------------------------------------

async function loadDetections() {
  const r = await api(`/api/detections${query($('#det-form'), ['since', 'until'])}`);
  $('#det-count').textContent = `${fmt(r.detections.length)} episodes`;
  const share = (x) => `${Math.round((x || 0) * 100)}%`;
  fillTable('#detections', r.detections.map((d) => {
    const l = d.latest || {};
    const classes = l.classes || {};
    const detectors = (l.detectors || []).map((h) => `${h.detector} (${h.metric}) ${fmt(h.observed)} vs ${h.baseline.expected.toFixed(1)}`).join('; ');
    return el('tr', { class: `det-${d.severity}`, 'data-key': d.key },
      el('td', { text: d.first_bucket }), el('td', { text: d.last_bucket }), el('td', { text: d.kind }),
      el('td', { text: d.severity }), el('td', { text: d.ports ? `${d.ports}/${d.proto}` : '(darknet)' }),
      el('td', { text: fmt(l.sources || 0) }), el('td', { text: fmt(l.new_sources || 0) }),
      el('td', { text: share(classes.mirai_like) }), el('td', { text: share(classes.research_scanner) }),
      el('td', { text: d.peak_score.toFixed(1) }), el('td', { text: detectors }));
  }));
}

// ---- routing ---------------------------------------------------------------

const PAGES = { overview: loadOverview, map: loadMap, series: loadSeries, survey: loadSurvey, alerts: loadAlerts, honeypot: loadHoneypot, detections: loadDetections, login: async () => {} };

// Each navigation's number: a page that is still loading when the visitor
// moves on must not mark the next page ready (or draw over it) when it ends.
let navigation = 0;

// Pages drawn from telescope data follow it live: every few seconds the
// store's version is asked for (a cheap call), and when a capture was
// analysed or a sensor committed a bucket, the page's data is loaded again.
const LIVE_PAGES = new Set(['overview', 'map', 'series']);
const LIVE_EVERY_MS = 5000;
let seenVersion = null;

async function followLive() {
  const page = document.body.dataset.page;
  if (document.hidden || !LIVE_PAGES.has(page) || document.body.dataset.ready !== 'true') return;
  let v;
  try { v = (await api('/api/version')).version; } catch (e) { return; }
  if (seenVersion !== null && v !== seenVersion && document.body.dataset.page === page) {
    const mine = navigation;
    document.body.dataset.ready = 'false';
    try { await PAGES[page](); } catch (e) { if (mine === navigation && !needLogin(e)) showError(e.message); }
    if (mine === navigation) {
      document.body.dataset.ready = 'true';
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    }
  }
  seenVersion = v;
}

async function route() {
  const mine = ++navigation;
  const page = (location.hash || '#overview').slice(1);
  const name = PAGES[page] ? page : 'overview';
  for (const s of document.querySelectorAll('.page')) s.hidden = s.id !== `page-${name}`;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === name);
  showError('');
  document.body.dataset.page = name;
  document.body.dataset.ready = 'false';
  try {
    // The version first: data added while the page loads is then caught by
    // the next look.
    if (LIVE_PAGES.has(name)) {
      try { seenVersion = (await api('/api/version')).version; } catch (e) { seenVersion = null; }
    }
    await PAGES[name]();
  } catch (e) {
    if (mine === navigation && !needLogin(e)) showError(e.message);
  }
  if (mine === navigation) document.body.dataset.ready = 'true';
}

function onSubmit(selector, fn) {
  $(selector).addEventListener('submit', async (ev) => {
    ev.preventDefault();
    document.body.dataset.ready = 'false';
    showError('');
    try { await fn(); } catch (e) { if (!needLogin(e)) showError(e.message); }
    document.body.dataset.ready = 'true';
  });
}

document.addEventListener('DOMContentLoaded', async () => {
  onSubmit('#ov-form', loadOverview);
  onSubmit('#map-form', loadMap);
  onSubmit('#series-form', loadSeries);
  onSubmit('#survey-form', () => { state.findingsOffset = 0; return loadSurvey(); });
  onSubmit('#alerts-form', () => { state.alertsOffset = 0; return loadAlerts(); });
  onSubmit('#hp-form', loadHoneypot);
  onSubmit('#det-form', loadDetections);
  for (const [name, load] of [['findings', loadSurvey], ['alerts', loadAlerts]]) {
    const key = `${name}Offset`;
    $(`#${name}-prev`).addEventListener('click', async () => { state[key] = Math.max(0, (state[key] || 0) - PAGE); await load(); });
    $(`#${name}-next`).addEventListener('click', async () => { state[key] = (state[key] || 0) + PAGE; await load(); });
  }
  $('#series-form').elements.measure.addEventListener('change', drawSeries);
  $('#series-reset').addEventListener('click', () => { state.zoom = null; drawSeries(); });
  $('#map-replay').addEventListener('click', replay);
  $('#login-form').addEventListener('submit', login);
  $('#logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  await refreshMe();
  await route();
  setInterval(followLive, LIVE_EVERY_MS);
});
