// Drives the dashboard in headless Chromium as a person would, checking
// what is drawn against what the API says (the expectations come from the
// Rust test). Exits non-zero with a message on the first failure.
// usage: node browser.mjs BASE_URL EXPECTATIONS_JSON SCREENSHOT_DIR
import { chromium } from 'playwright-core';

const [, , base, expectJson, shots] = process.argv;
const E = JSON.parse(expectJson);

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const errors = [];
async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A 401 before logging in is expected; anything else is not.
    if (m.type() === 'error' && !m.text().includes('401')) errors.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(20000);
  return page;
}
// Ready on the page named, when given: a goto that only changes the hash
// fires the app's router later, so the previous page's ready flag must not
// count (the ISP's alerts were once read before they loaded).
const ready = (page, name) => page.waitForSelector(
  name ? `body[data-page="${name}"][data-ready="true"]` : 'body[data-ready="true"]');
async function submit(page, form) {
  await page.evaluate(() => { document.body.dataset.ready = 'false'; });
  await page.click(`${form} button:not([type="button"])`);
  await ready(page);
}
const result = {};

try {
  const page = await newPage();

  // Overview.
  await page.goto(`${base}/#overview`);
  await ready(page, 'overview');
  check(await page.textContent('#ov-packets') === E.packets_text, `packets ${await page.textContent('#ov-packets')} != ${E.packets_text}`);
  check(await page.locator('#ov-classes tr.class-row').count() === 11, 'eleven class rows');
  check(await page.locator('#ov-class-bar rect.class-seg').count() === E.nonzero_classes, 'one bar segment per class seen');
  check(await page.locator('#ov-ports tbody tr').count() === E.top_ports, 'top ports');
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

  // Map: points as the API gives them, then a port filter, then the replay.
  await page.goto(`${base}/#map`);
  await ready(page, 'map');
  check(await page.locator('#map-land path.land').count() > 170, 'country shapes drawn');
  const all = await page.locator('#map-points circle.pt').count();
  check(all === E.map_points, `map points ${all} != ${E.map_points}`);
  await page.fill('#map-form input[name="port"]', '23');
  await submit(page, '#map-form');
  const on23 = await page.locator('#map-points circle.pt').count();
  check(on23 === E.map_points_23, `port-23 points ${on23} != ${E.map_points_23}`);
  const colours = await page.$$eval('#map-points circle.pt', (cs) => [...new Set(cs.map((c) => c.getAttribute('fill')))]);
  check(colours.length >= 1 && colours.every((c) => /^#[0-9a-f]{6}$/.test(c)), `class colours ${colours}`);
  await page.click('#map-replay');
  await page.waitForTimeout(2500);
  const during = await page.locator('#map-points circle.pt').count();
  check(during < on23, `the replay starts empty and grows (${during} of ${on23} after 2.5 s)`);
  await page.waitForFunction((n) => document.querySelectorAll('#map-points circle.pt').length === n, on23, { timeout: 15000 });
  await page.screenshot({ path: `${shots}/map.png` });

  // Time series: one line per port, zoom by dragging.
  await page.goto(`${base}/#series`);
  await ready(page, 'series');
  const ports = await page.$$eval('#chart polyline.series-line', (ls) => ls.map((l) => l.dataset.port));
  check(JSON.stringify(ports) === JSON.stringify(['tcp/23', 'tcp/2323']), `series ${ports}`);
  const points = async () => (await page.getAttribute('#chart polyline.series-line', 'points')).trim().split(' ').length;
  check(await points() === E.buckets, `a point per bucket (${await points()} != ${E.buckets})`);
  await page.fill('#series-form input[name="ports"]', '23,2323,22');
  await submit(page, '#series-form');
  check(await page.locator('#chart polyline.series-line').count() === 3, 'three ports overlaid');
  const box = await page.locator('#chart').boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5);
  await page.mouse.up();
  check(await page.isVisible('#series-reset'), 'zoomed: reset button shown');
  const zoomed = await points();
  check(zoomed < E.buckets && zoomed > 2, `zoomed to ${zoomed} of ${E.buckets} buckets`);
  await page.screenshot({ path: `${shots}/series.png` });
  await page.click('#series-reset');
  check(await points() === E.buckets, 'zoom reset');

  // Survey needs a login: the page sends us to it.
  await page.goto(`${base}/#survey`);
  await page.waitForFunction(() => location.hash === '#login');
  await page.fill('#login-name', 'op');
  await page.fill('#login-password', 'password-op');
  await page.click('#login-submit');
  await page.waitForFunction(() => location.hash === '#survey');
  await ready(page, 'survey');
  await page.waitForSelector('tr.finding');
  check(await page.locator('tr.finding').count() === Math.min(100, E.findings), 'finding rows');
  await page.selectOption('#survey-form select[name="severity"]', 'critical');
  await submit(page, '#survey-form');
  check(await page.locator('tr.finding').count() === Math.min(100, E.critical), `critical rows ${await page.locator('tr.finding').count()} != ${E.critical}`);
  const ip = await page.getAttribute('tr.finding', 'data-ip');
  await page.click('tr.finding');
  await page.waitForSelector('#device:not([hidden]) h2');
  check((await page.textContent('#device h2')).includes(ip), 'device detail of the clicked row');
  check(await page.locator('#device .evidence li').count() > 0, 'evidence shown');
  await page.screenshot({ path: `${shots}/survey.png`, fullPage: true });

  // Alerts: acknowledge one.
  await page.goto(`${base}/#alerts`);
  await ready(page, 'alerts');
  check(await page.locator('tr.alert').count() === Math.min(100, E.alerts), 'alert rows');
  const row = page.locator('tr.alert', { has: page.locator('button.ack') }).first();
  const acked = { ip: await row.getAttribute('data-ip'), port: await row.getAttribute('data-port'), problem: await row.getAttribute('data-problem') };
  await row.locator('button.ack').click();
  await page.waitForSelector(`tr.alert[data-ip="${acked.ip}"][data-port="${acked.port}"][data-problem="${acked.problem}"][data-status="acknowledged"]`);
  result.acked = acked;
  const severities = await page.$$eval('tr.alert td:nth-child(3)', (ts) => ts.map((t) => t.textContent));
  const rank = (x) => ['critical', 'high', 'medium', 'low', 'info'].indexOf(x);
  check(severities.every((x, i) => i === 0 || rank(severities[i - 1]) <= rank(x)), 'alerts worst first');
  await page.screenshot({ path: `${shots}/alerts.png`, fullPage: true });
  if (E.alerts > 100) {
    check(await page.isDisabled('#alerts-prev'), 'no previous page on the first');
    await page.click('#alerts-next');
    await page.waitForFunction((n) => document.querySelectorAll('tr.alert').length === n
      && !document.querySelector('#alerts-prev').disabled, Math.min(100, E.alerts - 100));
  }
  // Honeypot: the figures and rows the API gives; text from attackers is
  // shown as text (a password with markup makes no element).
  await page.goto(`${base}/#honeypot`);
  await ready(page, 'honeypot');
  check(await page.textContent('#hp-sessions') === String(E.hp.sessions), `honeypot sessions ${await page.textContent('#hp-sessions')}`);
  check(await page.locator('#hp-downloads tbody tr').count() === E.hp.downloads.length, 'honeypot URL rows');
  check(await page.locator('#hp-links tbody tr').count() === E.hp.links.length, 'scanner/loader rows');
  check(await page.locator('#hp-chart rect').count() === E.hp.series.length, 'one bar per hour');
  check(await page.locator('#hp-credentials b').count() === 0, 'no markup from a password');
  check((await page.textContent('#hp-credentials')).includes('<b>x</b>'), 'the password shown as typed');
  await page.screenshot({ path: `${shots}/honeypot.png`, fullPage: true });
  // Detections: one row per episode the API gives, with its kind and ports.
  await page.goto(`${base}/#detections`);
  await ready(page, 'detections');
  check(await page.locator('#detections tbody tr').count() === E.det.detections.length, 'one row per detection episode');
  check((await page.textContent('#detections tbody')).includes('infection_campaign'), 'the episode\'s kind');
  check((await page.textContent('#detections tbody')).includes('23,2323/tcp'), 'the episode\'s ports');
  await page.screenshot({ path: `${shots}/detections.png`, fullPage: true });

  await page.click('#logout');
  await page.waitForFunction(() => location.hash === '#overview');

  // An ISP account sees only its own addresses.
  const isp = await newPage();
  await isp.goto(`${base}/#login`);
  await isp.fill('#login-name', 'ispa');
  await isp.fill('#login-password', 'password-ispa');
  await isp.click('#login-submit');
  await isp.waitForFunction(() => location.hash === '#survey');
  await isp.goto(`${base}/#alerts`);
  await ready(isp, 'alerts');
  const ispIps = await isp.$$eval('tr.alert', (rs) => rs.map((r) => r.dataset.ip));
  const said = await isp.evaluate(() => `${location.hash} error=${JSON.stringify(document.querySelector('#error').textContent)}`);
  check(ispIps.length === E.isp_a_alerts, `ISP A rows ${ispIps.length} != ${E.isp_a_alerts} (page ${said})`);
  check(ispIps.every((x) => E.isp_a_ips.includes(x)), `ISP A sees only its addresses: ${ispIps}`);
  await isp.screenshot({ path: `${shots}/isp-alerts.png`, fullPage: true });
  // ISP A sees the sessions of its own addresses only (not ISP B's loader).
  await isp.goto(`${base}/#honeypot`);
  await ready(isp, 'honeypot');
  check(await isp.textContent('#hp-sessions') === '2', `ISP A honeypot sessions ${await isp.textContent('#hp-sessions')}`);
  check(await isp.locator('#hp-links tbody tr').count() === 0, 'ISP A sees no link to ISP B\'s loader');

  // The owners' page.
  await page.goto(`${base}/check?lang=ja`);
  check((await page.textContent('#your-ip')) === '127.0.0.1', 'the page names the visitor\'s address');
  check((await page.getAttribute('html', 'lang')) === 'ja', 'Japanese');
  await page.screenshot({ path: `${shots}/check.png` });

  // Live data: the overview stays open while a capture is added to the
  // store (as a sensor's commit would be); it must show the new total by
  // itself, within a few polls.
  await page.goto(`${base}/#overview`);
  await ready(page, 'overview');
  check(await page.textContent('#ov-packets') === E.packets_text, 'overview before the live data');
  const { execFileSync } = await import('node:child_process');
  execFileSync(E.live_ingest[0], E.live_ingest.slice(1), { stdio: 'ignore' });
  await page.waitForFunction((want) => document.querySelector('#ov-packets').textContent === want
    && document.body.dataset.ready === 'true', E.live_packets_text, { timeout: 30000 });
  check(Number(await page.evaluate(() => document.body.dataset.refreshed)) >= 1, 'refreshed by the poll, not a reload');
  await page.screenshot({ path: `${shots}/overview-live.png` });

  check(errors.length === 0, errors.join('; '));
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
