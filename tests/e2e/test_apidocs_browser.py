"""The API documentation pages render in a real browser that reaches nothing but the app.

Headless Chromium (Debian's ``chromium``; ``scripts/test`` installs it) loads each page from a
real ``balance serve`` over the DevTools protocol, with every host name other than 127.0.0.1
unresolvable, as on a network without internet access. The page must come to list every operation
of ``/schema/openapi.json`` by its summary, and every request it made must have gone to the
server and succeeded. Without chromium the test skips, except on CI (``CI=true``), where that
is a failure.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import stop

pytestmark = pytest.mark.browser

# Generous upper bounds that only stop a hang; the waits end as soon as the outcome is there.
START_TIMEOUT = 60.0
RENDER_TIMEOUT = 120.0


def chromium() -> str:
    found = shutil.which("chromium")
    if found is not None:
        return found
    reason = "chromium is not installed (scripts/test installs it: apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


class Page:
    """One browser tab over the DevTools protocol: commands, and the events they produce."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        sent = next(self.ids)
        self.socket.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=START_TIMEOUT))
            if message.get("id") != sent:
                self.events.append(message)
            elif "error" in message:
                raise AssertionError(f"{method}: {message['error']}")
            else:
                return dict(message["result"])

    def text(self) -> str:
        found = self.call(
            "Runtime.evaluate", expression="document.body ? document.body.innerText : ''"
        )
        return str(found["result"].get("value", ""))

    def wait_for_text(self, wanted: set[str]) -> set[str]:
        """Until the page shows every string of ``wanted``, or the deadline; the ones missing."""
        deadline = time.monotonic() + RENDER_TIMEOUT
        while True:
            text = self.text()
            missing = {item for item in wanted if item not in text}
            if not missing or time.monotonic() > deadline:
                return missing
            # Wake on the page's next event (a response, a console line), at most 0.2 s.
            with contextlib.suppress(TimeoutError):
                self.events.append(json.loads(self.socket.recv(timeout=0.2)))

    def of(self, method: str) -> list[dict[str, Any]]:
        return [event["params"] for event in self.events if event.get("method") == method]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Page]:
    profile = tmp_path / "chromium"
    command = [
        chromium(),
        "--headless",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--window-size=1280,900",
        "about:blank",
    ]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox.
    log = (tmp_path / "chromium.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start: {(tmp_path / 'chromium.log').read_text()}")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as listing:
            target = next(t for t in json.load(listing) if t["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, proxy=None) as socket:
            page = Page(socket)
            for domain in ("Page", "Network", "Runtime", "Log"):
                page.call(f"{domain}.enable")
            yield page
    except ConnectionClosed:
        pytest.fail(f"chromium went away: {(tmp_path / 'chromium.log').read_text()}")
    finally:
        stop(process)
        log.close()


def operation_summaries(server: str) -> set[str]:
    with urllib.request.urlopen(f"{server}/schema/openapi.json", timeout=10) as response:
        spec = json.load(response)
    return {operation["summary"] for item in spec["paths"].values() for operation in item.values()}


@pytest.mark.parametrize("page_path", ["/schema", "/schema/scalar"])
def test_the_page_lists_every_operation_loading_only_from_the_app(
    server: str, browser: Page, page_path: str, tmp_path: Path
) -> None:
    summaries = operation_summaries(server)
    assert "Open an account" in summaries
    browser.call("Page.navigate", url=server + page_path)

    missing = browser.wait_for_text(summaries)

    requested = [sent["request"]["url"] for sent in browser.of("Network.requestWillBeSent")]
    elsewhere = [url for url in requested if not url.startswith((server + "/", "data:"))]
    failed = [
        (got["response"]["url"], got["response"]["status"])
        for got in browser.of("Network.responseReceived")
        if got["response"]["status"] >= 400
    ]
    failed += [
        (gone["errorText"], gone["requestId"]) for gone in browser.of("Network.loadingFailed")
    ]
    thrown = [error["exceptionDetails"] for error in browser.of("Runtime.exceptionThrown")]
    if missing:
        shot = browser.call("Page.captureScreenshot", format="png")["data"]
        (tmp_path / "page.png").write_bytes(base64.b64decode(shot))
    assert not missing, (missing, elsewhere, failed, thrown, tmp_path / "page.png")
    assert server + page_path in requested
    assert elsewhere == []
    assert failed == []
    assert thrown == []
