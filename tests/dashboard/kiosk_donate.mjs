// The kiosk page (`mykey-node kiosk`) in Chromium for a donation, paced by
// the Rust test (tests/tests/kiosk_browser.rs): the menu's donate button, a
// programme chosen from the list the hub told the node, the points typed on
// the keypad (an amount out of bounds and one beyond the balance said), the
// PIN on the keypad (a wrong one first), the receipt; a card pulled
// mid-donation; a visitor's menu. Each step prints what the screen says as
// one JSON line and waits for "go".
import { launch, step } from "./browser.mjs";

const url = process.argv[2];
const { context, close } = await launch();
try {
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(url);
  const screenIs = (s) => page.waitForSelector(`#screen[data-screen="${s}"]`);
  const text = () => page.innerText("#screen");
  const notice = () => page.waitForFunction(() => document.getElementById("notice")?.textContent.length > 0).then(() => page.innerText("#notice"));
  const typePin = async (pin) => {
    for (let i = 0; i < pin.length; i++) {
      await page.click(`#key-${pin[i]}`);
      await page.waitForFunction((n) => (document.getElementById("dots")?.textContent.match(/●/g) || []).length === n, i + 1);
    }
    await page.click("#key-ok");
  };
  // Types `digits` on the amount keypad, each seen before the next.
  const typeAmount = async (digits) => {
    for (const d of digits) {
      const before = (await page.textContent("#amount")) || "";
      await page.click(`#key-${d}`);
      await page.waitForFunction((b) => document.getElementById("amount")?.textContent !== b, before);
    }
  };
  const clearAmount = async () => {
    while (((await page.textContent("#amount")) || "").length > 0) {
      const before = await page.textContent("#amount");
      await page.click("#key-back");
      await page.waitForFunction((b) => document.getElementById("amount")?.textContent !== b, before);
    }
  };
  // From the menu to the amount keypad of the programme `id`.
  const toAmount = async (id) => {
    await page.click("#menu-donate");
    await screenIs("programmes");
    const list = await text();
    await page.click(`button[data-k^="programme-"]:has-text("${id}")`);
    await screenIs("amount");
    return list;
  };

  await screenIs("idle");
  await step("idle", {});

  // 1. The holder's card: donate 1,500 points to the second programme.
  await screenIs("menu");
  const menu = await text();
  const list = await toAmount("flood-aid");
  const prompt = await page.innerText("#task");
  await typeAmount("999999");
  await page.click("#key-ok");
  const bad = await notice();
  await clearAmount();
  await typeAmount("6000");
  await page.click("#key-ok");
  await screenIs("pin");
  await typePin("4321");
  // Beyond the balance: the amount again, with what may be given.
  await page.waitForFunction(() => document.getElementById("screen").dataset.screen === "amount" && document.getElementById("notice")?.textContent.length > 0);
  const beyond = await page.innerText("#notice");
  const kept = await page.textContent("#amount");
  await clearAmount();
  await typeAmount("1500");
  await page.click("#key-ok");
  await screenIs("pin");
  const task = await page.innerText("#task");
  await typePin("1111");
  const wrong = await notice();
  await typePin("4321");
  await screenIs("receipt");
  const receipt = await text();
  await page.emulateMedia({ media: "print" });
  const printed = { receipt: await page.isVisible("#receipt"), buttons: await page.isVisible("#print") || await page.isVisible("#menu-back") };
  await page.emulateMedia({ media: "screen" });
  await page.click("#lang");
  await page.waitForFunction(() => document.documentElement.lang === "en");
  const english = await text();
  await page.click("#lang");
  await page.waitForFunction(() => document.documentElement.lang === "ja");
  await step("donated", {
    menu, list, prompt, bad, beyond, kept, task, wrong, receipt, english, printed,
    status: await page.$eval("#receipt td[id^=status-]", (e) => e.id),
    points: await page.innerText("#receipt-points"),
    place: await page.innerText("#receipt-place"),
  });

  // 2. Another donation, the PIN half typed, and the test pulls the card.
  await page.click("#menu-back");
  await screenIs("menu");
  await toAmount("noto-relief");
  await typeAmount("700");
  await page.click("#key-ok");
  await screenIs("pin");
  await page.click("#key-4");
  await page.click("#key-3");
  await step("half_typed", {});
  await screenIs("idle");
  await step("pulled", { text: await text() });

  // 3. A visitor's card: registered elsewhere, no registration, no donation.
  await screenIs("menu");
  await step("visitor", {
    text: await text(),
    set_id: await page.$("#menu-set-id") !== null,
    donate: await page.$("#menu-donate") !== null,
    history: await page.$("#menu-history") !== null,
  });
  await screenIs("idle");
  await step("end", { text: await text() });
} finally {
  await close();
}
