// Plays the person at the browser: opens the sign-in URL in a real headless Chromium, clicks
// Approve or Deny on the consent page, waits for the page helloflex's loopback listener serves,
// saves a screenshot, and prints that page's title.
// Usage: node consent.mjs <url> <approve|deny> <screenshot.png>
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, decision, screenshot] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "helloflex-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  const label = decision === "deny" ? "Deny" : "Approve";
  await Promise.all([
    page.waitForURL(/127\.0\.0\.1:\d+\/callback/),
    page.getByRole("button", { name: label }).click(),
  ]);
  await page.waitForLoadState("load");
  await page.screenshot({ path: screenshot });
  console.log(await page.title());
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
