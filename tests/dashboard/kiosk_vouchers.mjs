// The kiosk page (`mykey-node kiosk`) in Chromium for vouchers made of a
// holder's points (issue 17 part 1(a)), paced by the Rust test
// (tests/tests/kiosk_browser.rs): the menu's "points to vouchers" button,
// the points typed on the keypad (an amount out of bounds said first), a
// split chosen, the PIN on the keypad (a wrong one first), the receipt with
// a QR code per voucher. Each step prints what the screen says as one JSON
// line and waits for "go".
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

  await screenIs("idle");
  await step("idle", {});

  // The holder's card: 1,200 points as 500 + 500 + 200.
  await screenIs("menu");
  const menu = await text();
  await page.click("#menu-vouchers");
  await screenIs("voucher_amount");
  const prompt = await page.innerText("#task");
  await typeAmount("999999");
  await page.click("#key-ok");
  const bad = await notice();
  await clearAmount();
  await typeAmount("1200");
  await page.click("#key-ok");
  await screenIs("voucher_split");
  const splits = await text();
  await page.click('button[data-k^="split-"]:has-text("500 + 500 + 200")');
  await screenIs("pin");
  const task = await page.innerText("#task");
  await typePin("1111");
  const wrong = await notice();
  await typePin("4321");
  await screenIs("voucher_receipt");
  const receipt = await text();
  await step("issued", {
    menu, prompt, bad, splits, task, wrong, receipt,
    serials: await page.$$eval(".voucher", (vs) => vs.map((v) => v.dataset.serial)),
    qr: await page.$$eval(".voucher svg", (s) => s.length),
    printed: await page.innerText("#status-printed"),
    seq: await page.innerText("#receipt-seq"),
  });
  await screenIs("idle");
  await step("end", { text: await text() });
} finally {
  await close();
}
