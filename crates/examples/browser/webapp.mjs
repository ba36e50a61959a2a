// Plays a person using the example web app in a real headless Chromium, scenario by scenario,
// and prints what they saw as one JSON object (crates/examples/tests/web_app_browser.rs checks
// it). Screenshots of each step go to the directory given. No cookie value or token is ever
// printed: only what a person would see, and comparisons.
// Usage: node webapp.mjs <app_url> <screenshot_dir> <session_idle_ms> <small_app_url>
// (<small_app_url>: the same app with a table of 3 sessions, for the flood of anonymous ones)
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [app, shots, idleMs, smallApp] = process.argv.slice(2);
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

/// Clicks a consent button and waits until the app (at `site`) has the page.
async function decide(page, label, site = app) {
  await Promise.all([
    page.waitForURL((url) => url.href.startsWith(site)),
    page.getByRole("button", { name: label }).click(),
  ]);
}

/// The session cookie's value in `context` for `site` (never printed).
async function sid(context, site = app) {
  return (await context.cookies(site)).find((c) => c.name === "sid")?.value;
}

/// Makes `context` present `value` as its session cookie, as a browser an attacker planted an
/// id in (or stole one from) would.
async function plant(context, value) {
  await context.clearCookies();
  await context.addCookies([{ name: "sid", value, url: app, httpOnly: true, sameSite: "Lax" }]);
}

/// Submits the home page's Sign out form after tampering with its CSRF field: removed
/// (`token` null) or replaced. A same-origin POST from the app's own page, like a forged form
/// would be (the page's CSP forbids `fetch`, so the form it is).
async function tamperedSignOut(page, token) {
  await page.goto(`${app}/`);
  await page.locator('nav input[name="csrf"]').evaluate((input, token) => {
    if (token === null) input.remove(); else input.value = token;
  }, token);
  const response = page.waitForResponse((r) => r.url() === `${app}/logout`);
  await Promise.all([
    page.waitForURL(`${app}/logout`),
    page.locator("nav").getByRole("button", { name: "Sign out" }).click(),
  ]);
  return { status: (await response).status(), h1: await h1(page) };
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
  const consentOrigin = new URL(page.url()).origin;
  const before = await sid(one);
  await shot(page, "2-consent");
  await decide(page, "Approve");
  seen.signin = { path: path(page), title: await page.title(), items: await page.locator("li").count() };
  await shot(page, "3-news");
  // Session rotation: the id from /login is replaced at sign-in, and no longer works (tried
  // in another tab, so this one's history stays as a person made it).
  const after = await sid(one);
  seen.rotation = { before: before !== undefined, after: after !== undefined, changed: before !== after };
  const probe = await one.newPage();
  await plant(one, before);
  await probe.goto(`${app}/`);
  seen.rotation.oldId = await h1(probe);
  await plant(one, after);
  await probe.goto(`${app}/`);
  seen.rotation.newId = await h1(probe);
  await probe.close();
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
  // Sign-out is a POST with the page's CSRF token. A GET /logout only asks.
  seen.csrf = {};
  await page.goto(`${app}/logout`);
  seen.csrf.get = { h1: await h1(page), buttons: await page.getByRole("button", { name: "Sign out" }).count() };
  await shot(page, "4-sign-out-asks");
  await page.goto(`${app}/`);
  seen.csrf.get.after = await h1(page);
  // The form posted without the token, or with a wrong one: refused, still signed in.
  seen.csrf.noToken = await tamperedSignOut(page, null);
  await shot(page, "5-sign-out-refused");
  seen.csrf.wrongToken = await tamperedSignOut(page, "0".repeat(32));
  await page.goto(`${app}/`);
  seen.csrf.afterForged = await h1(page);
  // A page on another origin of this host (the same site, so the Lax cookie is sent) that
  // somehow has the right token, and submits the form: refused by origin, still signed in.
  const token = await page.locator('input[name="csrf"]').first().getAttribute("value");
  await page.route(`${consentOrigin}/evil`, (route) => route.fulfill({
    contentType: "text/html",
    body: `<form method="post" action="${app}/logout"><input type="hidden" name="csrf" value="${token}"></form>
           <script>document.forms[0].submit()</script>`,
  }));
  const crossOrigin = page.waitForResponse((r) => r.url() === `${app}/logout`);
  await page.goto(`${consentOrigin}/evil`);
  const status = (await crossOrigin).status();
  await page.waitForURL((url) => url.href.startsWith(app));
  seen.csrf.crossOrigin = { status, h1: await h1(page) };
  await page.goto(`${app}/`);
  seen.csrf.crossOrigin.after = await h1(page);
  // The Sign out button (here on the news page): home says Welcome; the news asks to sign in
  // again.
  await page.goto(`${app}/news`);
  await Promise.all([
    page.waitForURL(`${app}/`),
    page.getByRole("button", { name: "Sign out" }).first().click(),
  ]);
  seen.logout = { h1: await h1(page), cookie: (await sid(one)) !== undefined };
  await shot(page, "6-signed-out");
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

  // Deny: a friendly page that says what happened, with a way to try again; not signed in.
  const three = await browser();
  const denied = await three.newPage();
  await denied.goto(`${app}/login`);
  const answer = denied.waitForResponse((r) => r.url().startsWith(`${app}/callback`));
  await decide(denied, "Deny");
  seen.deny = {
    status: (await answer).status(),
    h1: await h1(denied),
    text: await denied.locator("body").innerText(),
    errors: await denied.locator(".error").count(),
    again: await denied.getByRole("link", { name: "Try again" }).count(),
    back: await denied.getByRole("link", { name: "Back to the start" }).count(),
  };
  await shot(denied, "7-denied");
  await Promise.all([
    denied.waitForURL(/oauth2\/authorize/),
    denied.getByRole("link", { name: "Try again" }).click(),
  ]);
  seen.deny.tryAgain = { consent: denied.url().includes("/oauth2/authorize") };
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
  await shot(idle, "8-expired");
  await four.close();

  // Eviction order: a user signed in to the small app (3 sessions at most), then a flood of
  // anonymous sign-in starts (each a new session, as from browsers that keep no cookies): the
  // anonymous sessions make room for each other; the user stays signed in.
  const five = await browser();
  const user = await five.newPage();
  await user.goto(`${smallApp}/login`);
  await decide(user, "Approve", smallApp);
  seen.flood = { before: await h1(user), statuses: {} };
  for (let i = 0; i < 30; i++) {
    const status = (await fetch(`${smallApp}/login`, { redirect: "manual" })).status;
    seen.flood.statuses[status] = (seen.flood.statuses[status] || 0) + 1;
  }
  await user.goto(`${smallApp}/`);
  seen.flood.home = await h1(user);
  await user.goto(`${smallApp}/news`);
  seen.flood.news = { path: path(user), h1: await h1(user) };
  await shot(user, "9-after-flood");
  await five.close();
} finally {
  for (const profile of profiles) rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen));
