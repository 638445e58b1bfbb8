"""``--flop-budget-html``: one self-contained page, checked in a real headless browser.

The browser is Debian's Chromium (``.ci/run`` installs it), driven over the DevTools protocol
on loopback: the test opens the report, clicks a module of the icicle with a real mouse event,
checks the view zoomed into it, and keeps a screenshot.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket  # websocket-client

CNN = """
import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)
        )
        self.head = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))
"""
TESTS = """
import pytest
import torch
from cnn import SmallCNN
from models import FFN


@pytest.mark.flop_budget(kmacs=400)
def test_cnn(flops):
    flops(SmallCNN(), torch.randn(1, 3, 8, 8))


@pytest.mark.flop_budget(mflops=1, on_exceed="warn")
def test_ffn(flops):
    flops(FFN(), torch.randn(1, 4), name="FFN</script><b>")
"""
# Conv2d(3, 8, 3, padding=1) on 8x8: 8 x 64 x 27; Conv2d(8, 8, 3): 8 x 64 x 72; Linear 512 -> 10
FEATURES_MACS = 8 * 64 * 27 + 8 * 64 * 72
HEAD_MACS = 512 * 10


def report_data(page: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="flopbudget-data">(.*?)</script>', page, re.S
    )
    assert match, "no data element"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


@pytest.fixture
def html_report(project: pytest.Pytester) -> Path:
    project.makepyfile(cnn=CNN, test_models=TESTS)
    result = project.runpytest("--flop-budget-html=report.html")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["flop budget HTML report written to *report.html"])
    return project.path / "report.html"


def test_the_page_is_self_contained_and_carries_every_model(html_report: Path) -> None:
    page = html_report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched at view time
    data = report_data(page)
    models = {model["name"]: model for model in data["models"]}
    assert set(models) == {"SmallCNN", "FFN</script><b>"}  # the name survives, escaped
    cnn = models["SmallCNN"]
    assert cnn["flops"] == FEATURES_MACS + HEAD_MACS
    assert cnn["modules"]["features"] == FEATURES_MACS
    assert cnn["modules"]["head"] == HEAD_MACS
    assert models["FFN</script><b>"]["label"] == "over (warn)"
    assert data["convention"].startswith("1 FLOP = 1 MAC")


class DevTools:
    """Just enough of the DevTools protocol: evaluate, click, screenshot."""

    def __init__(self, url: str) -> None:
        self.socket = websocket.create_connection(url, timeout=30)
        self.next_id = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[str]:
    """A headless Chromium listening on loopback; yields its DevTools HTTP address."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Chromium is needed for the browser test: apt-get install chromium"
    process = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            match = re.search(r"DevTools listening on ws://([\d.]+:\d+)/", line)
            if match:
                address = match.group(1)
            elif not line and process.poll() is not None:
                break
        assert address, "Chromium did not start its DevTools endpoint"
        yield f"http://{address}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def open_page(address: str, url: str) -> DevTools:
    request = urllib.request.Request(f"{address}/json/new?{url}", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
        target = json.load(response)
    page = DevTools(target["webSocketDebuggerUrl"])
    deadline = time.monotonic() + 30
    loaded = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
    while not page.evaluate(loaded):
        assert time.monotonic() < deadline, "the page did not load"
        time.sleep(0.1)
    return page


def test_a_click_on_a_module_zooms_into_it_in_a_real_browser(
    html_report: Path, browser: str, tmp_path: Path
) -> None:
    page = open_page(browser, html_report.as_uri())
    section = "document.querySelector('section.model')"
    assert page.evaluate(f"{section}.querySelector('h2').firstChild.textContent") == "SmallCNN"
    assert page.evaluate(f"{section}.querySelector('.crumbs').textContent") == "SmallCNN"
    box = page.evaluate(
        f"(() => {{ const r = {section}.querySelector('.cell[data-path=\"features\"]')"
        ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    page.click(*box)
    assert page.evaluate(f"{section}.querySelector('.crumbs').textContent") == "SmallCNN > features"
    first_row = page.evaluate(
        f"[...{section}.querySelectorAll('.icicle .row')[1].children].map(c => c.dataset.path)"
    )
    assert first_row == ["features.0", "features.2"]  # the ReLU counts nothing: no cell
    shot = page.send("Page.captureScreenshot", format="png")["data"]
    image = base64.b64decode(shot)
    assert image.startswith(b"\x89PNG")
    (tmp_path / "zoomed.png").write_bytes(image)
    escaped = page.evaluate(
        "document.querySelectorAll('section.model h2')[1].firstChild.textContent"
    )
    assert escaped == "FFN</script><b>"  # shown as text, not markup
