// Drives two local Teams clients (scripts/playground) against one bot in headless Debian
// Chromium, the way two people would click them, and takes screenshots:
//
//   - Helen Brooks, HR's agent (.m365agentsplayground.helen.yml), opens her client first, so
//     the bot learns how to reach her ("You're an agent of HR");
//   - Jordan Rivera, the guest (.m365agentsplayground.yml): need, FAQ card ("I still need
//     help"), menu, HR, employee number, topic "Something else" -> waiting for an agent;
//   - Helen gets the offer card and presses Accept; each sees the other's message; Helen types
//     `end`; Jordan gets HR's summary and the feedback card, rates 5, and the chat ends;
//   - a second chat without an agent (topic Payroll, feedback skipped), then `help`.
//
// Not part of the test suite: it needs the bot and both clients running (docs/playground.md).
// `bash tests/playground_check/run` starts them for you, in both button modes, and runs this.
// Against a bot and clients you already run (a fresh database: it expects the welcomes):
//
//   cd tests/playground_check && npm ci && node drive.mjs [OUT_DIR]
//
// Env: PLAYGROUND_URL (the guest's client, default http://127.0.0.1:56150/),
//      PLAYGROUND_AGENT_URL (Helen's client, default http://127.0.0.1:56151/),
//      CHROMIUM (default /usr/bin/chromium), STEP_SECONDS (how long a step may take, default 20).
// Exits 0 when every step saw what it expected, 1 otherwise. Writes OUT_DIR/NN-who-step.png
// (full windows: 02-helen-offer.png and 03-jordan-agent-chat.png are docs/playground-offer.png
// and docs/playground-agent-chat.png) and the chat panes OUT_DIR/faq.png, menu.png,
// transfer.png, offer.png, agent-accepted.png, agent-desk.png, agent-chat.png, feedback.png.
// No request leaves the machine: everything but loopback is aborted (the page asks a CDN for
// fonts and an animation; without them it falls back to local fonts).
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const guestUrl = process.env.PLAYGROUND_URL || "http://127.0.0.1:56150/";
const agentUrl = process.env.PLAYGROUND_AGENT_URL || "http://127.0.0.1:56151/";
const outDir = process.argv[2] || join(tmpdir(), "switchboard-playground-shots");
const STEP_MS = Number(process.env.STEP_SECONDS || 20) * 1000;
mkdirSync(outDir, { recursive: true });

const NEED = "My payslip shows the wrong tax code";
const GUEST_SAYS = "Hello, my tax code changed to BR this month";
const AGENT_SAYS = "Hi Jordan, I can see it: I'll ask payroll to fix it today";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

let shot = 0;
let failures = 0;
const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);
const fail = (...a) => { failures += 1; log("FAIL", ...a); };

// one person's browser window (its own context: no shared storage, both render at once)
async function openClient(who, url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.route("**/*", (route) => {
    const host = new URL(route.request().url()).hostname;
    return ["127.0.0.1", "localhost", "[::1]"].includes(host) ? route.continue() : route.abort();
  });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const c = { who, url, page, context, errors };

  c.snap = async (name) => {
    shot += 1;
    const path = join(outDir, `${String(shot).padStart(2, "0")}-${who}-${name}.png`);
    await page.screenshot({ path });
    return path;
  };
  // the chat pane: the column between the chat list and the log panel
  c.snapChat = async (name) => {
    const path = join(outDir, `${name}.png`);
    await page.screenshot({ path, clip: { x: 330, y: 48, width: 620, height: 852 } });
    return path;
  };
  c.cards = () => page.locator(".ac-adaptiveCard");
  c.cardWith = (text) => c.cards().filter({ hasText: text }).last();
  c.count = (text) => page.getByText(text, { exact: false }).count();

  // waits until `text` shows up once more than `before` times (so an older card with the
  // same text does not count)
  c.expectText = async (text, what, before = 0) => {
    const deadline = Date.now() + STEP_MS;
    while (Date.now() < deadline) {
      if ((await c.count(text)) > before) {
        log("ok  ", `[${who}]`, what);
        return true;
      }
      await page.waitForTimeout(100);
    }
    fail(`[${who}]`, what, `(no new "${text}" within ${STEP_MS / 1000} s)`);
    await c.snap(`fail-${what.replace(/\W+/g, "-")}`);
    return false;
  };
  // does `act`, then expects a new `text`
  c.step = async (what, text, act) => {
    const before = await c.count(text);
    await act();
    return c.expectText(text, what, before);
  };
  c.answerInCard = async (prompt, answer) => {
    const card = c.cardWith(prompt);
    await card.locator("textarea, input[type=text], input:not([type])").first().fill(answer);
    await card.getByRole("button", { name: "Send" }).click();
    log("    ", `[${who}]`, "typed", JSON.stringify(answer), "in the card and pressed Send");
  };
  c.chooseInCard = async (prompt, choice) => {
    const card = c.cardWith(prompt);
    await card.getByText(choice, { exact: true }).click();
    await card.getByRole("button", { name: "Send" }).click();
    log("    ", `[${who}]`, "chose", JSON.stringify(choice), "and pressed Send");
  };
  c.press = async (prompt, button) => {
    await c.cardWith(prompt).getByRole("button", { name: button, exact: true }).click();
    log("    ", `[${who}]`, "pressed", JSON.stringify(button));
  };
  c.type = async (text) => {
    // a Lexical editor: a contenteditable div, not an <input>
    const box = page.locator('[contenteditable="true"][role="textbox"]').last();
    await box.click();
    await page.keyboard.type(text);
    await page.keyboard.press("Enter");
    log("    ", `[${who}]`, "typed", JSON.stringify(text), "in the compose box");
  };
  c.close = async () => {
    if (errors.length) log(`[${who}] page errors:`, errors);
    await context.close();
  };
  return c;
}

