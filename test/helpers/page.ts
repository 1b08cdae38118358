// A rendered trace page as a reader sees it in Chromium, with no network.
import fs from "node:fs";
import { ARTIFACTS, missing } from "./env";

export const CHROMIUM = "/usr/bin/chromium";
export const noBrowser = missing("chromium");

export interface PageView {
  arrows: number;
  lanes: number;
  violations: string[];
  violationStroke: string | null;
  errors: string[];
  detailAfterClick: string;
}

/** Opens a page with no network and reports what a reader would see. */
export async function openPage(file: string, screenshot: string): Promise<PageView> {
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const ctx = await browser.newContext({ viewport: { width: 1800, height: 1200 } });
    // Self-contained means nothing but the file itself is ever asked for.
    const requests: string[] = [];
    await ctx.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith("file://")) return route.continue();
      requests.push(url);
      return route.abort();
    });
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto("file://" + file);
    const arrows = await page.locator("#diagram g.arrow").count();
    const lanes = await page.locator("#diagram g.lane").count();
    // An arrow's own label; its rule links (text.rule) are looked at by followViolatedRule.
    const violations = await page.locator("#diagram g.arrow.violation text:not(.time):not(.rule)").allTextContents();
    const violationStroke = violations.length
      ? await page.locator("#diagram g.arrow.violation line").first().evaluate((el) => getComputedStyle(el).stroke)
      : null;
    await page.locator("#diagram g.arrow").first().click();
    const detailAfterClick = (await page.locator("#detail").textContent()) ?? "";
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    return { arrows, lanes, violations, violationStroke, errors: [...errors, ...requests.map((u) => `network request: ${u}`)], detailAfterClick };
  } finally {
    await browser.close();
  }
}

