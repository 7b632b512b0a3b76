"""Shared helpers for integration tests: start the real binaries on loopback ports chosen by
the kernel, find what they listen on, stop them, and read their /proc numbers.

Every test that starts a server uses `Server` as a context manager, so a failing test never
leaves a process behind."""
import os
import re
import selectors
import signal
import socket
import subprocess
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.environ.get("TCPMS_BIN_DIR", os.path.join(HERE, "..", "..", "build", "release", "bin"))
SANITIZED = os.environ.get("TCPMS_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE")

LISTEN_RE = re.compile(r"listening on (\S+):(\d+)(?:, admin on (\S+):(\d+))?")
# With several listeners (or one with a transport) the line lists each with its transport:
# "listening on 127.0.0.1:1883 (tcp), 127.0.0.1:8883 (tls), admin on 127.0.0.1:8080; ..."
LISTENERS_RE = re.compile(r"listening on (.*?)(?:, admin on (\S+):(\d+))?; ")
LISTENER_RE = re.compile(r"(\S+):(\d+)(?: \(([^)]*)\))?")


def binary(name):
    path = os.path.join(BIN_DIR, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not built (set TCPMS_BIN_DIR)")
    return path


class Server:
    """Runs tcpms-server (or another binary printing the same 'listening on' line)."""

    def __init__(self, *args, binary_name="tcpms-server", preexec_fn=None, env=None,
                 start_timeout=15.0):
        self.args = [binary(binary_name)] + list(args)
        if binary_name == "tcpms-server":
            if not any(a.startswith("--listen") for a in args):
                self.args += ["--listen", "127.0.0.1:0"]
            if not any(a.startswith("--admin-listen") or a == "--no-admin" for a in args):
                self.args += ["--admin-listen", "127.0.0.1:0"]
        self.preexec_fn = preexec_fn
        self.env = env
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None
        self.admin_port = None
        self.listeners = []  # [(port, transport)] in the order of the start-up line
        self.lines = []
        self._lock = threading.Lock()

    def __enter__(self):
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, preexec_fn=self.preexec_fn, env=env)
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                with self._lock:
                    self.lines.append(line.rstrip("\n"))
                m = LISTENERS_RE.search(line)
                if m and not ready.is_set():
                    for item in m.group(1).split(", "):
                        lm = LISTENER_RE.fullmatch(item)
                        if lm:
                            self.listeners.append((int(lm.group(2)), lm.group(3) or "tcp"))
                    self.port = self.listeners[0][0] if self.listeners else None
                    if m.group(3):
                        self.admin_port = int(m.group(3))
                    ready.set()
                    continue
                m = LISTEN_RE.search(line)
                if m and not ready.is_set():
                    self.port = int(m.group(2))
                    self.listeners = [(self.port, "tcp")]
                    if m.group(4):
                        self.admin_port = int(m.group(4))
                    ready.set()
            ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        if not ready.wait(self.start_timeout) or self.port is None:
            self.kill()
            raise RuntimeError("server did not start:\n" + self.output())
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._pump.join(timeout=5)
        return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self):
        with self._lock:
            return "\n".join(self.lines)

    def port_of(self, transport, nth=0):
        """The port of the nth listener whose transport is `transport` ("tls", "websocket",
        "websocket+tls", "proxy+tcp", ...)."""
        ports = [p for p, t in self.listeners if t == transport]
        if len(ports) <= nth:
            raise AssertionError(f"no {transport} listener #{nth} in {self.listeners}")
        return ports[nth]

    @property
    def pid(self):
        return self.proc.pid

    def connect(self, timeout=10.0):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s

    def admin(self, path, method="GET", body=None, headers=None, timeout=10.0):
        """Returns (status, body text) from the admin API."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", method=method,
                                     data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def api(self, path, method="GET", body=None):
        """Returns (status, JSON answer) from the admin API; `body` is sent as JSON. An answer
        that is not JSON comes back as text."""
        import json
        status, text = self.admin(path, method=method,
                                  body=json.dumps(body).encode() if body is not None else None,
                                  headers={"Content-Type": "application/json"})
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def metrics(self):
        """Prometheus samples summed over labels: {'tcpms_connections': 3.0, ...} plus the
        labelled samples as 'name{labels}'."""
        status, text = self.admin("/metrics")
        assert status == 200, text
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, value = line.rsplit(" ", 1)
            out[name_labels] = float(value)
            name = name_labels.split("{", 1)[0]
            if "{" in name_labels:
                out[name] = out.get(name, 0.0) + float(value)
        return out

    def wait_for(self, predicate, timeout=15.0, interval=0.05, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}\n--- server output ---\n{self.output()}")


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def raise_nofile_limit(want=20000):
    """Raises this process's soft RLIMIT_NOFILE towards `want` (up to the hard limit), for
    tests that hold thousands of client sockets. Returns the new soft limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid):
    """User plus system CPU time a process has used, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def labelled(samples, name, **labels):
    """Sum of the samples of `name` whose labels include all of `labels`."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for key, value in samples.items():
        if key.startswith(name + "{") and all(w in key for w in want):
            total += value
    return total


# --- echo ---------------------------------------------------------------------------------

def echo_server(*args, **kwargs):
    """tcpms-server speaking the echo protocol (the default protocol is MQTT)."""
    return Server("--protocol", "echo", *args, **kwargs)


# Many echo clients at once from one thread: non-blocking sockets on a selector, each sending
# its own payload and checking that exactly that payload comes back.
def open_clients(port, count, timeout=30.0):
    """`count` connected blocking-connect sockets, switched to non-blocking."""
    socks = []
    deadline = time.monotonic() + timeout
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port),
                                         timeout=max(1.0, deadline - time.monotonic()))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            socks.append(s)
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def echo_all(socks, payloads, timeout=60.0):
    """Sends payloads[i] on socks[i] (all at once, interleaved) and reads until each has its
    bytes back. Returns the number of clients whose echo matched; raises on timeout, EOF or a
    mismatch, naming the client."""
    sel = selectors.DefaultSelector()
    state = {}
    for i, s in enumerate(socks):
        state[s.fileno()] = [i, s, memoryview(payloads[i]), bytearray()]
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    pending = len(socks)
    deadline = time.monotonic() + timeout
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                short = [st[0] for st in state.values() if len(st[3]) < len(payloads[st[0]])]
                raise AssertionError(f"timed out: {len(short)} clients incomplete, e.g. {short[:5]}")
            for key, ev in sel.select(timeout=min(left, 1.0)):
                st = state[key.fd]
                i, s, out, got = st
                if ev & selectors.EVENT_WRITE and out:
                    try:
                        n = s.send(out)
                        st[2] = out = out[n:]
                    except BlockingIOError:
                        pass
                    if not out:
                        sel.modify(s, selectors.EVENT_READ)
                if ev & selectors.EVENT_READ:
                    try:
                        chunk = s.recv(65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise AssertionError(f"client {i}: EOF after {len(got)} bytes")
                    got += chunk
                    want = payloads[i]
                    if got != want[:len(got)]:
                        raise AssertionError(f"client {i}: echo differs at byte "
                                             f"{next(k for k in range(len(got)) if got[k] != want[k])}")
                    if len(got) == len(want):
                        sel.unregister(s)
                        pending -= 1
    finally:
        sel.close()
    return len(socks)


def payload(i, size):
    """A payload unique to client i: its number, then a pattern that depends on it."""
    head = f"client {i:06d}:".encode()
    body = bytes(((i * 31 + k * 7) & 0xFF) for k in range(256))
    data = head + body * (size // 256 + 1)
    return data[:max(size, len(head))]
