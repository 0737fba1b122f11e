// Drives Debian's Chromium through a running hub's dashboard, in steps the
// Rust test (tests/tests/dashboard_live.rs) paces: after each step this
// prints one JSON line and waits for a line on stdin before the next, so the
// test can change the hub or cut the network between them.
//
// Usage: node live.mjs URL OPERATOR PASSWORD|- ARTIFACT_DIR NODE_A NODE_B
// (PASSWORD "-": from DASHBOARD_PASSWORD).
//
// Steps: "ready" (logged in, the overview live, the node table measured at
// 1,280 and 400 px), then "updated" (node A's row turned healthy without a
// reload), "stale" (the stream is down: the page says so), "recovered" (the
// stream is back and node B's row is fresh), "node-page" (a node's page is
// live too and its alerts link to the help).
import { join } from "node:path";
import { launch, login, rowHealth, step } from "./browser.mjs";

const [url, operator, passwordArg, artifacts, nodeA, nodeB] = process.argv.slice(2);
const password = passwordArg === "-" ? process.env.DASHBOARD_PASSWORD : passwordArg;
if (!url || !operator || !password || !artifacts || !nodeA || !nodeB) {
  console.error("usage: node live.mjs URL OPERATOR PASSWORD|- ARTIFACT_DIR NODE_A NODE_B");
  process.exit(2);
}
const { context, close } = await launch();
let failed = null;
try {
  const page = context.pages()[0] || (await context.newPage());
  await login(page, url, operator, password);
  await page.waitForSelector("#live-status[data-state=live]", { timeout: 10000 });

  // The node table against its card, at a laptop's width and a phone's.
  const measure = async (width, height, shot) => {
    await page.setViewportSize({ width, height });
    const m = await page.evaluate(() => {
      const table = document.getElementById("node-table");
      const card = table.closest("section");
      const shown = (el) => el && getComputedStyle(el).display !== "none";
      const row = table.querySelector("tbody tr");
      return {
        viewport: window.innerWidth,
        table_scroll_width: table.scrollWidth,
        card_client_width: card.clientWidth,
        document_scroll_width: document.documentElement.scrollWidth,
        header_columns_shown: [...table.querySelectorAll("thead th")].filter(shown).length,
        row_display: getComputedStyle(row).display,
        last_contact_shown: shown(row.querySelector("td.last-contact")),
        reachable_shown: shown(row.querySelector("td.reachable")),
        last_contact_label: getComputedStyle(row.querySelector("td.last-contact"), "::before").content,
      };
    });
    await page.screenshot({ path: join(artifacts, shot), fullPage: true });
    return m;
  };
  const wide = await measure(1280, 900, "live-1280.png");
  const narrow = await measure(400, 860, "live-400.png");
  await page.setViewportSize({ width: 1280, height: 900 });
  // Survives only as long as the page is not reloaded.
  await page.evaluate(() => {
    window.__notReloaded = true;
  });
  await step("ready", { wide, narrow });

  // The test started node A: its row turns healthy, no reload.
  let t0 = Date.now();
  await rowHealth(page, nodeA, "healthy", 10000);
  await step("updated", {
    ms: Date.now() - t0,
    not_reloaded: await page.evaluate(() => window.__notReloaded === true),
    contact: (await page.textContent(`#node-table tr[data-node="${nodeA}"] td.last-contact`))?.trim(),
  });

  // The test cut the network between the browser and the hub.
  await page.waitForSelector("#live-status[data-state=reconnecting]", { timeout: 10000 });
  await step("stale", {
    status_text: (await page.textContent("#live-status"))?.trim(),
    body_stale: await page.evaluate(() => document.body.classList.contains("stale")),
  });

  // The test started node B and mended the network.
  t0 = Date.now();
  await page.waitForSelector("#live-status[data-state=live]", { timeout: 20000 });
  await rowHealth(page, nodeB, "healthy", 10000);
  await step("recovered", {
    ms: Date.now() - t0,
    not_reloaded: await page.evaluate(() => window.__notReloaded === true),
    body_stale: await page.evaluate(() => document.body.classList.contains("stale")),
  });

  // A node's page: live as well; an alert links to what to do.
  await page.goto(new URL("/?lang=en", url).href);
  await page.waitForSelector("#live-status[data-state=live]", { timeout: 10000 });
  const helpHref = await page.getAttribute("#alerts li[data-alert=silent] a.help", "href");
  await page.goto(new URL(helpHref, url).href);
  const helpTitle = (await page.textContent("#alert-silent h2"))?.trim();
  await page.goto(new URL(`/nodes/${nodeA}?lang=ja`, url).href);
  await page.waitForSelector("#live-status[data-state=live]", { timeout: 10000 });
  await page.screenshot({ path: join(artifacts, "live-node.png"), fullPage: true });
  await page.setViewportSize({ width: 400, height: 860 });
  const nodeNarrow = await page.evaluate(() => {
    const table = document.querySelector("#node table");
    return { table_scroll_width: table.scrollWidth, card_client_width: table.closest("section").clientWidth };
  });
  await page.screenshot({ path: join(artifacts, "live-node-400.png"), fullPage: true });
  console.log(
    JSON.stringify({
      step: "node-page",
      help_href: helpHref,
      help_title: helpTitle,
      stream: await page.getAttribute("#live", "data-stream"),
      narrow: nodeNarrow,
    }),
  );
} catch (e) {
  failed = String(e && e.stack ? e.stack : e);
  console.log(JSON.stringify({ step: "error", error: failed }));
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
