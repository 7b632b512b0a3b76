// Clicks through the admin dashboard in headless Chromium (the Debian package, driven by
// playwright-core; no browser is downloaded) as an operator would, and prints what it saw as
// one JSON object for test_admin_dashboard.py to check:
//
//   node dashboard_walk.mjs URL KICK_ID WATCH_FILTER PUBLISH_TOPIC PAYLOAD [SCREENSHOT_DIR]
//
// 1. waits for the page to have polled the stats twice, and measures how much of the window
//    the layout fills (no empty half page);
// 2. searches the client table for KICK_ID, opens its details, kicks it (two clicks);
// 3. watches WATCH_FILTER in the topic viewer, publishes PAYLOAD to PUBLISH_TOPIC with the form,
//    and waits for the message to arrive in the viewer;
// 4. saves screenshots (dashboard.png on arrival, dashboard-mqtt.png at the end) when a
//    directory is given.
import { chromium } from './node_modules/playwright-core/index.mjs';

const [url, kickId, watchFilter, publishTopic, payload, shots] = process.argv.slice(2);
const out = {};
const browser = await chromium.launch({
  executablePath: process.env.TCPMS_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-dev-shm-usage',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', e => errors.push(String(e)));
  const external = [];
  page.on('request', r => { if (!r.url().startsWith(new URL(url).origin)) external.push(r.url()); });
  await page.goto(url);
  // TCPMS_DASHBOARD_WARMUP_S: let the charts fill with history first (for the docs' screenshots).
  const warmup = Number(process.env.TCPMS_DASHBOARD_WARMUP_S || 0);
  await page.waitForFunction(n => Number(document.body.dataset.samples) >= n, 3 + warmup,
                             { timeout: 20000 + warmup * 1500, polling: 500 });
  await page.waitForSelector('tr.client', { timeout: 20000 });
  out.protocol = await page.textContent('#protocol');
  out.state = await page.textContent('#state');
  // Layout: the panels reach the bottom of the window and both columns are used.
  out.layout = await page.evaluate(() => {
    const main = document.querySelector('main').getBoundingClientRect();
    const charts = document.querySelector('.charts').getBoundingClientRect();
    const side = document.querySelector('.side').getBoundingClientRect();
    return { viewport_h: innerHeight, viewport_w: innerWidth, main_bottom: main.bottom,
             charts_w: charts.width, side_w: side.width, charts_bottom: charts.bottom, side_bottom: side.bottom,
             scroll_h: document.documentElement.scrollHeight };
  });
  out.tiles = await page.evaluate(() => Object.fromEntries(
      [...document.querySelectorAll('.tile')].map(t => [t.querySelector('.label').textContent,
                                                        t.querySelector('.value').textContent])));
  if (shots) await page.screenshot({ path: `${shots}/dashboard.png` });

  // Find the client, look at it, kick it.
  await page.fill('#search', kickId);
  const row = page.locator(`tr.client[data-id="${kickId}"]`);
  await row.waitFor({ timeout: 10000 });
  await page.waitForFunction(() => document.querySelectorAll('tr.client').length === 1, null, { timeout: 10000 });
  await row.click();
  await page.waitForSelector('#details dl', { timeout: 10000 });
  out.details = await page.textContent('#details');
  const kick = row.locator('button[data-kick]');
  await kick.click();                 // arms
  out.kick_armed = await kick.textContent();
  await kick.click();                 // kicks
  await page.waitForFunction(id => {
    const r = document.querySelector(`tr.client[data-id="${id}"]`);
    return !r || r.querySelector('button[data-kick]') === null || r.querySelector('button[data-kick]').textContent === 'kicked';
  }, kickId, { timeout: 10000 });
  out.kicked = true;
  await page.fill('#search', '');

  // Watch a filter, publish with the form, see the message arrive.
  await page.fill('#watch input[name=filter]', watchFilter);
  await page.click('#watch-button');
  await page.waitForFunction(() => document.body.dataset.tap !== undefined, null, { timeout: 10000 });
  await page.fill('#publish input[name=topic]', publishTopic);
  await page.fill('#publish input[name=payload]', payload);
  await page.selectOption('#publish select[name=qos]', '1');
  await page.click('#publish button[type=submit]');
  await page.waitForFunction(() => /receiver/.test(document.querySelector('#publish-result').textContent),
                             null, { timeout: 10000 });
  out.publish_note = await page.textContent('#publish-result');
  const msg = page.locator(`#messages .msg[data-topic="${publishTopic}"]`);
  await msg.first().waitFor({ timeout: 10000 });
  out.viewer_message = await msg.first().textContent();
  out.viewer_state = await page.textContent('#viewer-state');
  // A second look at the table so the end screenshot shows it populated.
  await page.waitForTimeout(2500);
  if (shots) await page.screenshot({ path: `${shots}/dashboard-mqtt.png` });
  out.page_errors = errors;
  out.external_requests = external;
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
