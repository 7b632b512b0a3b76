// Headless Chromium (Debian's) opens mqtt_page.html, whose MQTT.js connects to URL over
// WebSocket and subscribes to TOPIC. Prints "STATE subscribed 1" once subscribed (the test
// then publishes with mosquitto_pub), then "RECEIVED <topic> <payload>" and exits 0; exits 1
// with the page's state on any failure or after 90 s.
//
//   node browser_client.mjs ws://127.0.0.1:PORT/mqtt some/topic [--insecure]
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const [url, topic, ...flags] = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
const profile = mkdtempSync(path.join(tmpdir(), 'tcpms-chromium-'));
const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
              '--disable-background-networking', '--disable-component-update', '--disable-sync',
              '--disable-dev-shm-usage'];
// A test CA the browser does not know: wss:// needs this (the test checks the TLS itself).
if (flags.includes('--insecure')) args.push('--ignore-certificate-errors');

let context;
let code = 1;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args,
  });
  const page = await context.newPage();
  page.on('console', (m) => console.error('page: ' + m.text()));
  const q = new URLSearchParams({ url, topic });
  await page.goto(pathToFileURL(path.join(here, 'mqtt_page.html')).href + '?' + q.toString());
  await page.waitForFunction(() => !['connecting', 'connected'].includes(window.state), null,
                             { timeout: 90000 });
  const state = await page.evaluate(() => window.state);
  console.log('STATE ' + state);
  if (state.startsWith('subscribed')) {
    await page.waitForFunction(() => window.received !== null, null, { timeout: 30000 });
    console.log('RECEIVED ' + await page.evaluate(() => window.received));
    code = 0;
  }
} catch (e) {
  console.log('FAILED ' + e.message.split('\n')[0]);
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
