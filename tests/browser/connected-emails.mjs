// The web UI in Debian's Chromium, the way a person uses it. Run by
// host/cli/tests/browser.rs, which starts Dovecot, a tracker for remote
// images and `mailroom serve`, seeds the mailbox and the CRM, and passes
// everything in the environment. `node connected-emails.mjs sync` connects
// the mailbox and checks the records, the message view, visibility and the
// Plugins page; `node connected-emails.mjs reauth` runs after the test has
// changed the password on the server.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env("MAILROOM_BASE");
const ARTIFACTS = env("ARTIFACTS");
const TRACKER = env("TRACKER");
const SALES = { email: env("SALES_EMAIL"), password: env("SALES_PASSWORD") };
const OTHER = { email: env("OTHER_EMAIL"), password: env("OTHER_PASSWORD") };
const MAILBOX = env("MAILBOX");
const phase = process.argv[2];
mkdirSync(ARTIFACTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run"],
});

/** What went wrong outside the steps: page errors, script dialogs. */
const problems = [];

/** A signed-in tab that fails the run on any page error or script dialog. */
async function signedIn(who) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("dialog", async (d) => {
    problems.push(`a script opened a dialog: ${d.message()}`);
    await d.dismiss();
  });
  await page.goto(`${BASE}/emails`);
  assert.match(page.url(), /\/login\?next=/, "a page without a session sends the browser to sign in");
  await page.getByLabel("Email").fill(who.email);
  await page.getByLabel("Password").fill(`${who.password}-wrong`);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "Wrong email or password" }).waitFor();
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${BASE}/emails`);
  return page;
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
const row = (page) => page.locator("tr", { has: page.getByRole("rowheader", { name: new RegExp(MAILBOX) }) });
const badge = (page) => row(page).locator("[data-status] .badge");

async function trackerHits() {
  const response = await fetch(`${TRACKER}/count`);
  return response.json();
}

/** Every control a person can reach has a name a screen reader can say. */
async function everyControlIsNamed(page, where) {
  const unnamed = await page.evaluate(() => [...document.querySelectorAll("input:not([type=hidden]), select, button, a[href]")]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.textContent.trim()))
    .map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unnamed, [], `controls without an accessible name on ${where}`);
}

async function openTab(page, name) {
  await page.getByRole("navigation", { name: /sections/ }).getByRole("link", { name, exact: true }).click();
  await page.waitForURL(/tab=/);
}

async function sync() {
  const page = await signedIn(SALES);
  await shot(page, "01-connected-emails-empty");
  await everyControlIsNamed(page, "Connected emails");

  // The connect dialog opens and closes from the keyboard.
  await page.getByRole("button", { name: "Connect an email account" }).focus();
  await page.keyboard.press("Enter");
  const dialog = page.getByRole("dialog", { name: "Connect an email account" });
  await dialog.waitFor();
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });

  // Connect the IMAP mailbox: a wrong password is refused on the form, saying what to try.
  await page.getByRole("button", { name: "Connect an email account" }).click();
  await dialog.getByRole("radio", { name: "IMAP" }).check();
  const imap = dialog.getByRole("region", { name: "IMAP" });
  await imap.getByLabel("Email address").fill(MAILBOX);
  await imap.getByLabel("Password").fill("not-the-password");
  await imap.getByLabel("IMAP server").fill("localhost");
  await imap.getByLabel("IMAP port").fill(env("IMAPS_PORT"));
  await imap.getByLabel("IMAP security").fill("tls");
  await imap.getByLabel("Messages per page").fill("20");
  await everyControlIsNamed(page, "the connect dialog");
  await shot(page, "02-connect-dialog");
  await imap.getByRole("button", { name: "Connect" }).click();
  const refusal = page.getByRole("dialog", { name: "Connect an email account" }).getByRole("alert");
  await refusal.waitFor();
  assert.match(await refusal.textContent(), /sign-in failed.*check the password/s);
  await shot(page, "03-connect-refused");
  const again = page.getByRole("region", { name: "IMAP" });
  assert.equal(await again.getByLabel("IMAP server").inputValue(), "localhost", "what was typed stays");
  await again.getByLabel("Password").fill(env("MAILBOX_PASSWORD"));
  await again.getByRole("button", { name: "Connect" }).click();
  await page.waitForURL(`${BASE}/emails`);

  // The backfill shows its progress, then the badge turns green with the last sync time.
  let sawProgress = false;
  const started = Date.now();
  let last = "";
  for (let i = 0; i < 1200; i++) {
    const label = (await badge(page).textContent()).trim();
    if (label !== last) console.log(`status after ${Date.now() - started} ms: ${label}`);
    last = label;
    if (label === "Backfilling" && await row(page).locator("progress").count()) {
      if (!sawProgress) await shot(page, "04-backfilling");
      sawProgress = true;
      assert.match(await row(page).locator("[data-status] .detail").first().textContent(), /\d+ of ~\d+/);
    }
    if (label === "Active") break;
    assert.notEqual(label, "Error", await row(page).textContent());
    await page.waitForTimeout(100);
  }
  assert.ok(sawProgress, "the backfill's progress bar was shown");
  assert.equal((await badge(page).textContent()).trim(), "Active");
  assert.match(await row(page).locator("[data-status]").textContent(), /last sync/);
  await shot(page, "05-active");

  // The contact and the deal each show the mail in both tabs.
  const expected = env("SUBJECTS").split("|");
  for (const [list, name] of [["/contacts", "Ann Acme"], ["/deals", "Acme renewal"]]) {
    await page.goto(`${BASE}${list}`);
    await page.getByRole("link", { name, exact: true }).click();
    const slug = list.slice(1, -1);
    const activities = await page.getByRole("region", { name: "Recent activities" }).textContent();
    for (const subject of expected) assert.ok(activities.includes(subject), `${name}: "${subject}" in Recent activities`);
    await shot(page, `06-${slug}-activities`);
    await openTab(page, "Emails");
    const emails = await page.getByRole("region", { name: "Emails" }).textContent();
    for (const subject of expected) assert.ok(emails.includes(subject), `${name}: "${subject}" in Emails`);
    await everyControlIsNamed(page, `the ${slug} record`);
    await shot(page, `07-${slug}-emails`);
  }

  // The hostile message renders inert; its remote image waits until asked for.
  await page.getByRole("article").filter({ hasText: env("HOSTILE_SUBJECT") }).getByRole("link").first().click();
  await page.waitForURL(/\/messages\/\d+$/);
  const frame = page.frameLocator("iframe[title='Message body']");
  await frame.getByText("Quarterly numbers attached").waitFor();
  const markup = await frame.locator("body").innerHTML();
  for (const gone of ["<script", "onerror", "onclick", "onload", "javascript:", "<iframe", "<form"]) {
    assert.ok(!markup.includes(gone), `"${gone}" was removed: ${markup}`);
  }
  assert.match(await page.getByRole("list").filter({ hasText: "quote.pdf" }).textContent(), /quote\.pdf.*\(12 bytes, application\/pdf\)/s);
  await page.waitForTimeout(500);
  let hits = await trackerHits();
  assert.equal(hits["/pixel.gif"] ?? 0, 0, "no remote image is fetched before the reader asks");
  assert.equal(hits["/script-ran"] ?? 0, 0, "no script of the message ran");
  assert.equal(await page.evaluate(() => window.owned), undefined);
  await shot(page, "08-message-images-blocked");
  await page.getByRole("link", { name: "Show images" }).click();
  await frame.getByText("Quarterly numbers attached").waitFor();
  for (let i = 0; i < 50 && !(hits["/pixel.gif"] > 0); i++) {
    await page.waitForTimeout(100);
    hits = await trackerHits();
  }
  assert.ok(hits["/pixel.gif"] > 0, "asked for, the remote image loads");
  assert.equal(hits["/script-ran"] ?? 0, 0, "still no script ran");
  await shot(page, "09-message-images-shown");

  // Public: a colleague sees the mail on the deal. Private: no longer.
  const colleague = await signedIn(OTHER);
  const colleagueSees = async () => {
    await colleague.goto(`${BASE}/deals`);
    await colleague.getByRole("link", { name: "Acme renewal", exact: true }).click();
    await openTab(colleague, "Emails");
    return colleague.getByRole("region", { name: "Emails" }).textContent();
  };
  const setVisibility = async (value) => {
    await page.goto(`${BASE}/emails`);
    await row(page).getByLabel(/Email visibility/).selectOption({ label: value });
    await page.getByRole("status").filter({ hasText: "Saved: Email visibility" }).waitFor();
    await page.reload();
    assert.equal(await row(page).getByLabel(/Email visibility/).inputValue(), value.toLowerCase(), "the choice was saved");
  };
  await setVisibility("Public");
  assert.ok((await colleagueSees()).includes(expected[0]), "a colleague sees a Public account's mail");
  await shot(colleague, "10-colleague-sees-public");
  await setVisibility("Private");
  const hidden = await colleagueSees();
  for (const subject of expected) assert.ok(!hidden.includes(subject), `a colleague no longer sees "${subject}"`);
  await shot(colleague, "11-colleague-private");

  // Operators: the Plugins page, and an upgrade from a file without a restart.
  await page.goto(`${BASE}/plugins`);
  const section = page.getByRole("region", { name: /^imap/ });
  const text = await section.textContent();
  assert.match(text, /mailroom:provider@1\.1\.0/);
  assert.match(text, /sha256:[0-9a-f]{64}/);
  assert.match(text, /tls:\/\/\{imap_host\}:\{imap_port\}/);
  assert.match(text, /[1-9]\d* calls, \d+ errors, \d+ denied network accesses/);
  await page.getByLabel(/Plugin file/).setInputFiles({ name: "junk.wasm", mimeType: "application/wasm", buffer: Buffer.from("not a component") });
  await page.getByRole("button", { name: "Install" }).click();
  assert.match(await page.getByRole("alert").textContent(), /Not installed:.*unchanged/s);
  await page.getByLabel(/Plugin file/).setInputFiles(env("UPGRADE_PLUGIN"));
  await page.getByRole("button", { name: "Install" }).click();
  assert.match(await page.getByRole("status").textContent(), /Upgraded scripted from 1\.0\.0 to 1\.1\.0/);
  await page.getByRole("button", { name: "Roll back scripted to the version before" }).click();
  assert.match(await page.getByRole("status").textContent(), /Rolled scripted back from 1\.1\.0 to 1\.0\.0/);
  const changes = await page.getByRole("region", { name: "Changes" }).textContent();
  assert.match(changes, /rollback\s*scripted/);
  assert.match(changes, /upgrade\s*scripted/);
  await everyControlIsNamed(page, "Plugins");
  await shot(page, "12-plugins");

  // Sign out: the pages need a session again.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/login/);
  await page.goto(`${BASE}/deals`);
  assert.match(page.url(), /\/login\?next=/);
}

async function reauth() {
  const page = await signedIn(SALES);
  // The server refused the old password: red, with the reason, and a way out.
  for (let i = 0; i < 600 && (await badge(page).textContent()).trim() !== "Sign-in needed"; i++) {
    await page.waitForTimeout(100);
  }
  assert.equal((await badge(page).textContent()).trim(), "Sign-in needed");
  assert.match(await row(page).locator("[data-status]").textContent(), /refused the sign-in/);
  await shot(page, "13-sign-in-needed");
  await row(page).getByRole("button", { name: "Update authentication" }).click();
  const dialog = page.getByRole("dialog", { name: /Update authentication/ });
  await dialog.getByLabel("Password").fill("still-wrong");
  await dialog.getByRole("button", { name: "Sign in and resume" }).click();
  await page.getByRole("dialog", { name: /Update authentication/ }).getByRole("alert").filter({ hasText: "check the password" }).waitFor();
  await page.getByRole("dialog", { name: /Update authentication/ }).getByLabel("Password").fill(env("NEW_PASSWORD"));
  await page.getByRole("dialog", { name: /Update authentication/ }).getByRole("button", { name: "Sign in and resume" }).click();
  await page.waitForURL(`${BASE}/emails`);
  for (let i = 0; i < 600 && (await badge(page).textContent()).trim() !== "Active"; i++) {
    await page.waitForTimeout(100);
  }
  assert.equal((await badge(page).textContent()).trim(), "Active", "green again after updating authentication");
  assert.equal(await row(page).getByRole("button", { name: "Update authentication" }).count(), 0);
  await shot(page, "14-active-again");
}

try {
  if (phase === "sync") await sync();
  else if (phase === "reauth") await reauth();
  else throw new Error(`unknown phase ${phase}: sync or reauth`);
  assert.deepEqual(problems, [], "no page error and no script dialog");
  console.log(`browser: ${phase} passed; screenshots in ${ARTIFACTS}`);
} finally {
  await browser.close();
}
