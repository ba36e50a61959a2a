// Plays a person using the example web app in a real headless Chromium, scenario by scenario,
// and prints what they saw as one JSON object (crates/examples/tests/web_app_browser.rs checks
// it). Screenshots of each step go to the directory given.
// Usage: node webapp.mjs <app_url> <screenshot_dir> <session_idle_ms>
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [app, shots, idleMs] = process.argv.slice(2);
const profiles = [];

/// A fresh browser profile: its own cookies, like another person's browser.
async function browser() {
  const profile = mkdtempSync(join(tmpdir(), "helloflex-webapp-"));
  profiles.push(profile);
  return chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

const path = (page) => new URL(page.url()).pathname;
const h1 = (page) => page.locator("h1").first().innerText();
const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

/// Clicks a consent button and waits until the app has the page.
async function decide(page, label) {
  await Promise.all([
    page.waitForURL((url) => url.href.startsWith(app)),
    page.getByRole("button", { name: label }).click(),
  ]);
}

const seen = {};
try {
  // Sign in: home -> "Sign in with Flextell" -> the emulator's consent page -> Approve -> news.
  const one = await browser();
  const page = await one.newPage();
  let callback = null;
  page.on("request", (r) => { if (r.url().startsWith(`${app}/callback`)) callback = r.url(); });
  await page.goto(`${app}/`);
  await shot(page, "1-home");
  await Promise.all([page.waitForURL(/oauth2\/authorize/), page.getByRole("link", { name: "Sign in with Flextell" }).first().click()]);
  seen.consent = { title: await page.title(), buttons: await page.getByRole("button").allInnerTexts() };
  await shot(page, "2-consent");
  await decide(page, "Approve");
  seen.signin = { path: path(page), title: await page.title(), items: await page.locator("li").count() };
  await shot(page, "3-news");
  // The back button, to the consent page, and Approve again: still signed in.
  await page.goBack();
  seen.back = { consent: page.url().includes("/oauth2/authorize") };
  if (seen.back.consent) {
    await decide(page, "Approve");
    seen.back.after = { path: path(page), h1: await h1(page) };
  }
  // Reload the callback: still signed in, no error.
  await page.goto(callback);
  seen.reload = { path: path(page), h1: await h1(page) };
  // Sign out: home says Welcome; the news asks to sign in again.
  await page.goto(`${app}/`);
  await page.getByRole("link", { name: "Sign out" }).click();
  await page.waitForLoadState("load");
  seen.logout = { h1: await h1(page) };
  await shot(page, "4-signed-out");
  await page.goto(`${app}/news`);
  seen.logout.news = page.url().includes("/oauth2/authorize") ? "consent" : path(page);
  await one.close();

  // Two tabs of one browser sign in at once: both end signed in.
  const two = await browser();
  const a = await two.newPage();
  const b = await two.newPage();
  await a.goto(`${app}/login`);
  await b.goto(`${app}/login`);
  await decide(b, "Approve");
  await decide(a, "Approve");
  seen.tabs = { a: path(a), b: path(b), h1a: await h1(a) };
  await two.close();

  // Deny: a page that says so with a way back; not signed in.
  const three = await browser();
  const denied = await three.newPage();
  await denied.goto(`${app}/login`);
  await decide(denied, "Deny");
  seen.deny = {
    h1: await h1(denied),
    text: await denied.locator("body").innerText(),
    back: await denied.getByRole("link", { name: "Back to the start" }).count(),
  };
  await shot(denied, "5-denied");
  await denied.goto(`${app}/`);
  seen.deny.home = await h1(denied);
  await three.close();

  // An idle session expires.
  const four = await browser();
  const idle = await four.newPage();
  await idle.goto(`${app}/login`);
  await decide(idle, "Approve");
  seen.expiry = { before: await h1(idle) };
  await new Promise((done) => setTimeout(done, Number(idleMs) + 500));
  await idle.goto(`${app}/`);
  seen.expiry.after = await h1(idle);
  await shot(idle, "6-expired");
  await four.close();
} finally {
  for (const profile of profiles) rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen));
