// `make demo`'s last step: sign in to the demo in Debian's Chromium, land on
// the Connected emails page, check that it shows the synced account, and
// save a screenshot of it and of the deal's Emails tab.
// Usage: node demo.mjs BASE EMAIL PASSWORD DEAL_ID OUT_DIR
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, email, password, deal, out] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  await page.goto(base);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/emails`);
  const status = (await page.locator("[data-status] .badge").first().textContent()).trim();
  if (status !== "Active") throw new Error(`the demo account is ${status}, not Active`);
  await page.screenshot({ path: join(out, "connected-emails.png") });
  await page.goto(`${base}/deals/${deal}?tab=emails`);
  await page.screenshot({ path: join(out, "deal-emails.png") });
  console.log(`the browser opened on Connected emails (${status}); screenshots: ${out}/connected-emails.png, ${out}/deal-emails.png`);
} finally {
  await browser.close();
}
