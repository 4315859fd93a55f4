// Drives Debian's Chromium (headless, no browser download) for tests/test_frontend.py.
//
// Reads one JSON request a line on stdin: {"url": ..., "fastForwardMs"?: N, "screenshot"?: path}.
// Opens the page in a fresh context, waits until it has put the outcome of its service calls in
// #out (data-state "ok" or "error"), and writes one JSON line back: {"state", "text"}.
// With fastForwardMs, the page's clock is fake: once the request to the backend is sent, the clock
// jumps that far ahead, so a 60 s timeout fires at once without a timed test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const userDataDir = mkdtempSync(join(tmpdir(), 'chromium-profile-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

const visit = async ({ url, fastForwardMs, screenshot }) => {
  const page = await context.newPage();
  const console_ = [];
  page.on('console', (message) => console_.push(`${message.type()}: ${message.text()}`));
  try {
    if (fastForwardMs) await page.clock.install();
    // Only when it is awaited below: a page that never calls the backend's /api/<id> must not leave it pending.
    const sent = fastForwardMs
      ? page.waitForRequest((request) => /\/api\/[a-z0-9-]+$/.test(request.url()), { timeout: 60_000 })
      : undefined;
    await page.goto(url);
    if (fastForwardMs) {
      await sent;
      await page.clock.runFor(fastForwardMs);
    }
    const out = page.locator('#out[data-state]');
    await out.waitFor({ timeout: 120_000 });
    if (screenshot) await page.screenshot({ path: screenshot });
    return {
      state: await out.getAttribute('data-state'),
      text: await out.textContent(),
      deltas: await out.getAttribute('data-deltas'),
      streamed: await out.getAttribute('data-streamed'),
      console: console_,
    };
  } catch (error) {
    return { state: 'driver-error', text: String(error), console: console_ };
  } finally {
    await page.close();
  }
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  process.stdout.write(`${JSON.stringify(await visit(JSON.parse(line)))}\n`);
}
await context.close();
rmSync(userDataDir, { recursive: true, force: true });
