// The kiosk page (`mykey-node kiosk`) in Chromium for a holder's own orders,
// paced by the Rust test (tests/tests/kiosk_browser.rs): register a My Key
// ID, change it (a taken ID refused before the PIN), a card pulled mid-action, an order
// signed offline (pending), the offline figures, a locked card. The ID is
// typed on the on-screen keyboard and the PIN on the keypad, by clicking;
// each step prints what the screen says as one JSON line and waits for "go".
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
  // Types `id` on the on-screen keyboard (the shift key for capitals).
  const typeId = async (id) => {
    for (const c of id) {
      if (c === "-") { await page.click("#chr-dash"); continue; }
      const upper = c !== c.toLowerCase();
      const shifted = await page.$("#chr-A") !== null;
      if (upper !== shifted && /[a-z]/i.test(c)) await page.click("#chr-shift");
      await page.click(`#chr-${c}`);
    }
    await page.waitForFunction((t) => document.getElementById("idtext")?.textContent === t, id);
  };
  const clearId = async () => {
    while (((await page.textContent("#idtext")) || "").length > 0) {
      const n = (await page.textContent("#idtext")).length;
      await page.click("#chr-back");
      await page.waitForFunction((m) => document.getElementById("idtext").textContent.length === m, n - 1);
    }
  };

  // 1. A new card: the menu offers registration.
  await screenIs("idle");
  await step("idle", {});
  await screenIs("menu");
  const menu = await text();
  await page.click("#menu-set-id");
  await screenIs("id_entry");
  await typeId("ab");
  await page.click("#chr-ok");
  const bad = await notice();
  await step("bad_id", { menu, notice: bad });

  await clearId();
  await typeId("Hana7");
  await page.click("#chr-ok");
  await screenIs("pin");
  const task = await page.innerText("#task");
  await typePin("1111");
  const wrong = await notice();
  await typePin("4321");
  await screenIs("receipt");
  // Printed, the receipt shows and the buttons do not.
  await page.emulateMedia({ media: "print" });
  const printed = { receipt: await page.isVisible("#receipt"), buttons: await page.isVisible("#print") || await page.isVisible("#menu-back") };
  await page.emulateMedia({ media: "screen" });
  await step("registered", { task, wrong, printed, text: await text(), status: await page.$eval("#receipt td[id^=status-]", (e) => e.id) });

  // 2. Change it: a taken ID first, then a free one.
  await page.click("#menu-back");
  await screenIs("menu");
  const menu2 = await text();
  await page.click("#menu-set-id");
  await screenIs("id_entry");
  await typeId("Taken1");
  await page.click("#chr-ok");
  // Checked at the hub before any PIN: the keyboard stays, with the notice.
  const taken = await notice();
  await step("taken", { menu: menu2, notice: taken, text: await page.textContent("#idtext") });

  await clearId();
  await typeId("Hana8");
  await page.click("#chr-ok");
  await screenIs("pin");
  const task2 = await page.innerText("#task");
  await typePin("4321");
  await screenIs("receipt");
  await step("changed", { task: task2, text: await text(), status: await page.$eval("#receipt td[id^=status-]", (e) => e.id) });

  // 3. A library card linked at the kiosk (the library allows it); the test
  //    checks the library's node finds it, then it is unlinked.
  for (const [button, name] of [["#menu-link-0", "linked"], ["#menu-unlink-0", "unlinked"]]) {
    await page.click("#menu-back");
    await screenIs("menu");
    const menu = await text();
    await page.click(button);
    await screenIs("number_entry");
    await typeId("L-042");
    await page.click("#chr-ok");
    await screenIs("pin");
    const task = await page.innerText("#task");
    await typePin("4321");
    await screenIs("receipt");
    await step(name, { menu, task, text: await text(), status: await page.$eval("#receipt td[id^=status-]", (e) => e.id) });
  }

  // 4. Mid-action: an ID typed, the PIN half typed, and the test pulls the card.
  await page.click("#menu-back");
  await screenIs("menu");
  await page.click("#menu-set-id");
  await screenIs("id_entry");
  await typeId("Hana9");
  await page.click("#chr-ok");
  await screenIs("pin");
  await page.click("#key-4");
  await page.click("#key-3");
  await step("half_typed", {});
  await screenIs("idle");
  await step("pulled", { text: await text() });

  // 5. The test stops the hub and puts the card back: an order signed
  //    offline is pending, and the figures are the node's, marked offline.
  await screenIs("menu");
  const menu3 = await text();
  await page.click("#menu-set-id");
  await screenIs("id_entry");
  await typeId("Hana10");
  await page.click("#chr-ok");
  await screenIs("pin");
  await typePin("4321");
  await screenIs("receipt");
  const pending = { text: await text(), status: await page.$eval("#receipt td[id^=status-]", (e) => e.id) };
  await page.click("#lang");
  await page.waitForFunction(() => document.documentElement.lang === "en");
  pending.english = await text();
  await page.click("#lang");
  await page.waitForFunction(() => document.documentElement.lang === "ja");
  await page.click("#menu-back");
  await screenIs("menu");
  await page.click("#menu-history");
  await screenIs("pin");
  await typePin("4321");
  await screenIs("offline");
  await step("pending", { menu: menu3, ...pending, offline: await text(), mark: await page.innerText("#offline-mark") });

  await screenIs("idle");
  await step("cleared", { text: await text() });

  // 6. Another card whose PIN the holder does not know: three wrong tries lock it.
  await screenIs("menu");
  await page.click("#menu-history");
  await screenIs("pin");
  const tries = [];
  for (let i = 0; i < 2; i++) {
    await typePin("9999");
    tries.push(await notice());
    await page.waitForFunction(() => (document.getElementById("dots")?.textContent.match(/●/g) || []).length === 0);
  }
  await typePin("9999");
  await screenIs("message");
  await step("locked", { tries, text: await text() });
  await screenIs("idle");
  await step("end", { text: await text() });
} finally {
  await close();
}
