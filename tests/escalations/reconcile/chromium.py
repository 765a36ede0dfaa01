"""Open a page in a real headless Chromium (Debian's ``chromium``), served from a directory
on a loopback HTTP server that records every request, and collect what the browser's console
said (Chromium writes each console message to stderr as ``CONSOLE``, CSP refusals and load
failures included). No browser automation library: the page must work as a manager opens it.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

CONSOLE_RE = re.compile(r":CONSOLE(?:\(\d+\))?:?\d*\] (.*)$", re.MULTILINE)
BROWSER_REQUESTS = frozenset({"/favicon.ico"})
"""Asked for by the browser itself, never by the page."""


def chromium() -> str:
    """The browser's path; skips without one, fails under ``CI=true`` (``.ci/run`` installs
    it)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Debian's chromium is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: this test must run)", pytrace=False)
        pytest.skip(message)
    return path


@dataclass(frozen=True)
class Visit:
    requests: tuple[str, ...]
    """Paths the page asked the server for, in order (the page itself first)."""
    console: tuple[str, ...]
    dom: str


def visit(directory: Path, page: str, profile: Path, *, screenshot: Path | None = None) -> Visit:
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

        def do_GET(self) -> None:
            seen.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
    args = [
        chromium(),
        "--headless",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        "--window-size=1280,1800",
    ]
    args += [f"--screenshot={screenshot}"] if screenshot is not None else ["--dump-dom"]
    try:
        done = subprocess.run(  # noqa: S603 - our own arguments
            [*args, url], capture_output=True, text=True, timeout=90, check=False
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr[-2000:]
    requests = tuple(p for p in seen if p not in BROWSER_REQUESTS)
    return Visit(requests=requests, console=tuple(CONSOLE_RE.findall(done.stderr)), dom=done.stdout)
