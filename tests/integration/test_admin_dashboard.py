"""The dashboard at GET / in headless Chromium against a running echo server: the page is
self-contained (no external URL), loads, polls /api/v1/stats, and its numbers move when
clients connect. Skipped when chromium is not installed (scripts/bootstrap installs it unless
TCPMS_BOOTSTRAP_CHROMIUM=0).

TCPMS_DASHBOARD_SCREENSHOT=path also saves a screenshot taken under load (docs/dashboard.png
is made this way)."""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from tcpms_harness import echo_server, open_clients, close_all

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="chromium not installed")


def chromium(url, *extra, budget_ms=4000):
    """Runs headless Chromium on `url` for about `budget_ms` of page time; returns stdout."""
    with tempfile.TemporaryDirectory() as profile:
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,900",
                f"--virtual-time-budget={budget_ms}", *extra, url]
        r = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout


def body_attr(dom, name):
    m = re.search(rf'<body[^>]*\bdata-{name}="([^"]*)"', dom)
    return m.group(1) if m else None


def test_page_is_self_contained():
    with echo_server() as srv:
        status, html = srv.admin("/")
        assert status == 200
        assert "<canvas" in html and "/api/v1/stats" in html
        # No CDN, no external fetch: every URL the page names is relative to the server.
        assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html), "external reference"
        assert "http://" not in html and "https://" not in html


def test_numbers_move_when_load_starts():
    with echo_server("--threads", "2") as srv:
        url = f"http://127.0.0.1:{srv.admin_port}/"
        idle = chromium(url, "--dump-dom")
        assert int(body_attr(idle, "samples")) >= 2, "the page polled /api/v1/stats"
        assert body_attr(idle, "connections") == "0"
        assert 'id="state" class="ok">ready<' in idle

        socks = open_clients(srv.port, 40)
        stop = threading.Event()

        def traffic():  # keep bytes moving so the rate charts have something to show
            while not stop.is_set():
                for s in socks[:10]:
                    try:
                        s.send(b"x" * 4096)
                        while s.recv(65536):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                time.sleep(0.01)

        t = threading.Thread(target=traffic, daemon=True)
        t.start()
        try:
            busy = chromium(url, "--dump-dom")
            assert body_attr(busy, "connections") == "40"
            m = re.search(r'id="v-connections">([^<]*)<', busy)
            assert m and m.group(1) == "40"
            m = re.search(r'id="v-bytes-in">([^<]*)<', busy)
            assert m and m.group(1) not in ("-", "0", "0 B"), busy[:500]
            shot = os.environ.get("TCPMS_DASHBOARD_SCREENSHOT")
            if shot:
                chromium(url, f"--screenshot={os.path.abspath(shot)}", budget_ms=15000)
                assert os.path.getsize(shot) > 10000
        finally:
            stop.set()
            t.join(timeout=5)
            close_all(socks)


def test_page_asks_for_a_token_when_one_is_needed():
    with echo_server("--admin-token", "T") as srv:
        base = f"http://127.0.0.1:{srv.admin_port}/"
        dom = chromium(base, "--dump-dom", budget_ms=2500)
        assert ">token needed<" in dom
        dom = chromium(base + "#token=T", "--dump-dom", budget_ms=2500)
        assert int(body_attr(dom, "samples")) >= 1
