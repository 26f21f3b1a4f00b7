"""The `qa serve` page in a real browser: Debian's chromium driven through its chromedriver.

Everything is done with the keyboard (typing, Tab, Enter), as a keyboard-only user would.
Set QA_SCREENSHOT=path/to.png to keep the screenshot (docs/serve.png is made this way).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed (pip install -e '.[test]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install -e '.[test]')")
pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")

from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from conftest import CHROMEDRIVER, CHROMIUM, NO_BROWSER, REPO, run_qa, seed_models, start_chromium  # noqa: E402
from qa.answer import Bot  # noqa: E402
from qa.serve import ServerThread, create_app  # noqa: E402

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=NO_BROWSER)

# An article whose title, text and url try to run script in the page. Each payload sets a flag.
HOSTILE = {
    "title": "<script>window.__qa_pwned = 'title'</script>Millbrook Festival Draws Crowds",
    "date": "2026-11-20",
    "url": "javascript:window.__qa_pwned='url'",
    "text": (
        "The Millbrook festival drew twelve thousand visitors this weekend, organisers said "
        "<script>window.__qa_pwned = 'script'; alert('script')</script>.\n\n"
        "Photos of the Millbrook festival crowds <img src=x onerror=\"window.__qa_pwned='img'; alert('img')\"> "
        "were posted with a schedule at <a href=\"javascript:window.__qa_pwned='link'\">this link</a>."
    ),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory, seed_index):
    root = tmp_path_factory.mktemp("serve-browser")
    hostile = root / "hostile"
    hostile.mkdir()
    (hostile / "millbrook.json").write_text(json.dumps(HOSTILE), encoding="utf-8")
    idx = root / "index"
    seed_models(seed_index, idx)
    proc = run_qa("index", "seeds", str(hostile), "--index", str(idx))  # from the repository root, as a user
    assert proc.returncode == 0, proc.stderr
    with ServerThread(create_app(idx, Bot.open(idx))) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))  # with the page's console logged, read below
    driver.set_window_size(1000, 1300)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout: float = 60):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def ask(driver, question: str) -> None:
    turns = len(driver.find_elements(By.CSS_SELECTOR, "#log .turn"))
    box = driver.find_element(By.ID, "question")
    box.click()
    box.send_keys(question, Keys.ENTER)
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log .turn")) == turns + 1)


def press(driver, button_id: str) -> None:
    """Reach a button with Tab from the question box and press it with Enter."""
    driver.find_element(By.ID, "question").click()
    for _ in range(8):
        if driver.execute_script("return document.activeElement.id") == button_id:
            break
        driver.switch_to.active_element.send_keys(Keys.TAB)
    assert driver.execute_script("return document.activeElement.id") == button_id, f"Tab never reached #{button_id}"
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait(driver, lambda d: d.find_element(By.ID, button_id).is_enabled())


def last_turn_sentences(driver) -> list[str]:
    turns = driver.find_elements(By.CSS_SELECTOR, "#log .turn")
    return [li.find_element(By.CSS_SELECTOR, ".text").text for li in turns[-1].find_elements(By.CSS_SELECTOR, "li.sentence")]


def check_marks(driver) -> list:
    """Each highlighted sentence is exactly its file's text at the offsets it cites."""
    marks = driver.find_elements(By.CSS_SELECTOR, "#sources mark")
    for mark in marks:
        source, start, end = mark.get_attribute("data-source"), int(mark.get_attribute("data-start")), int(mark.get_attribute("data-end"))
        text = (REPO / source).read_bytes().decode("utf-8-sig")
        if source.endswith(".json"):  # offsets index the (one) record's text, not the file
            text = json.loads(text)["text"]
        assert mark.text == text[start:end], (source, start, end)
    assert marks
    return marks


