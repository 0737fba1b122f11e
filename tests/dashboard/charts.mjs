// Drives Debian's Chromium through a running hub's charts and prints what
// the SVGs say as one JSON line; tests/tests/dashboard_charts.rs asserts on it.
//
// Usage: node charts.mjs URL OPERATOR PASSWORD|- ARTIFACT_DIR NODE_ID MUNICIPALITY
// (the password comes from DASHBOARD_PASSWORD when PASSWORD is "-").
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, operator, passwordArg, artifacts, node, municipality] = process.argv.slice(2);
const password = passwordArg === "-" ? process.env.DASHBOARD_PASSWORD : passwordArg;
if (!url || !operator || !password || !artifacts || !node || !municipality) {
  console.error("usage: node charts.mjs URL OPERATOR PASSWORD|- ARTIFACT_DIR NODE_ID MUNICIPALITY");
  process.exit(2);
}
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
  viewport: { width: 1400, height: 900 },
  locale: "ja-JP",
  timezoneId: "Asia/Tokyo",
});

// What one chart says: its data attributes, the line stretches drawn, the
// bands where nothing is drawn, the bars, and the axis labels.
const chart = (page, selector) =>
  page.$eval(selector, (svg) => ({
    metric: svg.dataset.metric,
    window: svg.dataset.window,
    runs: Number(svg.dataset.runs),
    values: svg.dataset.values.split(",").map((v) => (v === "" ? null : Number(v))),
    run_paths: svg.querySelectorAll("path.run").length,
    down_bands: svg.querySelectorAll("rect.down").length,
    nodata_bands: svg.querySelectorAll("rect.nodata").length,
    bars: [...svg.querySelectorAll("rect.bar")].reduce((n, r) => n + Number(r.dataset.buckets), 0),
    x_labels: [...svg.querySelectorAll("text.x")].map((t) => t.textContent),
    width: svg.getBoundingClientRect().width,
  }));

const out = {};
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15000);
  await page.goto(url);
  await page.fill("#name", operator);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL((u) => u.pathname === "/"), page.click("#login-button")]);

  // The node's page: a day, then a week.
  await page.goto(new URL(`/nodes/${node}`, url).href);
  await page.waitForSelector("#history svg.chart");
  out.node_day = {};
  for (const m of ["reachable", "unconfirmed", "oldest-unconfirmed", "refusals", "clock-skew"]) {
    out.node_day[m] = await chart(page, `#history svg.chart[data-metric="${m}"]`);
  }
  await page.screenshot({ path: join(artifacts, "charts-node-24h.png"), fullPage: true });
  await page.click('#history a[data-window="7d"]');
  await page.waitForSelector('#history[data-window="7d"] svg.chart');
  out.node_week = await chart(page, '#history svg.chart[data-metric="unconfirmed"]');
  await page.screenshot({ path: join(artifacts, "charts-node-7d.png"), fullPage: true });

  // The overview: the municipality's charts and the node's sparkline.
  await page.goto(new URL("/", url).href);
  await page.waitForSelector("#history svg.chart");
  out.municipality_day = await chart(
    page,
    `#history [data-municipality="${municipality}"] svg.chart[data-metric="unconfirmed"]`,
  );
  out.municipality_reachable = await chart(
    page,
    `#history [data-municipality="${municipality}"] svg.chart[data-metric="reachable"]`,
  );
  out.sparkline = await chart(page, `#node-table tr[data-node="${node}"] td.spark svg`);
  await page.screenshot({ path: join(artifacts, "charts-overview.png"), fullPage: true });
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
process.exit(out.error ? 1 : 0);
