"""The `advseg serve` page in a real headless browser: upload a photo, draw a stroke, Colour, and
save a screenshot (docs/images/serve-page.png). tests/test_serve_browser.py drives the page with
the same helpers.

    python scripts/serve_screenshot.py [--bundle B] [--photo P] [--out docs/images/serve-page.png]

Needs the serve extra, selenium, and Debian's chromium + chromedriver (or CHROMIUM / CHROMEDRIVER
set to their paths).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "images" / "serve-page.png"

#: The result image's pixels, read back through a canvas: size, and the spread of its colours.
_PIXEL_STATS_JS = """
const img = document.getElementById(arguments[0]);
if (!img || !img.complete || !img.naturalWidth) return null;
const c = document.createElement("canvas"); c.width = img.naturalWidth; c.height = img.naturalHeight;
const ctx = c.getContext("2d"); ctx.drawImage(img, 0, 0);
const d = ctx.getImageData(0, 0, c.width, c.height).data;
const colours = new Set(); let lo = 255, hi = 0;
for (let i = 0; i < d.length; i += 4 * 7) {
  colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  lo = Math.min(lo, d[i], d[i + 1], d[i + 2]); hi = Math.max(hi, d[i], d[i + 1], d[i + 2]);
}
return {width: c.width, height: c.height, colours: colours.size, lo: lo, hi: hi};
"""
#: Dark pixels on the drawing canvas (the black lines a pen stroke adds).
_DARK_PIXELS_JS = """
const c = document.getElementById("base"); const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 16 && d[i + 1] < 16 && d[i + 2] < 16) n++;
return n;
"""
#: Opaque pixels on the hint layer (colour strokes and dots).
_HINT_PIXELS_JS = """
const c = document.getElementById("hints"); const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 127) n++;
return n;
"""


def find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or a sentence saying what is missing."""
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not Path(chromium).exists():
        return "no chromium browser found (apt-get install chromium, or set CHROMIUM)"
    if not driver or not Path(driver).exists():
        return "no chromedriver found (apt-get install chromium-driver, or set CHROMEDRIVER)"
    return chromium, driver


def open_browser(chromium: str, driver: str, size: tuple[int, int] = (1360, 960)) -> Any:
    """Headless chromium through chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.add_argument(f"--window-size={size[0]},{size[1]}")
    return webdriver.Chrome(service=Service(driver), options=opts)


def draw(browser: Any, tool: str, path: list[tuple[int, int]]) -> None:
    """Pick ``tool`` (pen, hint, eraser) and drag along ``path`` (offsets from the canvas centre)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, f"input[name=tool][value={tool}]").click()
    canvas = browser.find_element(By.ID, "hints")
    chain = ActionChains(browser).move_to_element_with_offset(canvas, *path[0]).click_and_hold()
    last = path[0]
    for p in path[1:]:
        chain = chain.move_by_offset(p[0] - last[0], p[1] - last[1]).pause(0.02)
        last = p
    chain.release().perform()


def colour_on_page(browser: Any, url: str, photo: Path, timeout: float = 120) -> dict[str, Any]:
    """Load the page, upload ``photo``, draw a black stroke (and a colour-hint stroke when the
    model takes hints), click Colour and wait for the result. Returns what happened."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url + "/")
    wait = WebDriverWait(browser, timeout)
    wait.until(lambda b: "loading" not in b.find_element(By.ID, "model-info").text)
    accepts_hints = "no-hints" not in (browser.find_element(By.TAG_NAME, "body").get_attribute("class") or "")
    hint_tool = browser.find_element(By.CSS_SELECTOR, "input[name=tool][value=hint]")
    browser.find_element(By.ID, "file").send_keys(str(Path(photo).resolve()))
    wait.until(lambda b: b.find_element(By.ID, "status").text.startswith("Loaded " + Path(photo).name))
    dark_before = browser.execute_script(_DARK_PIXELS_JS)
    draw(browser, "pen", [(-160, -60), (-80, -40), (0, -50), (80, -20), (150, -30)])
    dark_after = browser.execute_script(_DARK_PIXELS_JS)
    hint_pixels = 0
    if accepts_hints:
        draw(browser, "hint", [(-120, 60), (-60, 70), (0, 65), (60, 80)])
        hint_pixels = browser.execute_script(_HINT_PIXELS_JS)
    browser.find_element(By.ID, "colour").click()
    wait.until(ec.visibility_of_element_located((By.ID, "colour-img")))
    wait.until(lambda b: b.execute_script(_PIXEL_STATS_JS, "colour-img"))
    return {
        "accepts_hints": accepts_hints,
        "hint_tool_visible": hint_tool.is_displayed(),
        "dark_pixels_added": dark_after - dark_before,
        "hint_pixels": hint_pixels,
        "result": browser.execute_script(_PIXEL_STATS_JS, "colour-img"),
        "sketch": browser.execute_script(_PIXEL_STATS_JS, "sketch-img"),
        "status": browser.find_element(By.ID, "status").text,
        "download": browser.find_element(By.ID, "download").get_attribute("href"),
    }


def _default_photo() -> Path:
    from advseg_sdk import assets

    photos = assets.photo_paths()
    by_name = {p.name: p for p in photos}
    return by_name.get("LadyBird.jpg") or photos[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=None, help="sketch2color bundle (default: the embedded one)")
    ap.add_argument("--photo", type=Path, default=None, help="photo to upload (default: one from the asset cache)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    found = find_browser()
    if isinstance(found, str):
        print(f"error: {found}", file=sys.stderr)
        return 1
    from advseg_sdk.serve import create_app
    from advseg_sdk.serve.app import serve_in_thread

    photo = args.photo or _default_photo()
    app = create_app(bundle=args.bundle, workers=1)
    browser = open_browser(*found)
    try:
        with serve_in_thread(app) as url:
            t0 = time.monotonic()
            seen = colour_on_page(browser, url, photo)
            browser.execute_script("window.scrollTo(0, 0)")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(args.out))
    finally:
        browser.quit()
    print(f"{args.out}: {photo.name}, {seen['status']!r} ({time.monotonic() - t0:.1f} s), result {seen['result']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
