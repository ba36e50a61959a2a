// Plays a person who signs in to the example web app in a real headless Chromium, then keeps
// using it while the server restarts: the browser stays open (its session cookie with it), and
// the news page must load with no new sign-in. Prints `signed-in` once signed in, waits for a
// line on stdin (the test restarts the server meanwhile), then prints what was seen as one
// JSON object (crates/examples/tests/web_app_restart_browser.rs checks it). No cookie value or
// token is ever printed: only what a person would see, and comparisons.
// Usage: node restart.mjs <app_url> <screenshot_dir>
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [app, shots] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "helloflex-webapp-restart-"));
const path = (page) => new URL(page.url()).pathname;
const h1 = (page) => page.locator("h1").first().innerText();
const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const sid = async (context) => (await context.cookies(app)).find((c) => c.name === "sid")?.value;
const stdin = createInterface({ input: process.stdin });
const nextLine = () => new Promise((done) => stdin.once("line", done));

const seen = {};
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  // Sign in: home -> "Sign in with Flextell" -> the emulator's consent page -> Approve -> news.
  const page = await context.newPage();
  let authorizations = 0;
  page.on("request", (r) => { if (r.url().includes("/oauth2/authorize")) authorizations += 1; });
  await page.goto(`${app}/`);
  await Promise.all([
    page.waitForURL(/oauth2\/authorize/),
    page.getByRole("link", { name: "Sign in with Flextell" }).first().click(),
  ]);
  await Promise.all([
    page.waitForURL((url) => url.href.startsWith(app)),
    page.getByRole("button", { name: "Approve" }).click(),
  ]);
  seen.signin = { path: path(page), h1: await h1(page), items: await page.locator("li").count() };
  await shot(page, "restart-1-signed-in");
  const before = await sid(context);
  const signInsBefore = authorizations;

  // The server restarts; the browser stays as it is.
  console.log("signed-in");
  seen.restarted = (await nextLine()) === "restarted";

  // The news page again: loaded with the tokens the server kept, no consent page on the way.
  await page.goto(`${app}/news`);
  seen.after = {
    path: path(page),
    h1: await h1(page),
    items: await page.locator("li").count(),
    newSignIns: authorizations - signInsBefore,
    sameCookie: (await sid(context)) === before,
  };
  await shot(page, "restart-2-news-after-restart");
  await page.goto(`${app}/`);
  seen.after.home = await h1(page);
  // The Sign out button still works (its CSRF token is the restarted server's too).
  await Promise.all([
    page.waitForURL(`${app}/`),
    page.getByRole("button", { name: "Sign out" }).first().click(),
  ]);
  seen.logout = { h1: await h1(page), cookie: (await sid(context)) !== undefined };
  await page.goto(`${app}/news`);
  seen.logout.news = page.url().includes("/oauth2/authorize") ? "consent" : path(page);
} finally {
  stdin.close();
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen));
