"""Make docs/images/explore.png from a page written by `rnnlab explore`, in headless Chromium.

    rnnlab explore runs/char --chars 2000 --out explore.html
    python docs/explore_screenshot.py explore.html docs/images/explore.png "indentation"

Picks the best unit the search lists for the feature, clicks a character for its connectivity,
colours the text by the unit again, and hovers a character for its top 5.
"""
import sys

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(page_path: str, out: str, feature: str = "indentation", click: int = 560, hover: int = 548) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        page.goto("file://" + __import__("os").path.abspath(page_path))
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        page.locator("#unit-list h3", has_text=feature).locator("xpath=following-sibling::button[1]").click()
        page.locator("#text span.ch").nth(click).click()
        page.select_option("#mode", "unit")
        page.locator("#text span.ch").nth(hover).hover()
        page.screenshot(path=out)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3], *sys.argv[3:4])
