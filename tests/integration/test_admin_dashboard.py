"""The dashboard at GET / in headless Chromium: against an echo server the page is
self-contained (no external URL), loads, polls /api/v1/stats, and its numbers move when
clients connect; against the MQTT broker an operator clicks through it (playwright-core
driving the Debian chromium, browser/dashboard_walk.mjs): finds a client, opens its details,
kicks it, watches a filter in the topic viewer, publishes with the form and sees the message
arrive; the layout fills the window. Skipped when chromium or playwright-core is not
installed (scripts/bootstrap installs both unless TCPMS_BOOTSTRAP_CHROMIUM=0).

TCPMS_DASHBOARD_SCREENSHOTS=DIR keeps the screenshots of the MQTT walk there, and
TCPMS_DASHBOARD_WARMUP_S=N lets the charts gather N seconds of history first (docs/ holds
dashboard.png and dashboard-mqtt.png made with DIR=docs, N=60)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from tcpms_harness import HERE, Server, echo_server, open_clients, close_all

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="chromium not installed")


def chromium(url, *extra, budget_ms=4000):
    """Runs headless Chromium on `url` for about `budget_ms` of page time; returns stdout."""
    with tempfile.TemporaryDirectory() as profile:
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--window-size=1280,900",
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


WALK = os.path.join(HERE, "browser", "dashboard_walk.mjs")
PLAYWRIGHT = os.path.join(HERE, "browser", "node_modules", "playwright-core")


def mqtt_client(cid, port, on_message=None):
    c = mqtt.Client(client_id=cid)
    state = {"connected": threading.Event(), "disconnected": threading.Event()}
    c.on_connect = lambda *a: state["connected"].set()
    c.on_disconnect = lambda *a: state["disconnected"].set()
    if on_message:
        c.on_message = on_message
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    assert state["connected"].wait(10), cid
    return c, state


@pytest.mark.skipif(not shutil.which("node") or not os.path.isdir(PLAYWRIGHT),
                    reason="node or playwright-core not installed (scripts/bootstrap)")
def test_operator_clicks_through_the_mqtt_dashboard():
    with Server("--threads", "2") as srv:
        got = []
        viewer, _ = mqtt_client("dash-subscriber", srv.port,
                                on_message=lambda c, u, m: got.append((m.topic, m.payload)))
        viewer.subscribe([("dash/#", 1), ("telemetry/0", 0)])
        victim, victim_state = mqtt_client("kick-me", srv.port)
        victim.reconnect_delay_set(min_delay=300, max_delay=300)  # kicked, it stays away
        victim.subscribe("cmd/kick-me", qos=1)
        sensors = [mqtt_client(f"sensor-{i}", srv.port)[0] for i in range(3)]
        stop = threading.Event()

        def traffic():  # messages in and out, so the rate tiles and charts move
            n = 0
            while not stop.is_set():
                for s in sensors:
                    s.publish(f"telemetry/{n % 3}", b"x" * 64)
                n += 1
                time.sleep(0.02)

        t = threading.Thread(target=traffic, daemon=True)
        t.start()
        shots = os.environ.get("TCPMS_DASHBOARD_SCREENSHOTS") or tempfile.mkdtemp()
        try:
            time.sleep(0.3)
            r = subprocess.run(["node", WALK, f"http://127.0.0.1:{srv.admin_port}/", "kick-me",
                                "dash/#", "dash/hello", "hello from the form", shots],
                               capture_output=True, text=True,
                               timeout=180 + int(os.environ.get("TCPMS_DASHBOARD_WARMUP_S", "0")) * 2,
                               cwd=os.path.dirname(WALK))
            assert r.returncode == 0, r.stderr[-3000:]
            out = json.loads(r.stdout.strip().splitlines()[-1])
            assert "error" not in out, out["error"] + "\n" + srv.output()[-3000:]
            assert out["protocol"] == "mqtt" and out["state"] == "ready"
            assert out["page_errors"] == [] and out["external_requests"] == []
            # The MQTT figures are filled in, not "n/a".
            tiles = out["tiles"]
            assert tiles["msgs in/s"] not in ("n/a", "-", "0"), tiles
            assert all(not v.endswith("…") for v in tiles.values()), tiles
            assert tiles["msgs out/s"] not in ("n/a", "-", "0"), tiles
            assert tiles["sessions"] == "5 / 0", tiles  # two clients and three sensors
            assert tiles["subscriptions"] == "3", tiles
            # No empty half page: the panels reach the bottom of the window, both columns are
            # used, and nothing needs scrolling at 1280 x 900.
            lay = out["layout"]
            assert lay["main_bottom"] >= 0.97 * lay["viewport_h"], lay
            assert lay["charts_bottom"] >= 0.95 * lay["viewport_h"], lay
            assert lay["side_bottom"] >= 0.95 * lay["viewport_h"], lay
            assert lay["charts_w"] >= 0.4 * lay["viewport_w"] and lay["side_w"] >= 0.3 * lay["viewport_w"], lay
            assert lay["scroll_h"] <= lay["viewport_h"] + 2, lay
            # Details showed the client's subscription, and the kick disconnected it.
            assert "cmd/kick-me" in out["details"] and "127.0.0.1:" in out["details"], out["details"]
            assert out["kick_armed"] == "confirm"
            assert victim_state["disconnected"].wait(5), "the kicked client is still connected"
            # The form's publish reached the subscriber, the answer counted it, and the topic
            # viewer showed it.
            assert "1 receiver" in out["publish_note"], out["publish_note"]
            assert "hello from the form" in out["viewer_message"], out
            deadline = time.monotonic() + 5
            while ("dash/hello", b"hello from the form") not in got and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ("dash/hello", b"hello from the form") in got
            for name in ("dashboard.png", "dashboard-mqtt.png"):
                assert os.path.getsize(os.path.join(shots, name)) > 20000, name
        finally:
            stop.set()
            t.join(timeout=5)
            for c in [viewer, victim] + sensors:
                c.loop_stop()
