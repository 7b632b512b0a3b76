"""Authentication and authorization by an HTTP service (auth.http.url, docs/auth.md): a real
small service (python's http.server) that allows, denies, stalls and dies. CONNECTs and the
PUBLISH/SUBSCRIBE decisions are asked of it without blocking a loop: while it stalls, other
clients keep publishing; answers are cached; a circuit breaker stops asking a service that
keeps failing; when down, the broker denies or falls back to the password file."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mqtt_raw import CONNACK, PUBLISH, RawClient, connect_packet, connected, mqtt_server
from test_mqtt_10_auth import add_user, refused


class AuthService:
    """The operator's auth service: rules, a log of every question, and switches to stall
    or die."""

    def __init__(self, port=0):
        self.requests = []
        self.stall_s = 0.0
        self.release = threading.Event()
        self.users = {"alice": "secret", "carol": "pw"}
        self.denied_publish = ("forbidden/",)
        self.denied_subscribe = ("secret/",)
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                service.requests.append(body)
                if service.stall_s:
                    service.release.wait(service.stall_s)
                result = "allow" if service.decide(body) else "deny"
                data = json.dumps({"result": result}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def decide(self, q):
        if q["action"] == "connect":
            return q.get("username") in self.users and self.users[q["username"]] == q.get("password")
        if q["action"] == "publish":
            return not q["topic"].startswith(self.denied_publish)
        return not q["topic"].startswith(self.denied_subscribe)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/mqtt/auth"

    def asked(self, action, **match):
        return [r for r in self.requests
                if r["action"] == action and all(r.get(k) == v for k, v in match.items())]

    def die(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def service():
    s = AuthService()
    yield s
    s.die()


def sub(port, cid, filters, **kw):
    c = connected(port, cid, **kw)
    codes = c.subscribe(filters)
    return c, codes


def test_the_service_decides_connects_publishes_and_subscribes(service):
    with mqtt_server("--threads", "2", "--auth-http-url", service.url) as srv:
        assert refused(srv.port, "b1", username="bob", password="nope") == 4
        assert refused(srv.port, "anon") == 5
        listener, codes = sub(srv.port, "listener", [("#", 1), ("secret/#", 1)],
                              username="carol", password="pw")
        assert codes == [1, 0x80]
        alice = connected(srv.port, "alice-1", username="alice", password="secret")
        # Refused publish: acknowledged (3.1.1 has no negative PUBACK), not delivered.
        alice.publish("forbidden/x", b"no", qos=1, pid=7)
        listener.expect_nothing(0.5)
        for i in range(5):
            alice.publish("open/x", b"yes%d" % i, qos=1, pid=10 + i)
        for i in range(5):
            p = listener.expect(PUBLISH)
            assert p.topic == "open/x" and p.payload == b"yes%d" % i
        # What the service was told, and that the answer for open/x was reused.
        [q] = service.asked("connect", username="alice")
        assert q["client_id"] == "alice-1" and q["password"] == "secret"
        assert q["peer"].startswith("127.0.0.1:") and q["protocol"] == "3.1.1"
        assert len(service.asked("publish", topic="open/x", client_id="alice-1")) == 1
        assert len(service.asked("publish", topic="forbidden/x")) == 1
        assert service.asked("subscribe", topic="secret/#")[0]["username"] == "carol"
        m = srv.metrics()
        assert m['tcpms_mqtt_auth_http_requests_total{outcome="deny"}'] >= 3
        assert m["tcpms_mqtt_auth_http_acl_cache_hits_total"] >= 4
        assert m["tcpms_mqtt_acl_publish_denied_total"] == 1
        # A second CONNECT with the same credentials is answered from the cache.
        alice.close()
        connected(srv.port, "alice-1", username="alice", password="secret").ping()
        assert len(service.asked("connect", username="alice")) == 1


def test_a_stalled_service_blocks_no_loop_and_the_breaker_opens(service):
    with mqtt_server("--threads", "1", "--auth-http-url", service.url,
                     "--auth-http-timeout-ms", "400", "--auth-http-failure-threshold", "2",
                     "--auth-http-retry-after-ms", "60000") as srv:
        listener, _ = sub(srv.port, "listener", [("open/#", 0)], username="carol", password="pw")
        talker = connected(srv.port, "talker", username="alice", password="secret")
        talker.publish("open/warmup", b"w")
        listener.expect(PUBLISH)
        service.stall_s = 10
        # A CONNECT waits for the stalled service; the loop does not.
        waiting = RawClient(srv.port)
        waiting.send(connect_packet("newcomer", username="alice", password="other"))
        t0 = time.monotonic()
        talker.publish("open/warmup", b"during the stall")
        p = listener.expect(PUBLISH, timeout=2)
        assert p.payload == b"during the stall" and time.monotonic() - t0 < 0.3
        # The timeout answers for the service: denied (auth.http.when_down = deny).
        ack = waiting.expect(CONNACK, timeout=3)
        assert ack.body[1] == 5
        assert 0.3 <= time.monotonic() - t0 < 2.5
        # A second failure opens the breaker; then nothing is asked and refusals are at once.
        assert refused(srv.port, "n2", username="alice", password="other2") == 5
        asked = len(service.requests)
        t1 = time.monotonic()
        assert refused(srv.port, "n3", username="alice", password="other3") == 5
        assert time.monotonic() - t1 < 0.3
        assert len(service.requests) == asked
        m = srv.metrics()
        assert m["tcpms_mqtt_auth_http_breaker_open"] == 1
        assert m['tcpms_mqtt_auth_http_requests_total{outcome="skipped"}'] >= 1
        service.release.set()


def test_when_down_the_password_file_decides(tmp_path):
    pw = tmp_path / "passwd"
    add_user(pw, "dave", "fallback", create=True)
    dead = AuthService()
    url = dead.url
    dead.die()  # nothing listens there any more: connections are refused
    with mqtt_server("--threads", "1", "--auth-http-url", url, "--password-file", str(pw),
                     "--auth-http-when-down", "password_file", "--auth-http-timeout-ms", "300") as srv:
        c = connected(srv.port, "d1", username="dave", password="fallback")
        assert refused(srv.port, "d2", username="dave", password="wrong") == 4
        # Authorization falls back too (no ACL file: allowed).
        listener, codes = sub(srv.port, "d3", [("x/#", 1)], username="dave", password="fallback")
        assert codes == [1]
        c.publish("x/y", b"through", qos=0)
        assert listener.expect(PUBLISH).payload == b"through"
        assert srv.metrics()['tcpms_mqtt_auth_http_fallbacks_total{check="connect"}'] >= 2


def test_a_service_that_dies_and_comes_back():
    service = AuthService()
    port = service.port
    with mqtt_server("--threads", "1", "--auth-http-url", service.url, "--auth-http-timeout-ms", "300",
                     "--auth-http-failure-threshold", "1", "--auth-http-retry-after-ms", "500",
                     "--auth-http-allow-ttl-s", "0") as srv:
        connected(srv.port, "a1", username="alice", password="secret").ping()
        service.die()
        assert refused(srv.port, "a2", username="alice", password="secret") == 5  # down: deny
        back = AuthService(port)
        try:
            deadline = time.monotonic() + 5
            while True:  # the breaker tries again after retry_after_ms
                c = RawClient(srv.port)
                _, rc = c.connect("a3", username="alice", password="secret")
                c.close()
                if rc == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert rc == 0
            assert back.asked("connect", client_id="a3")
        finally:
            back.die()


def test_a_connect_sent_in_time_gets_its_answer_however_long_the_server_takes_to_find_it(service):
    """The connect deadline is the client's budget to send CONNECT; the server's own waits
    after it (here the auth service, 2 s) get the login deadline from the CONNECT's arrival,
    so a client that sent its CONNECT 2 s into a 3 s deadline is answered, not cut at 3 s."""
    service.stall_s = 2.0
    with mqtt_server("--threads", "1", "--connect-timeout", "3", "--login-timeout", "3",
                     "--auth-http-url", service.url, "--auth-http-timeout-ms", "5000") as srv:
        c = RawClient(srv.port, timeout=10)
        time.sleep(2.0)
        _, rc = c.connect("late-but-in-time", username="alice", password="secret")
        assert rc == 0
        c.ping()
        m = srv.metrics()
        assert m["tcpms_mqtt_connect_timeouts_total"] == 0
        assert m["tcpms_mqtt_login_timeouts_total"] == 0
        # A CONNECT the server cannot answer within the deadline from its arrival is closed,
        # and counted as the server's.
        service.stall_s = 4.5
        late = RawClient(srv.port, timeout=10)
        late.send(connect_packet("never-answered", username="carol", password="pw"))  # not cached
        with pytest.raises((ConnectionError, TimeoutError, OSError)):
            late.expect(CONNACK)
        assert srv.metrics()["tcpms_mqtt_login_timeouts_total"] == 1


def test_a_login_the_server_is_still_working_on_is_not_cut_at_the_connect_deadline(service):
    """The login deadline (60 s unless set) is the server's, not the client's: an auth service
    taking 2 s with a 1 s connect deadline still ends in CONNACK 0, not a close."""
    service.stall_s = 2.0
    with mqtt_server("--threads", "1", "--connect-timeout", "1", "--auth-http-url", service.url,
                     "--auth-http-timeout-ms", "5000") as srv:
        c = RawClient(srv.port, timeout=10)
        _, rc = c.connect("slow-to-check", username="alice", password="secret")
        assert rc == 0
        c.ping()
        m = srv.metrics()
        assert m["tcpms_mqtt_login_timeouts_total"] == 0
        assert m["tcpms_mqtt_connect_timeouts_total"] == 0
