// The dashboard without its event stream, in Debian's Chromium, paced by
// tests/tests/dashboard_live.rs: one page whose stream the hub refuses (as
// many live views are open as it allows) and one page in a browser without
// EventSource both say they poll, and both show a change the test makes.
//
// Usage: node fallback.mjs URL OPERATOR PASSWORD|- NODE
// Steps: "polling" (both pages poll), then "updated" (NODE's row turned
// healthy on both, without a reload).
import { launch, login, rowHealth, step } from "./browser.mjs";

const [url, operator, passwordArg, node] = process.argv.slice(2);
const password = passwordArg === "-" ? process.env.DASHBOARD_PASSWORD : passwordArg;
if (!url || !operator || !password || !node) {
  console.error("usage: node fallback.mjs URL OPERATOR PASSWORD|- NODE");
  process.exit(2);
}
const { context, close } = await launch();
let failed = null;
try {
  const refused = context.pages()[0] || (await context.newPage());
  await login(refused, url, operator, password);
  const old = await context.newPage();
  await old.addInitScript(() => {
    delete window.EventSource;
  });
  old.setDefaultTimeout(15000);
  await old.goto(url);
  const state = (page) =>
    page.waitForSelector("#live-status[data-state=polling]", { timeout: 15000 }).then(() => page.textContent("#live-status"));
  const texts = [await state(refused), await state(old)];
  for (const page of [refused, old]) {
    await page.evaluate(() => {
      window.__notReloaded = true;
    });
  }
  await step("polling", { texts });
  await rowHealth(refused, node, "healthy", 20000);
  await rowHealth(old, node, "healthy", 20000);
  const kept = [];
  for (const page of [refused, old]) kept.push(await page.evaluate(() => window.__notReloaded === true));
  console.log(JSON.stringify({ step: "updated", not_reloaded: kept }));
} catch (e) {
  failed = String(e && e.stack ? e.stack : e);
  console.log(JSON.stringify({ step: "error", error: failed }));
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
