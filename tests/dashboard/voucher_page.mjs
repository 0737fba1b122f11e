// The shop's phone page (`mykey-node voucher page`) in Chromium, paced by the
// Rust test (tests/tests/voucher_page.rs): for each photo path given after
// the URL, it picks the file in the page's camera input (as a phone's camera
// app hands it back), waits for the node's answer and prints it as a step.
import { launch, step } from "./browser.mjs";

const [url, ...photos] = process.argv.slice(2);
const { context, close } = await launch();
try {
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(url);
  const input = await page.$eval("#photo", (i) => ({ accept: i.accept, capture: i.getAttribute("capture"), type: i.type }));
  await step("page", { lang: await page.getAttribute("html", "lang"), input });
  for (let i = 0; i < photos.length; i++) {
    await page.setInputFiles("#photo", photos[i]);
    await page.waitForSelector('#answer[data-state="done"]');
    const outcomes = await page.$$eval("#answer [data-outcome]", (d) => d.map((e) => e.dataset.outcome));
    await step(`photo${i}`, { outcomes, text: await page.innerText("#answer") });
    // The next photo's answer must be its own.
    await page.evaluate(() => { document.getElementById("answer").dataset.state = "idle"; });
  }
} finally {
  await close();
}
