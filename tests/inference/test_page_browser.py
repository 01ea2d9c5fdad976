"""The status page in a real browser (Debian's chromium, driven through chromium-driver)."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest

from tests.inference.serving import serving, store_of
from tests.support.versions import publish_perturbed_version

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# No first-run work, no update checks, no network of its own: the page must work from the app alone.
HEADLESS_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs chromium and chromium-driver (make system-deps)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in HEADLESS_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_shows_the_served_version_and_its_form_returns_a_score(settings, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    publish_perturbed_version(store_of(settings), settings.base_model, seed=1)
    with serving(settings) as server:
        expected = httpx.post(f"{server.url}/v1/predict", json={"instances": [{"text": "a quiet drama"}]}).json()
        browser.get(f"{server.url}/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda driver: driver.find_element(By.ID, "served-version").text == "v1")
        wait.until(lambda driver: "v1 (served)" in driver.find_element(By.ID, "lineage").text)
        text_field = browser.find_element(By.ID, "text")
        text_field.clear()
        text_field.send_keys("a quiet drama")
        browser.find_element(By.ID, "context").clear()
        browser.find_element(By.CSS_SELECTOR, "#predict-form button").click()
        wait.until(lambda driver: driver.find_element(By.ID, "prediction").text.startswith("score "))
        shown = browser.find_element(By.ID, "prediction").text
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert shown == f"score {expected['predictions'][0]['score']:.4f} by v1"
    assert errors == []  # no failed asset, no script error


def test_the_page_says_when_version_0_is_untrained(settings, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with serving(settings) as server:
        browser.get(f"{server.url}/")
        WebDriverWait(browser, 60).until(lambda driver: "untrained" in driver.find_element(By.ID, "trained-note").text)
        assert browser.find_element(By.ID, "served-version").text == "v0"


def test_the_page_is_off_when_model_information_is_private(settings):
    with serving(settings, public_model_info=False) as server:
        page = httpx.get(f"{server.url}/")
        asset = httpx.get(f"{server.url}/static/page.js")
    assert page.status_code == 403 and "STREAMTUNE_PUBLIC_MODEL_INFO" in page.json()["detail"]
    assert asset.status_code == 404