def console_errors(driver) -> list[str]:
    """Errors in the page's console (script errors, CSP violations), the favicon's 404 aside."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]


def api_chat(url: str, questions: list[str]) -> dict:
    cid, body = None, {}
    for q in questions:
        data = json.dumps({"question": q, **({"conversation": cid} if cid else {})}).encode()
        req = urllib.request.Request(url + "/api/chat", data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = json.loads(r.read())
        cid = body["conversation"]
    return body


def test_the_page_answers_cites_and_stays_safe(site, browser, tmp_path):
    d = browser
    d.get(site)
    wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    wait(d, lambda d: "article" in d.find_element(By.ID, "status").text)  # /api/health answered

    ask(d, "What did London agree?")
    first = last_turn_sentences(d)
    assert first and "London" in first[0]
    ask(d, "Who led them?")
    follow = last_turn_sentences(d)
    assert any("Bessent" in s for s in follow), follow  # read with the first question's context
    expected = api_chat(site, ["What did London agree?", "Who led them?"])
    assert follow == [s["text"] for s in expected["sentences"]]
    if expected.get("interpreted") and expected["interpreted"] != expected["question"]:
        shown = d.find_elements(By.CSS_SELECTOR, "#log .turn:last-child .interpreted")
        assert shown and expected["interpreted"] in shown[0].text

    press(d, "sources-button")
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#sources mark"))
    assert not d.find_element(By.ID, "sources").get_attribute("hidden")
    assert {m.text for m in check_marks(d)} == set(follow)
    meta = d.find_element(By.CSS_SELECTOR, "#sources .source .meta").text
    assert "seeds/000_a965798dc9f0230f.txt" in meta and "paragraph" in meta

    press(d, "more")
    shown = last_turn_sentences(d)
    assert len(shown) > len(follow) and shown[: len(follow)] == follow
    markers = [li.get_attribute("data-marker") for li in d.find_elements(By.CSS_SELECTOR, "#log .turn:last-child li.sentence")]
    assert markers == [str(i) for i in range(1, len(markers) + 1)]
    # The open sources panel follows: every sentence shown, highlighted in its paragraph.
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sources mark")) == len(shown))
    assert sorted(m.text for m in check_marks(d)) == sorted(shown)

    height = min(d.execute_script("return document.documentElement.scrollHeight") + 140, 2400)
    d.set_window_size(1000, height)
    d.save_screenshot(str(tmp_path / "serve.png"))
    if os.environ.get("QA_SCREENSHOT"):
        shutil.copyfile(tmp_path / "serve.png", os.environ["QA_SCREENSHOT"])
    assert (tmp_path / "serve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d.set_window_size(1000, 1300)

    press(d, "reset")
    wait(d, lambda d: not d.find_elements(By.CSS_SELECTOR, "#log .turn"))
    assert "cleared" in d.find_element(By.ID, "status").text

    # Readable at phone width: nothing wider than the screen.
    d.set_window_size(390, 844)
    ask(d, "What did London agree?")
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    d.set_window_size(1000, 1300)

    # The bot declining is said plainly.
    ask(d, "What is the boiling point of mercury on Neptune?")
    turn = d.find_elements(By.CSS_SELECTOR, "#log .turn")[-1]
    assert turn.find_elements(By.CSS_SELECTOR, ".declined") and not turn.find_elements(By.CSS_SELECTOR, "li.sentence")
    assert console_errors(d) == []


def test_hostile_article_markup_never_runs(site, browser):
    d = browser
    d.get(site)
    wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    ask(d, "How many visitors did the Millbrook festival draw?")
    sentences = last_turn_sentences(d)
    assert sentences and "<script>" in sentences[0]  # shown as text
    ask(d, "Where were photos of the Millbrook festival crowds posted?")
    assert any("onerror" in s for s in last_turn_sentences(d))
    if d.find_element(By.ID, "sources").get_attribute("hidden"):
        press(d, "sources-button")
    wait(d, lambda d: "Millbrook" in d.find_element(By.ID, "sources-list").text)
    panel = d.find_element(By.ID, "sources-list").text
    assert "<script>window.__qa_pwned = 'title'</script>" in panel and "javascript:window.__qa_pwned='url'" in panel
    assert "2026-11-20" in panel  # the record's date
    assert d.execute_script("return typeof window.__qa_pwned") == "undefined"
    assert not d.find_elements(By.CSS_SELECTOR, "#log img, #sources img, #log script, #sources script")
    assert not [a for a in d.find_elements(By.CSS_SELECTOR, "a") if (a.get_attribute("href") or "").startswith("javascript:")]
    with pytest.raises(NoAlertPresentException):
        d.switch_to.alert.text
    assert console_errors(d) == []  # nothing was even attempted (a blocked script would log here)