let faqShot = false;
// After the need: the FAQ card when the knowledge base has a match ("I still need help" goes
// on), else the menu at once. Returns when the menu is there.
async function pastTheFaq(guest, what) {
  const faq = "These articles may answer your question";
  const menu = "Which department should handle this?";
  const [faqBefore, menuBefore] = [await guest.count(faq), await guest.count(menu)];
  await guest.answerInCard("What do you need help with today", NEED);
  const deadline = Date.now() + STEP_MS;
  while (Date.now() < deadline) {
    if ((await guest.count(menu)) > menuBefore) {
      log("ok  ", `[${guest.who}]`, what, "(no FAQ card: straight to the menu)");
      return true;
    }
    if ((await guest.count(faq)) > faqBefore) {
      log("ok  ", `[${guest.who}]`, "FAQ card");
      await guest.page.waitForTimeout(300);
      if (!faqShot) await guest.snapChat("faq");
      faqShot = true;
      return guest.step(what, menu, () => guest.press(faq, "I still need help"));
    }
    await guest.page.waitForTimeout(100);
  }
  fail(`[${guest.who}]`, what, "(neither the FAQ card nor the menu came)");
  await guest.snap("fail-faq-or-menu");
  return false;
}

// With Action.Submit an answered card keeps its buttons; with Action.Execute the bot's invoke
// response replaced it ("✔ <choice>").
async function answered(c, prompt, choice) {
  const card = c.cardWith(prompt);
  if (await card.getByText(`\u2714 ${choice}`).count()) {
    log("ok  ", `[${c.who}]`, `the answered card was replaced by "\u2714 ${choice}"`);
    return "replaced";
  }
  return "kept";
}

