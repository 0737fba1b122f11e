// What the paced browser scripts share (live.mjs, fallback.mjs): Debian's
// Chromium in a fresh profile, kept off the network, and the dashboard login;
// and a way to wait for the Rust test between steps.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

// A Chromium context at 1,280 × 900, Japanese, Tokyo time; `close()` ends
// it and removes its profile.
export async function launch() {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  const profile = mkdtempSync(join(tmpdir(), "mykey-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
    ],
    viewport: { width: 1280, height: 900 },
    locale: "ja-JP",
    timezoneId: "Asia/Tokyo",
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

// Logs in on `page` and lands on the overview.
export async function login(page, url, operator, password) {
  page.setDefaultTimeout(15000);
  await page.goto(url);
  await page.fill("#name", operator);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL((u) => u.pathname === "/"), page.click("#login-button")]);
}

// Prints one JSON line for step `name`, then waits for a line on stdin.
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
export async function step(name, data) {
  console.log(JSON.stringify({ step: name, ...data }));
  const next = await lines.next();
  if (next.done) throw new Error(`stdin closed after step ${name}`);
}

// Waits until the node table's row of `id` has `health`.
export function rowHealth(page, id, health, timeout) {
  return page.waitForFunction(
    ([id, health]) => document.querySelector(`#node-table tr[data-node="${id}"]`)?.dataset.health === health,
    [id, health],
    { timeout },
  );
}
