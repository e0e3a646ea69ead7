"""A real browser for the console's tests: Debian's Chromium (`apt install chromium`, done by
scripts/setup), driven by Playwright's Python API pointed at that executable. Playwright's
own browser download is never used. Every page records what its console says, so a test
can ask for no errors."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from playwright.async_api import Browser, BrowserContext, Page, async_playwright


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise AssertionError("Debian's chromium is not installed: run `bash scripts/setup "
                             "--with-node` (it installs it), or `apt-get install chromium`")
    return path


@dataclass
class Tab:
    page: Page
    errors: list[str] = field(default_factory=list)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            await browser.close()


async def new_context(browser: Browser, **options: object) -> BrowserContext:
    return await browser.new_context(viewport={"width": 1500, "height": 1000}, **options)


async def open_tab(context: BrowserContext, url: str) -> Tab:
    page = await context.new_page()
    tab = Tab(page)
    page.on("console", lambda message: tab.errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    await page.goto(url)
    return tab