let helen;
let jordan;
try {
  // -- Helen opens her client first: the bot learns how to reach her -----------------------
  helen = await openClient("helen", agentUrl);
  await helen.page.goto(agentUrl, { waitUntil: "domcontentloaded" });
  await helen.expectText("You're an agent of HR", "agent welcome on install");
  await helen.step("agent help card", "status available|away|offline", () => helen.type("help"));
  await helen.step("nobody is waiting yet", "Nobody is waiting", () => helen.type("waiting"));

  // -- the guest: need, FAQ, menu, HR ------------------------------------------------------
  jordan = await openClient("jordan", guestUrl);
  await jordan.page.goto(guestUrl, { waitUntil: "domcontentloaded" });
  await jordan.expectText("welcome to the Service Desk", "welcome card on install");
  await jordan.expectText("What do you need help with today", "first question");
  await jordan.snap("welcome");

  if (await pastTheFaq(jordan, "menu card")) {
    await jordan.page.waitForTimeout(500);
    await jordan.snapChat("menu");
  }
  await jordan.step("transfer card", "Moving you from Service Desk to HR", () =>
    jordan.press("Which department should handle this?", "HR"));
  if ((await jordan.count("HR is closed right now")) > 0) {
    fail("[jordan] HR is closed now (its opening hours, London time): the rest can't be " +
      "checked. `bash tests/playground_check/run` uses a copy of the config with HR always " +
      "open when it sees HR closed.");
    throw new Error("HR is closed");
  }
  if (await jordan.expectText("What is your employee number?", "HR's first question")) {
    await jordan.page.waitForTimeout(500);
    await jordan.snapChat("transfer");
  }
  const oldIt = jordan.cardWith("Which department should handle this?")
    .getByRole("button", { name: "IT", exact: true });
  if (await oldIt.count()) {
    await jordan.step("an old card's button is refused", "from an earlier step", async () => {
      await oldIt.click();
      log("    ", "[jordan] pressed IT on the old menu card");
    });
  } else if (await answered(jordan, "Which department should handle this?", "HR") !== "replaced") {
    fail("[jordan] the answered menu card has neither its buttons nor the choice");
  }
  await jordan.step("a wrong employee number is refused", "That doesn't look right", () =>
    jordan.answerInCard("What is your employee number?", "12345"));
  await jordan.step("HR's second question", "Which topic is it about?", () =>
    jordan.answerInCard("What is your employee number?", "E12345"));

  // -- "Something else": wait for an agent; Helen gets the offer ---------------------------
  await jordan.step("waiting for an agent", "Connecting you with someone from HR", () =>
    jordan.chooseInCard("Which topic is it about?", "Something else"));
  if (await helen.expectText("New chat waiting in HR", "offer card")) {
    const offer = helen.cardWith("New chat waiting in HR");
    const expect = [
      ["Jordan Rivera", "the guest's name"],
      ["Service Desk", "transferred from Service Desk"],
      [NEED, "the answers so far (the request)"],
      ["E12345", "the answers so far (the employee number)"],
      ["Earlier in this chat", "the earlier messages"],
      // the guest's own words among them, not "(card response)"
      [`Jordan Rivera: ${NEED}`, "the guest's request among the earlier messages"],
    ];
    for (const [text, what] of expect) {
      if (await offer.getByText(text, { exact: false }).count()) {
        log("ok  ", "[helen] offer:", what);
      } else {
        fail("[helen] offer card lacks", what, JSON.stringify(text));
      }
    }
    await helen.page.waitForTimeout(500);
    await helen.snapChat("offer");
    await helen.snap("offer");
  }
  const joined = jordan.count("You're now chatting with Helen Brooks");
  await helen.step("Accept: the offer becomes the chat card", "You're chatting with Jordan Rivera",
    () => helen.press("New chat waiting in HR", "Accept"));
  await jordan.expectText("You're now chatting with Helen Brooks", "the guest is told who joined",
    await joined);
  await helen.snapChat("agent-accepted");

  // -- the chat: each sees the other's message, marked with who said it --------------------
  await jordan.type(GUEST_SAYS);
  await helen.expectText(`Jordan Rivera: ${GUEST_SAYS}`, "the guest's message, relayed");
  await helen.type(AGENT_SAYS);
  await jordan.expectText(`Helen Brooks: ${AGENT_SAYS}`, "Helen's message, relayed");
  await helen.page.waitForTimeout(500);
  await helen.snapChat("agent-desk");
  await jordan.page.waitForTimeout(500);
  await jordan.snapChat("agent-chat");
  await jordan.snap("agent-chat");

  // -- Helen ends it: HR's summary, the feedback card, rated 5 -----------------------------
  await helen.step("end", "Your chat with Jordan Rivera has ended", () => helen.type("end"));
  await jordan.expectText("HR has your request", "HR's summary card");
  const rate = "How did we do?";
  if (await jordan.expectText(rate, "feedback card")) {
    await jordan.page.waitForTimeout(300);
    await jordan.snapChat("feedback");
  }
  await jordan.step("rated 5: thanks, the end", "Thank you for your feedback", () =>
    jordan.chooseInCard(rate, "5 - Excellent"));
  if (await answered(jordan, rate, "5/5 - Excellent") === "kept") {
    log("    ", "[jordan] (Action.Submit: the feedback card keeps its buttons)");
  }
  await helen.step("nobody is waiting any more", "Nobody is waiting", () => helen.type("waiting"));

  // -- a second chat, no agent: Payroll -> summary -> feedback skipped -----------------------
  await jordan.step("saying hi starts a new chat", "What do you need help with today", () =>
    jordan.type("hi"));
  await pastTheFaq(jordan, "menu card (second chat)");
  await jordan.step("transfer card (second chat)", "What is your employee number?", () =>
    jordan.press("Which department should handle this?", "HR"));
  await jordan.step("HR's second question (second chat)", "Which topic is it about?", () =>
    jordan.answerInCard("What is your employee number?", "e54321"));
  await jordan.step("Payroll: the summary card, no agent", "HR has your request", () =>
    jordan.chooseInCard("Which topic is it about?", "Payroll"));
  await jordan.expectText(rate, "feedback card (second chat)", 1);
  // Skip ends the chat without a word: the next message starts a new one
  const ask = "What do you need help with today";
  await jordan.step("feedback skipped: the chat ends", ask, async () => {
    await jordan.press(rate, "Skip");
    await jordan.page.waitForTimeout(1000);
    await jordan.type("hi");
  });
  await jordan.step("help card", "You're talking to Service Desk", () => jordan.type("help"));
  await jordan.snap("after-help");
} catch (e) {
  failures += 1;
  log("FAIL", "the script stopped:", e.message.split("\n")[0]);
  await jordan?.snap("stopped").catch(() => {});
  await helen?.snap("stopped").catch(() => {});
} finally {
  await helen?.close();
  await jordan?.close();
  await browser.close();
}
log(failures ? `${failures} step(s) failed` : "every step passed", `- screenshots in ${outDir}`);
process.exit(failures ? 1 : 0);
