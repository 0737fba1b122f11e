// Drives Debian's Chromium through a running hub's dashboard and prints what
// the DOM shows as one JSON line; tests/tests/dashboard.rs asserts on it.
//
// Usage: node check.mjs URL OPERATOR PASSWORD ARTIFACT_DIR [NODE_PAGE_URL]
// (the password comes from the environment variable DASHBOARD_PASSWORD when
// PASSWORD is "-", so it stays out of process listings).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, operator, passwordArg, artifacts, nodePage] = process.argv.slice(2);
const password = passwordArg === "-" ? process.env.DASHBOARD_PASSWORD : passwordArg;
if (!url || !operator || !password || !artifacts) {
  console.error("usage: node check.mjs URL OPERATOR PASSWORD|- ARTIFACT_DIR");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "mykey-chromium-"));

// A persistent context with a fresh profile directory is how playwright takes
// --user-data-dir; the other flags keep Chromium off the (closed) network.
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
  viewport: { width: 1500, height: 900 },
  locale: "ja-JP",
  timezoneId: "Asia/Tokyo",
});
const out = { steps: [] };
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15000);

  // Not logged in: the dashboard sends us to the login page.
  await page.goto(url);
  out.login_url = new URL(page.url()).pathname;
  out.login_lang = await page.getAttribute("html", "lang");

  // A wrong password is refused with a message.
  await page.fill("#name", operator);
  await page.fill("#password", "wrong password!");
  await Promise.all([page.waitForLoadState(), page.click("#login-button")]);
  out.bad_login_error = (await page.textContent("#login-error"))?.trim() ?? null;

  await page.fill("#name", operator);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL((u) => u.pathname === "/"), page.click("#login-button")]);
  await page.waitForSelector("#node-table tbody tr");
  out.title = await page.title();
  out.lang = await page.getAttribute("html", "lang");
  out.nodes_heading = (await page.textContent("#nodes h2"))?.trim();

  const rows = () =>
    page.$$eval("#node-table tbody tr", (trs) =>
      trs.map((tr) => ({
        node: tr.dataset.node,
        health: tr.dataset.health,
        alerts: tr.dataset.alerts ? tr.dataset.alerts.split(" ") : [],
        municipality: tr.dataset.municipality,
        facility: tr.querySelector("td.facility")?.textContent.trim(),
        last_contact: tr.querySelector("td.last-contact")?.textContent.trim(),
        rejected: tr.querySelector("td.rejected")?.textContent.trim(),
      })),
    );
  out.rows = await rows();
  out.alerts = await page.$$eval("#alerts li", (lis) =>
    lis.map((li) => ({ kind: li.dataset.alert, node: li.dataset.node, text: li.textContent.trim() })),
  );
  out.settlement = await page.$$eval("#settlement tr[data-settlement]", (trs) =>
    Object.fromEntries(trs.map((tr) => [tr.dataset.municipality, tr.dataset.settlement])),
  );
  await page.screenshot({ path: join(artifacts, "dashboard-ja.png"), fullPage: true });

  // The live part follows the hub's event stream (tests/dashboard/live.mjs
  // watches it change, drop and come back).
  await page.waitForSelector("#live-status[data-state=live]", { timeout: 20000 });
  out.live_refreshed = true;

  // Filter by status: only alerting nodes.
  await page.selectOption("#filter-status", "alert");
  await Promise.all([page.waitForLoadState(), page.click("form.filters button[type=submit]")]);
  await page.waitForSelector("#node-table");
  out.rows_alert_filter = (await rows()).map((r) => r.node);

  // Filter by municipality (reset the status filter).
  await page.goto(new URL("/?municipality=131059", url).href);
  out.rows_municipality_filter = (await rows()).map((r) => r.node);

  // Sort by last contact, oldest first.
  await page.goto(new URL("/?sort=last_contact&dir=asc", url).href);
  out.rows_sorted_last_contact = (await rows()).map((r) => r.node);

  // English.
  await page.goto(new URL("/?lang=en", url).href);
  out.en_lang = await page.getAttribute("html", "lang");
  out.en_nodes_heading = (await page.textContent("#nodes h2"))?.trim();
  await page.screenshot({ path: join(artifacts, "dashboard-en.png"), fullPage: true });

  // The detail page of the first alerting node with rejections.
  const rejecting = out.rows.find((r) => r.alerts.includes("rejections"));
  if (rejecting) {
    await page.goto(new URL(`/nodes/${rejecting.node}?lang=ja`, url).href);
    out.detail_reasons = await page.$$eval("#rejections tr[data-reason]", (trs) =>
      trs.map((tr) => tr.dataset.reason),
    );
    out.detail_alerts = await page.$$eval("#node li[data-alert]", (lis) => lis.map((li) => li.dataset.alert));
    await page.screenshot({ path: join(artifacts, "dashboard-node.png"), fullPage: true });
  }

  // Log out: the dashboard is closed again.
  await page.goto(new URL("/", url).href);
  await Promise.all([page.waitForURL((u) => u.pathname === "/login"), page.click("header form button")]);
  await page.goto(new URL("/", url).href);
  out.after_logout = new URL(page.url()).pathname;
  // A node's local status page (no login: it listens on loopback only).
  if (nodePage) {
    await page.goto(nodePage);
    out.node_page_hub_link = (await page.textContent("tr[data-fact=hub-link] td span"))?.trim();
    await page.screenshot({ path: join(artifacts, "node-status-page.png"), fullPage: true });
  }
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
process.exit(out.error ? 1 : 0);
