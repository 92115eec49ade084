"""The share landing page: viewing never consumes a use, the Download button does, and a real
browser (headless Chromium) can use it."""

import os
import shutil
import time

import pytest
import requests

from test_shares import api, mint


def test_viewing_does_not_consume_and_the_button_does(server, s3, bucket):
    hostile = "plans/<img src=x onerror=alert(1)>.pdf"
    s3.put_object(Bucket=bucket, Key=hostile, Body=b"%PDF roof plans" * 100)
    link = mint(server, bucket, hostile)
    for _ in range(3):  # a mail scanner, a chat previewer, the recipient
        page = requests.get(link["url"], timeout=10)
        assert page.status_code == 200
        assert "&lt;img src=x onerror=alert(1)&gt;.pdf" in page.text and "<img" not in page.text
        assert "1.5 KiB" in page.text and "1 of 1" in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert api(server, "GET", f"/-/shares/{link['id']}").json()["uses_left"] == 1

    taken = requests.post(link["url"], timeout=10)
    assert taken.status_code == 200 and taken.content == b"%PDF roof plans" * 100
    assert taken.headers["Content-Disposition"].startswith("attachment;")

    gone = requests.get(link["url"], timeout=10)
    again = requests.post(link["url"], timeout=10)
    unknown = requests.get(f"{server.endpoint}/-/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", timeout=10)
    assert gone.status_code == again.status_code == unknown.status_code == 403
    assert gone.text == again.text == unknown.text


def browser():
    """Headless Chromium through its WebDriver, or a loud skip when it is not installed."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("!!! chromium/chromedriver not installed: the browser test did NOT run !!!")
    os.environ["SE_OFFLINE"] = "true"  # Selenium must not try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]:
        options.add_argument(flag)
    return webdriver, options, Service(executable_path=driver)


def test_a_browser_renders_the_page_and_downloads_with_the_button(server, s3, bucket, tmp_path):
    webdriver, options, service = browser()
    from selenium.webdriver.common.by import By

    payload = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="exports/customers.csv", Body=payload, ContentType="text/csv")
    link = mint(server, bucket, "exports/customers.csv")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    chrome = webdriver.Chrome(service=service, options=options)
    try:
        chrome.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        chrome.get(link["url"])
        assert chrome.find_element(By.ID, "name").text == "customers.csv"
        assert chrome.find_element(By.ID, "uses").text == "1 of 1"
        chrome.save_screenshot(str(tmp_path / "landing.png"))
        assert api(server, "GET", f"/-/shares/{link['id']}").json()["uses_left"] == 1

        chrome.find_element(By.ID, "download").click()
        target = downloads / "customers.csv"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (target.exists() and target.stat().st_size == len(payload)):
            time.sleep(0.1)
        assert target.read_bytes() == payload
        assert api(server, "GET", f"/-/shares/{link['id']}").json()["uses_left"] == 0

        chrome.get(link["url"])
        assert "This link is not valid" in chrome.page_source
    finally:
        chrome.quit()


def test_a_browser_uploads_through_an_upload_links_form(server, s3, bucket, tmp_path):
    webdriver, options, service = browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    resp = api(server, "POST", "/-/shares", {"method": "PUT", "bucket": bucket, "prefix": "requests/",
                                             "content_types": ["text/csv"]})
    link = resp.json()
    report = tmp_path / "expenses.csv"
    report.write_bytes(b"date,amount\n" + b"2026-11-21,12.50\n" * 5000)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    chrome = webdriver.Chrome(service=service, options=options)
    try:
        chrome.get(link["url"])
        assert chrome.find_element(By.ID, "uses").text == "1 of 1"
        chrome.find_element(By.ID, "file").send_keys(str(report))
        chrome.find_element(By.ID, "upload").click()
        received = WebDriverWait(chrome, 20).until(lambda c: c.find_element(By.ID, "received"))
        assert received.text.startswith("expenses.csv (")
        stored = s3.get_object(Bucket=bucket, Key="requests/expenses.csv")
        assert stored["Body"].read() == report.read_bytes() and stored["ContentType"] == "text/csv"
        chrome.get(link["url"])
        assert "This link is not valid" in chrome.page_source
    finally:
        chrome.quit()
