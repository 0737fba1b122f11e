// The kiosk page (`mykey-node kiosk`) in Chromium, paced by the Rust test
// (tests/tests/kiosk_browser.rs): it waits for the screen the test's card
// moves bring, types the PIN on the on-screen keypad by clicking, and prints
// what the screen says at each step as one JSON line.
import { launch, step } from "./browser.mjs";

const url = process.argv[2];
const { context, close } = await launch();
try {
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(url);
  const screenIs = (s) => page.waitForSelector(`#screen[data-screen="${s}"]`);
  const text = () => page.innerText("#screen");
  // Types `pin` digit by digit, each seen on the screen before the next.
  const typePin = async (pin) => {
    for (let i = 0; i < pin.length; i++) {
      await page.click(`#key-${pin[i]}`);
      await page.waitForFunction((n) => (document.getElementById("dots")?.textContent.match(/●/g) || []).length === n, i + 1);
    }
    await page.click("#key-ok");
  };

  await screenIs("idle");
  await step("idle", { lang: await page.getAttribute("html", "lang"), title: await page.title(), text: await text() });

  // The test puts the card on the reader: the menu, then the history.
  await screenIs("menu");
  await page.click("#menu-history");
  await screenIs("pin");
  const key = await page.$eval("#key-5", (b) => {
    const r = b.getBoundingClientRect();
    return { font_px: parseFloat(getComputedStyle(b).fontSize), width: r.width, height: r.height };
  });
  const body_px = await page.$eval("#screen p", (p) => parseFloat(getComputedStyle(p).fontSize));
  await typePin("1111");
  await page.waitForFunction(() => document.getElementById("notice")?.textContent.length > 0);
  await step("wrong_pin", { notice: await page.innerText("#notice"), key, body_px });

  await typePin("4321");
  await screenIs("online");
  const online = { text: await text(), balance_rows: await page.$$eval("#balances tr", (r) => r.length), history_rows: await page.$$eval("#history tr", (r) => r.length) };
  await page.click("#lang");
  await page.waitForFunction(() => document.documentElement.lang === "en");
  const english = await text();
  await page.click("#lang");
  await page.waitForFunction(() => document.documentElement.lang === "ja");
  await step("online", { ...online, english });

  // The test takes the card away.
  await screenIs("idle");
  await step("cleared", { text: await text() });

  // The test stops the hub and puts the card back.
  await screenIs("menu");
  await page.click("#menu-history");
  await screenIs("pin");
  await typePin("4321");
  await screenIs("offline");
  await step("offline", { text: await text(), mark: await page.innerText("#offline-mark") });

  await screenIs("idle");
  await step("cleared_offline", { text: await text() });
} finally {
  await close();
}
