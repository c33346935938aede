"""The browser pages in real (headless) Chromium against a real server with the real model and VAD.

Chromium's fake microphone plays a recording from the evaluation data (a 16 kHz WAV written from the FLAC,
with silence appended, since Chromium loops the file); the speaker page streams it, and the overlay and
audience pages of the same browser must show what was said. The speaker page's caption destinations are
checked against the local fake Zoom and webhook endpoints of test_sinks. Screenshots go to
``artifacts/screenshots/``.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``) and
Selenium; skipped when they are missing. Every wait is bounded; the browser is always quit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from benchmarks.scoring import normalize, wer
from streamer.audiofile import read_audio
from streamer.core.audio import to_pcm16
from tests.test_sinks import SECRET, TOKEN, fake_service

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EVALDATA = Path(os.environ.get("STREAMER_EVALDATA", REPO.parent / "shared" / "evaldata")) / "short"
CHROMIUM = Path(os.environ.get("STREAMER_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("STREAMER_CHROMEDRIVER", "/usr/bin/chromedriver"))
SCREENSHOTS = REPO / "artifacts" / "screenshots"
SAMPLE_RATE = 16000
TAIL_SILENCE = 3.0
"""Seconds of silence after the speech in the fake-microphone file: stopping anywhere in it is clean."""
STARTUP_TIMEOUT = 60.0
WAIT = 30.0
POLL = 0.2
DESKTOP = (1920, 1080)
PHONE = (390, 844)

JFK = "jfk_inaugural_excerpt"
LIBRI = ("librispeech_1089-134686-0000", "librispeech_2412-153948-0000")

pytestmark = [
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
    ),
    pytest.mark.skipif(not EVALDATA.is_dir(), reason=f"evaluation data not found at {EVALDATA}"),
    pytest.mark.timeout(150),
]

T = TypeVar("T")


# -- scoring --------------------------------------------------------------------------------------------


def reference(name: str) -> str:
    return " ".join((EVALDATA / f"{name}.ref.txt").read_text(encoding="utf-8").split())


# -- fixtures: a server process, fake-microphone files, a browser ---------------------------------------


@dataclass(frozen=True)
class Server:
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return str(response.read().decode("utf-8"))

    def json(self, path: str) -> Any:
        return json.loads(self.get(path))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("browser-server")
    port = free_port()
    log = folder / "server.log"
    command = [sys.executable, "-m", "streamer.server", "serve", "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*command, "--data-dir", str(folder / "data")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        running = Server(port, log)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                running.json("/healthz")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start:\n{log.read_text()}")
                time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def write_wav(path: Path, names: tuple[str, ...], gap: float = 0.8) -> float:
    """Writes the recordings `names`, joined by `gap` s of silence, plus `TAIL_SILENCE`, as a 16 kHz mono
    WAV; returns the seconds of speech material (without the tail)."""
    silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    for i, name in enumerate(names):
        if i:
            parts.append(silence)
        parts.append(read_audio(EVALDATA / f"{name}.flac"))
    speech = np.concatenate(parts)
    samples = np.concatenate([speech, np.zeros(int(TAIL_SILENCE * SAMPLE_RATE), dtype=np.float32)])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(to_pcm16(samples))
    return len(speech) / SAMPLE_RATE


@contextlib.contextmanager
def chromium(microphone: Path) -> Iterator[WebDriver]:
    """Headless Chromium whose fake microphone plays `microphone`; always quit on the way out."""
    profile = Path(tempfile.mkdtemp(prefix="streamer-chromium-"))
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
        f"--user-data-dir={profile}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(WAIT)
        driver.set_script_timeout(WAIT)
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            shutil.rmtree(profile, ignore_errors=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL)


def open_window(driver: WebDriver, url: str, size: tuple[int, int] = DESKTOP) -> str:
    """Opens `url` in a new window with a viewport of exactly `size`; returns the window handle."""
    driver.switch_to.new_window("window")
    set_viewport(driver, size)
    driver.get(url)
    return str(driver.current_window_handle)


def set_viewport(driver: WebDriver, size: tuple[int, int], mobile: bool = False) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": mobile},
    )


def screenshot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), name
    return path


def page_fetch(driver: WebDriver, url: str) -> str:
    """The body of a GET of `url` made by the page itself (same origin, its own URL)."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {cache: 'no-store'}).then(r => r.text()).then(done, e => done('ERROR ' + e));"
    )
    return str(driver.execute_async_script(script, url))


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.execute_script(f"return document.querySelector({css!r})?.innerText ?? ''"))


