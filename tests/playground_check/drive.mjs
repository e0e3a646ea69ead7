// Drives the local Teams client (scripts/playground) through the whole help-desk scenario in
// headless Debian Chromium, the way a person would click it, and takes screenshots.
// Not part of the test suite: it needs the bot and the playground running (docs/playground.md).
// `bash tests/playground_check/run` starts both for you, in both button modes, and runs this.
// Against a bot and client you already run (a fresh database: it expects the welcome):
//
//   cd tests/playground_check && npm ci && node drive.mjs [OUT_DIR]
//
// Env: PLAYGROUND_URL (default http://127.0.0.1:56150/), CHROMIUM (default /usr/bin/chromium).
// Exits 0 when every step saw what it expected, 1 otherwise. Writes OUT_DIR/NN-step.png (full
// window) and OUT_DIR/menu.png, transfer.png, summary.png (the chat pane only).
// No request leaves the machine: everything but loopback is aborted (the page asks a CDN for
// fonts and an animation; without them it falls back to local fonts).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.env.PLAYGROUND_URL || "http://127.0.0.1:56150/";
const outDir = process.argv[2] || join(tmpdir(), "switchboard-playground-shots");
const STEP_MS = 20_000;
mkdirSync(outDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "pg-chromium-"));

// a fresh profile every run (Playwright passes it as --user-data-dir)
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
await context.route("**/*", (route) => {
  const host = new URL(route.request().url()).hostname;
  return ["127.0.0.1", "localhost", "[::1]"].includes(host) ? route.continue() : route.abort();
});
const page = await context.newPage();
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));

let shot = 0;
let failures = 0;
const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);

async function snap(name) {
  shot += 1;
  const path = join(outDir, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path });
  return path;
}

// the chat pane: the column between the chat list and the log panel
async function snapChat(name) {
  const path = join(outDir, `${name}.png`);
  await page.screenshot({ path, clip: { x: 330, y: 48, width: 620, height: 852 } });
  return path;
}

const cards = () => page.locator(".ac-adaptiveCard");
const cardWith = (text) => cards().filter({ hasText: text }).last();

const count = (text) => page.getByText(text, { exact: false }).count();

// waits until `text` shows up once more than `before` times (so an older card with the same
// text does not count)
async function expectText(text, what, before = 0) {
  const deadline = Date.now() + STEP_MS;
  while (Date.now() < deadline) {
    if ((await count(text)) > before) {
      log("ok  ", what);
      return true;
    }
    await page.waitForTimeout(100);
  }
  failures += 1;
  log("FAIL", what, `(no new "${text}" within ${STEP_MS / 1000} s)`);
  await snap(`fail-${what.replace(/\W+/g, "-")}`);
  return false;
}

// does `act`, then expects a new `text`
async function step(what, text, act) {
  const before = await count(text);
  await act();
  return expectText(text, what, before);
}

async function answerInCard(prompt, answer) {
  const card = cardWith(prompt);
  await card.locator("textarea, input[type=text], input:not([type])").first().fill(answer);
  await card.getByRole("button", { name: "Send" }).click();
  log("     typed", JSON.stringify(answer), "in the card and pressed Send");
}

async function chooseInCard(prompt, choice) {
  const card = cardWith(prompt);
  await card.getByText(choice, { exact: true }).click();
  await card.getByRole("button", { name: "Send" }).click();
  log("     chose", JSON.stringify(choice), "and pressed Send");
}

async function typeInComposer(text) {
  // a Lexical editor: a contenteditable div, not an <input>
  const box = page.locator('[contenteditable="true"][role="textbox"]').last();
  await box.click();
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
  log("     typed", JSON.stringify(text), "in the compose box");
}

try {
  await page.goto(url, { waitUntil: "domcontentloaded" });
  // opening the page installs the app: the bot greets and asks its first question
  await expectText("welcome to the Service Desk", "welcome card on install");
  await expectText("What do you need help with today", "first question");
  await snap("welcome");

  if (await step("menu card", "Which department should handle this?", () =>
    answerInCard("What do you need help with today", "My payslip shows the wrong tax code"))) {
    await page.waitForTimeout(500);
    await snap("menu");
    await snapChat("menu");
  }

  await step("transfer card", "Moving you from Service Desk to HR", async () => {
    await cardWith("Which department should handle this?")
      .getByRole("button", { name: "HR", exact: true }).click();
    log("     pressed HR");
  });
  if (await expectText("What is your employee number?", "HR's first question")) {
    await page.waitForTimeout(500);
    await snap("transfer");
    await snapChat("transfer");
  }

  // With Action.Submit the answered menu card keeps its buttons: pressing one now must not
  // transfer again. With Action.Execute the bot's invoke response replaced it ("✔ HR").
  const oldIt = cardWith("Which department should handle this?")
    .getByRole("button", { name: "IT", exact: true });
  if (await oldIt.count()) {
    await step("an old card's button is refused", "from an earlier step", async () => {
      await oldIt.click();
      log("     pressed IT on the old menu card");
    });
  } else if (await cardWith("Which department should handle this?").getByText("\u2714 HR").count()) {
    log("ok  ", "the answered menu card was replaced by \"\u2714 HR\" (no buttons left)");
  } else {
    failures += 1;
    log("FAIL", "the answered menu card has neither its buttons nor the choice");
  }
  await step("a wrong employee number is refused", "That doesn't look right", () =>
    answerInCard("What is your employee number?", "12345"));
  await step("HR's second question", "Which topic is it about?", () =>
    answerInCard("What is your employee number?", "E12345"));
  if (await step("summary card", "HR has your request", () =>
    chooseInCard("Which topic is it about?", "Payroll"))) {
    await page.waitForTimeout(1000);
    await snap("summary");
    await snapChat("summary");
  }

  // after the end, a new message starts a new chat; `help` says where you are
  await step("saying hi starts a new chat", "What do you need help with today", () =>
    typeInComposer("hi"));
  await step("help card", "You're talking to Service Desk", () => typeInComposer("help"));
  await snap("after-help");
} catch (e) {
  failures += 1;
  log("FAIL", "the script stopped:", e.message.split("\n")[0]);
  await snap("stopped").catch(() => {});
} finally {
  if (pageErrors.length) log("page errors:", pageErrors);
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
log(failures ? `${failures} step(s) failed` : "every step passed", `- screenshots in ${outDir}`);
process.exit(failures ? 1 : 0);
