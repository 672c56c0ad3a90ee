"""The `advseg serve` page in a real headless browser (chromium + chromedriver): load it, upload a
real photo, draw a stroke, Colour, and check that a colour image appears (its pixels read back
through a canvas). Skipped, saying why, where no browser is installed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra (pip install -e '.[serve]')")
pytest.importorskip("selenium", reason="needs selenium (the dev extra)")

from advseg_sdk.serve import create_app  # noqa: E402
from advseg_sdk.serve.app import serve_in_thread  # noqa: E402
from scripts.serve_screenshot import colour_on_page, find_browser, open_browser  # noqa: E402

FOUND = find_browser()
pytestmark = pytest.mark.skipif(isinstance(FOUND, str), reason=f"browser test: {FOUND}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert not isinstance(FOUND, str)
    b = open_browser(*FOUND)
    try:
        yield b
    finally:
        b.quit()


@pytest.mark.real_assets
def test_the_page_colours_an_uploaded_photo_with_a_drawn_stroke(browser: Any, photo_paths):
    app = create_app(workers=1)  # the embedded default bundle
    accepts_hints = app.state.service.summary["accepts_hints"]
    with serve_in_thread(app) as url:
        seen = colour_on_page(browser, url, photo_paths[0])
        logs = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert seen["status"].startswith("Done"), seen
    assert seen["accepts_hints"] == accepts_hints
    assert seen["hint_tool_visible"] == accepts_hints  # the hint control is hidden for a model without hints
    assert seen["dark_pixels_added"] > 50  # the stroke drew black lines on the canvas
    if accepts_hints:
        assert seen["hint_pixels"] > 50
    result = seen["result"]
    assert result and result["width"] >= 64 and result["height"] >= 64
    assert result["colours"] > 50 and result["hi"] - result["lo"] > 40, result  # not one flat colour
    assert seen["sketch"] and seen["sketch"]["width"] == result["width"]  # the photo's sketch is shown
    assert seen["download"].startswith("blob:")
    assert logs == []


def test_a_drawing_on_a_blank_canvas_with_a_model_without_hints(browser: Any, tmp_path_factory):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from test_bundle import export_onnx, local_convnet, make_bundle

    from scripts.serve_screenshot import _PIXEL_STATS_JS, draw

    root = tmp_path_factory.mktemp("browser_tiny")
    spec = {"name": "input", "layout": "NCHW", "channels": 3, "color": "RGB", "range": [-1, 1], "size_multiple": 2}
    bundle = make_bundle(root / "tiny.advseg", {"fp32": export_onnx(local_convnet(seed=2), root / "t.onnx")}, spec)
    with serve_in_thread(create_app(bundle=bundle, workers=1)) as url:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: "no hints" in b.find_element(By.ID, "model-info").text)
        assert not browser.find_element(By.CSS_SELECTOR, "input[name=tool][value=hint]").is_displayed()
        assert not browser.find_element(By.ID, "hint-color").is_displayed()
        browser.find_element(By.ID, "blank").click()
        assert browser.find_element(By.CSS_SELECTOR, "input[name=kind][value=sketch]").is_selected()
        draw(browser, "pen", [(-100, -100), (100, -80), (60, 90), (-90, 60), (-100, -100)])
        browser.find_element(By.ID, "colour").click()
        wait.until(lambda b: b.execute_script(_PIXEL_STATS_JS, "colour-img"))
        result = browser.execute_script(_PIXEL_STATS_JS, "colour-img")
        status = browser.find_element(By.ID, "status").text
    assert status.startswith("Done") and "512 × 512" in status, status
    assert (result["width"], result["height"]) == (512, 512) and result["colours"] > 1
    assert not browser.find_element(By.ID, "sketch-fig").is_displayed()  # a sketch has no sketch to show
