"""A real browser: headless Chromium (Debian's) opens a page whose MQTT.js (the npm package's
browser bundle) connects to tcpms over WebSocket, plain and over TLS, subscribes, and receives
a message published by mosquitto_pub over plain TCP. Driven by browser/browser_client.mjs
(playwright-core). scripts/bootstrap installs chromium and runs `npm ci` in browser/; the
test is skipped with the reason when either is missing."""
import os
import shutil
import subprocess
import threading

import pytest

from mqtt_raw import mqtt_server
from tls_certs import Pki

HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER_DIR = os.path.join(HERE, "browser")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and NODE and
         os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "mqtt")) and
         os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core"))),
    reason="needs chromium, node and `npm ci` in tests/integration/browser (scripts/bootstrap)")


@pytest.fixture(scope="module")
def server():
    pki = Pki()
    cfg = os.path.join(pki.root, "browser.toml")
    with open(cfg, "w") as f:
        f.write(f"""listen = "127.0.0.1:0"
# A browser on a loaded machine may open its socket well before it sends the Upgrade (seen:
# over 10 s under a load average of 16): give the handshakes time, they are not what is tested.
[[listeners]]
bind = "127.0.0.1:0"
websocket = true
handshake_timeout_ms = 60000
[[listeners]]
bind = "127.0.0.1:0"
websocket = true
handshake_timeout_ms = 60000
tls.cert_file = "{pki.server_cert}"
tls.key_file = "{pki.server_key}"
""")
    with mqtt_server("--config", cfg) as srv:
        yield srv
    pki.cleanup()


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_mqtt_js_in_chromium_receives_a_mosquitto_pub_message(server, scheme):
    port = server.port_of("websocket" if scheme == "ws" else "websocket+tls")
    topic = f"browser/{scheme}"
    args = [NODE, os.path.join(BROWSER_DIR, "browser_client.mjs"),
            f"{scheme}://127.0.0.1:{port}/mqtt", topic]
    if scheme == "wss":
        args.append("--insecure")  # the test CA is not the browser's; TLS itself is tested
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=BROWSER_DIR)
    stderr = []
    threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True).start()
    try:
        state = proc.stdout.readline().strip()
        assert state == "STATE subscribed 1", f"{state} {''.join(stderr)[-2000:]}"
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(server.port), "-t", topic,
                            "-m", f"hello {scheme} browser", "-q", "1"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr + server.output()[-3000:]
        got = proc.stdout.readline().strip()
        assert got == f"RECEIVED {topic} hello {scheme} browser", got + "".join(stderr)[-2000:]
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert server.metrics()["tcpms_websocket_upgrades_total"] >= 1