BOX_TOP = "return document.getElementById('box').getBoundingClientRect().top"
OVERLAY_TAIL_STYLE = (
    "const tail = document.querySelector('#box .tail'); return tail ? getComputedStyle(tail).fontStyle : '';"
)


def audience_finals(driver: WebDriver) -> list[tuple[int, str]]:
    script = (
        "return [...document.querySelectorAll('#transcript .final')]"
        ".map(s => [Number(s.dataset.index), s.dataset.text]);"
    )
    return [(int(i), str(t)) for i, t in driver.execute_script(script)]


def speaker_state(driver: WebDriver) -> dict[str, Any]:
    return dict(driver.execute_script("return window.__streamerTest.snapshot()"))


def severe_console_errors(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def open_speaker(driver: WebDriver, url: str) -> str:
    """Opens the speaker page in the first window; returns its handle."""
    driver.switch_to.window(driver.window_handles[0])
    set_viewport(driver, DESKTOP)
    driver.get(url)
    wait_for("the speaker page's script", lambda: driver.execute_script("return !!window.__streamerTest"))
    return str(driver.current_window_handle)


def start_speaking(driver: WebDriver, url: str | None = None) -> tuple[str, float]:
    """Opens the speaker page at `url` (or stays on the one open) and presses Start; returns (window handle,
    monotonic time of the click)."""
    if url is not None:
        open_speaker(driver, url)
    driver.find_element(By.ID, "start").click()
    started = time.monotonic()
    wait_for("ready", lambda: speaker_state(driver)["phase"] == "live")
    return str(driver.current_window_handle), started


def stop_speaking(driver: WebDriver, handle: str) -> dict[str, Any]:
    driver.switch_to.window(handle)
    driver.find_element(By.ID, "stop").click()
    return wait_for("the speaker to stop", lambda: (s := speaker_state(driver))["phase"] == "stopped" and s)


# -- tests ----------------------------------------------------------------------------------------------


def test_static_routes(server: Server) -> None:
    for path, kind in (
        ("/", "text/html"),
        ("/speak", "text/html"),
        ("/overlay/", "text/html"),
        ("/view", "text/html"),
        ("/static/speak.js", "text/javascript"),
        ("/static/capture-worklet.js", "text/javascript"),
        ("/static/style.css", "text/css"),
        ("/static/config.json", "application/json"),
    ):
        with urllib.request.urlopen(server.base + path, timeout=10) as response:
            assert response.status == 200, path
            assert response.headers["Content-Type"].startswith(kind), path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(server.base + "/speak", timeout=10) as response:
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert server.json("/static/config.json")["paragraph_minutes"] == 4
    for bad in (
        "/static/../http.py",
        "/static/%2e%2e/server/http.py",
        "/static/..%2fserver%2fhttp.py",
        "/static/",
        "/static/.hidden.js",
        "/static/nope.js",
        "/static/sub/dir.js",
        "/static/samples",
        "/static/__init__.py",
        "/speak.html",
    ):
        with pytest.raises(urllib.error.HTTPError) as caught:
            server.get(bad)
        assert caught.value.code == 404, bad


def test_speaker_overlay_and_audience_pages(server: Server, tmp_path: Path) -> None:
    microphone = tmp_path / "jfk.wav"
    speech = write_wav(microphone, (JFK,))
    session = "browser-jfk"
    with chromium(microphone) as driver:
        speaker, started = start_speaking(driver, f"{server.base}/speak?session={session}")
        assert text_of(driver, "#session-id") == session
        view_link = driver.find_element(By.ID, "view-link").get_attribute("value")
        overlay_link = driver.find_element(By.ID, "overlay-link").get_attribute("value")
        assert view_link == f"{server.base}/view?session={session}"
        assert overlay_link == f"{server.base}/overlay?session={session}"
        overlay = open_window(driver, overlay_link)
        styled = open_window(driver, f"{overlay_link}&bg=none&position=top&lines=1&size=64&color=%23ffe27a")
        audience = open_window(driver, view_link)

        overlay_texts: set[str] = set()
        tail_styles: set[str] = set()
        shots_taken = False
        while time.monotonic() - started < speech + 1.0:
            driver.switch_to.window(overlay)
            text = text_of(driver, "#box").strip()
            if text:
                overlay_texts.add(text)
            tail_styles.add(str(driver.execute_script(OVERLAY_TAIL_STYLE)))
            if not shots_taken and time.monotonic() - started > speech * 0.7 and text:
                backdrop = {"color": {"r": 38, "g": 50, "b": 56, "a": 1}}  # as if over a video
                driver.execute_cdp_cmd("Emulation.setDefaultBackgroundColorOverride", backdrop)
                screenshot(driver, "overlay")
                driver.switch_to.window(styled)
                driver.execute_cdp_cmd("Emulation.setDefaultBackgroundColorOverride", backdrop)
                screenshot(driver, "overlay-styled")
                top = driver.execute_script(BOX_TOP)
                assert top < DESKTOP[1] / 4, "position=top"
                assert len(driver.find_elements(By.CSS_SELECTOR, "#box .line")) <= 1, "lines=1"
                driver.switch_to.window(speaker)
                screenshot(driver, "speaker")
                shots_taken = True
            time.sleep(POLL)
        assert overlay_texts, "the overlay never showed a caption"
        assert "italic" in tail_styles, "the overlay never showed a partial tail (dim italic)"

        stopped = stop_speaking(driver, speaker)
        assert stopped["indexes"] == list(range(len(stopped["indexes"])))
        driver.switch_to.window(audience)
        wait_for("the audience page to see the end", lambda: text_of(driver, "#status") == "Not live")
        finals = audience_finals(driver)
        indexes = [i for i, _ in finals]
        assert indexes == list(range(len(finals))) == stopped["indexes"]
        text = " ".join(t for _, t in finals)
        assert wer(reference(JFK), text) < 0.35, text
        server_finals = server.json(f"/sessions/{session}/transcript.json")["finals"]
        assert [(f["index"], f["text"].strip()) for f in server_finals] == finals

        reference_words = set(normalize(reference(JFK)).split()) - {"and", "so", "my", "you", "your", "what"}
        seen = set(normalize(" ".join(overlay_texts)).split())
        assert len(seen & reference_words) >= 3, overlay_texts

        links = {
            a.get_attribute("data-format"): a.get_attribute("href")
            for a in driver.find_elements(By.CSS_SELECTOR, "#download-links a")
        }
        assert sorted(links) == ["json", "md", "srt", "txt", "vtt"]
        markdown = page_fetch(driver, links["md"])
        assert markdown == server.get(f"/sessions/{session}/transcript.md")
        assert "## Transcript" in markdown and normalize(finals[0][1]) in normalize(markdown)
        assert page_fetch(driver, links["srt"]) == server.get(f"/sessions/{session}/transcript.srt")

        search = driver.find_element(By.ID, "search")
        search.send_keys("country")
        wait_for("search highlights", lambda: driver.find_elements(By.CSS_SELECTOR, "#transcript mark"))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#transcript mark")) == 2  # "...your country"
        assert text_of(driver, "#search-count") == "1 of 2"
        screenshot(driver, "audience")
        set_viewport(driver, PHONE, mobile=True)
        time.sleep(0.3)
        screenshot(driver, "audience-phone")
        page_width = driver.execute_script("return document.documentElement.scrollWidth")
        assert page_width <= PHONE[0], "the audience page scrolls sideways on a phone"
        for handle in driver.window_handles:
            driver.switch_to.window(handle)
            assert severe_console_errors(driver) == []


def test_speaker_page_resumes_after_a_network_drop(server: Server, tmp_path: Path) -> None:
    microphone = tmp_path / "two-clips.wav"
    speech = write_wav(microphone, LIBRI)
    session = "browser-drop"
    drop_after, offline = 7.0, 2.5
    with chromium(microphone) as driver:
        speaker, started = start_speaking(driver, f"{server.base}/speak?session={session}")
        audience = open_window(driver, f"{server.base}/view?session={session}")
        driver.switch_to.window(speaker)
        time.sleep(max(0.0, started + drop_after - time.monotonic()))
        before = speaker_state(driver)["indexes"]
        assert driver.execute_script(f"return window.__streamerTest.dropConnection({offline * 1000:.0f})")
        wait_for("the drop", lambda: speaker_state(driver)["phase"] == "reconnecting", 5)
        resumed = wait_for(
            "the reconnect",
            lambda: (s := speaker_state(driver))["phase"] == "live" and s["reconnects"] >= 1 and s,
            offline + 15,
        )
        assert resumed["droppedSeconds"] == 0
        time.sleep(max(0.0, started + speech + 1.0 - time.monotonic()))
        stopped = stop_speaking(driver, speaker)
        elapsed = time.monotonic() - started

        driver.switch_to.window(audience)
        wait_for("the audience page to see the end", lambda: text_of(driver, "#status") == "Not live")
        finals = audience_finals(driver)
        indexes = [i for i, _ in finals]
        assert indexes == list(range(len(finals))), indexes
        assert stopped["indexes"] == indexes
        assert len(before) < len(finals), "no caption after the drop"
        server_finals = server.json(f"/sessions/{session}/transcript.json")["finals"]
        assert [(f["index"], f["text"].strip()) for f in server_finals] == finals
        assert any(f["start"] > drop_after + offline for f in server_finals), (
            "nothing transcribed after the drop"
        )
        info = server.json(f"/sessions/{session}")
        # the audio captured while offline was buffered and delivered: the session clock has no hole
        assert info["time"] > elapsed - offline / 2 - 1.0, (info, elapsed)
        text = " ".join(t for _, t in finals)
        assert wer(" ".join(reference(name) for name in LIBRI), text) < 0.35, text
        assert severe_console_errors(driver) == []


# -- caption destinations -----------------------------------------------------------------------------------

DESTINATIONS = """return [...document.querySelectorAll('#sink-list .sink')].map(item => ({
  id: item.dataset.id, state: item.dataset.state, target: item.querySelector('.sink-target').textContent,
  stats: Object.fromEntries([...item.querySelectorAll('.sink-stats div')]
    .map(pair => [pair.querySelector('dt').textContent, pair.querySelector('dd').textContent]))}));"""
SINK_ERROR = "const box = document.getElementById('sink-error'); return box.hidden ? '' : box.textContent;"
PAGE_TEXT = (
    "return [document.documentElement.outerHTML, document.body.innerText,"
    " ...[...document.querySelectorAll('input')].map(input => input.value)].join(' ');"
)
FLUSH_AT = 6.4
"""Seconds into the JFK clip to press "New line": within "what your country can do for you", no pause near."""


def add_destination(driver: WebDriver, kind: str, url: str, secret: str = "") -> None:
    """Fills in the speaker page's "Caption destinations" form and presses Add."""
    Select(driver.find_element(By.ID, "sink-kind")).select_by_value(kind)
    fields = {"sink-url": url, "sink-secret": secret} if kind == "webhook" else {"sink-url": url}
    for field, value in fields.items():
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    driver.find_element(By.ID, "sink-add").click()


def destinations(driver: WebDriver) -> list[dict[str, Any]]:
    """The speaker page's destination rows: id, state, the target shown and the status figures."""
    return list(driver.execute_script(DESTINATIONS))


def test_speaker_page_forwards_captions_to_destinations(server: Server, tmp_path: Path) -> None:
    microphone = tmp_path / "jfk.wav"
    speech = write_wav(microphone, (JFK,))
    session = "browser-sinks"
    sinks_path = f"/sessions/{session}/sinks"
    with (
        fake_service("zoom") as (zoom, zoom_url),
        fake_service("webhook") as (hook, hook_url),
        chromium(microphone) as driver,
    ):
        speaker = open_speaker(driver, f"{server.base}/speak?session={session}")
        new_line = driver.find_element(By.ID, "new-line")
        assert not new_line.is_enabled()
        add_destination(driver, "zoom", "wmcc.zoom.us/closedcaption")  # checked by the page: no session yet
        assert "http:// or https://" in driver.execute_script(SINK_ERROR) and destinations(driver) == []
        add_destination(driver, "zoom", zoom_url)
        waiting = wait_for("the destination in the list", lambda: destinations(driver))
        assert [(d["state"], d["target"]) for d in waiting] == [("waiting", "http://127.0.0.1/…")]
        assert driver.execute_script(SINK_ERROR) == ""

        _, started = start_speaking(driver)  # the start message carries the Zoom sink
        assert new_line.is_enabled()
        shown = wait_for(
            "the Zoom sink's status with a delivered caption",
            lambda: [d for d in destinations(driver) if d["stats"].get("Delivered", "0") != "0"],
        )
        assert [(d["id"], d["target"]) for d in shown] == [(waiting[0]["id"], "http://127.0.0.1/…")]
        assert int(shown[0]["stats"]["Last seq"]) >= 1 and shown[0]["stats"]["Failures"] == "0"
        time.sleep(max(0.0, started + FLUSH_AT - time.monotonic()))
        new_line.click()
        cut = speaker_state(driver)["sentTime"]

        add_destination(driver, "webhook", hook_url, SECRET)  # live: the page POSTs it
        both = wait_for("the webhook in the list", lambda: len(d := destinations(driver)) == 2 and d)
        hook_id = both[1]["id"]
        assert both[1]["target"] == "http://127.0.0.1/…" and hook_id.startswith("webhook-")
        assert [s["id"] for s in server.json(sinks_path)] == [waiting[0]["id"], hook_id]
        add_destination(driver, "zoom", "ftp://127.0.0.1/closedcaption")  # live: the server's 400, shown
        error = wait_for("the server's error", lambda: driver.execute_script(SINK_ERROR))
        assert error == "sink url must be an http:// or https:// URL with a host"
        assert len(destinations(driver)) == 2
        text = driver.execute_script(PAGE_TEXT)
        assert TOKEN not in text and SECRET not in text and "signature=" not in text
        driver.execute_script("document.querySelector('.sinks').scrollIntoView({block: 'end'})")
        screenshot(driver, "speaker-destinations")
        driver.find_element(By.CSS_SELECTOR, f"#sink-list button[data-id='{hook_id}']").click()
        wait_for("the webhook's removal", lambda: len(destinations(driver)) == 1)
        assert [s["id"] for s in server.json(sinks_path)] == [waiting[0]["id"]]

        time.sleep(max(0.0, started + speech + 1.0 - time.monotonic()))
        stop_speaking(driver, speaker)
        finals = server.json(f"/sessions/{session}/transcript.json")["finals"]
        wait_for("Zoom to get every final", lambda: len(zoom.accepted) >= len(finals))
        assert zoom.errors == [] and hook.errors == []
        assert zoom.accepted == [
            {"seq": i + 1, "lang": "en-US", "text": f["text"]} for i, f in enumerate(finals)
        ]
        # "New line" cut the utterance where the audio sent so far ended, not at a pause
        ends = [f["end"] for f in finals if f["ends_utterance"]]
        assert any(cut - 1.2 <= end <= cut + 0.1 for end in ends), (cut, finals)
        expected_400 = f"{sinks_path} - Failed to load resource: the server responded with a status of 400"
        assert [e for e in severe_console_errors(driver) if expected_400 not in e] == []
