"""The admin API against the MQTT broker: clients listed, looked up and kicked by MQTT client
id (offline persistent sessions included), pushes by client id, publishes."""
import json
import threading
import time

import paho.mqtt.client as mqtt

from tcpms_harness import Server


def client(cid, port, clean=True, received=None):
    c = mqtt.Client(client_id=cid, clean_session=clean)
    done = threading.Event()
    state = {"disconnected": threading.Event()}
    c.on_connect = lambda *a: done.set()
    c.on_disconnect = lambda *a: state["disconnected"].set()
    if received is not None:
        c.on_message = lambda cl, u, m: received.append((m.topic, m.payload))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert done.wait(10)
    return c, state


def test_clients_are_listed_paged_looked_up_and_kicked_by_client_id():
    with Server("--protocol", "mqtt", "--threads", "2") as srv:
        got = []
        a, a_state = client("alpha", srv.port, received=got)
        b, _ = client("bravo", srv.port)
        c, _ = client("charlie", srv.port, clean=False)
        c.subscribe("x/y", qos=1)
        time.sleep(0.3)
        c.disconnect()  # leaves an offline persistent session
        c.loop_stop()
        time.sleep(0.3)

        status, body = srv.admin("/api/v1/clients?limit=2")
        assert status == 200, body
        page = json.loads(body)
        assert [x["id"] for x in page["clients"]] == ["alpha", "bravo"]
        assert page["next_cursor"] == "bravo"
        status, body = srv.admin("/api/v1/clients?limit=2&cursor=bravo")
        page = json.loads(body)
        assert [x["id"] for x in page["clients"]] == ["charlie"]
        assert page["clients"][0]["connected"] is False
        assert page["next_cursor"] is None

        status, body = srv.admin("/api/v1/clients/alpha")
        assert status == 200 and json.loads(body)["connected"] is True, body
        assert srv.admin("/api/v1/clients/nobody")[0] == 404

        # Push to alpha over its own connection, subscribed or not.
        status, body = srv.admin("/api/v1/clients/alpha/send", method="POST",
                                 body=json.dumps({"topic": "direct/alpha", "payload": "hi",
                                                  "qos": 1}).encode(),
                                 headers={"Content-Type": "application/json"})
        assert status == 200, body
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert got == [("direct/alpha", b"hi")]
        # Queued for the offline persistent session at QoS 1: 202.
        status, body = srv.admin("/api/v1/clients/charlie/send", method="POST",
                                 body=json.dumps({"topic": "x/y", "payload": "later",
                                                  "qos": 1}).encode(),
                                 headers={"Content-Type": "application/json"})
        assert status == 202, body

        status, body = srv.admin("/api/v1/clients/alpha", method="DELETE")
        assert status == 200, body
        assert a_state["disconnected"].wait(5), "kicked client was not disconnected"
        assert srv.admin("/api/v1/clients/nobody", method="DELETE")[0] == 404
        for x in (a, b):
            x.loop_stop()


def api(srv, path, method="GET", body=None):
    return srv.api(path, method, body)


def v5_client(cid, port, received=None):
    c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
    done = threading.Event()
    c.on_connect = lambda *a, **k: done.set()
    if received is not None:
        c.on_message = lambda cl, u, m: received.append((m.topic, m.payload))
    c.connect("127.0.0.1", port, keepalive=45)
    c.loop_start()
    assert done.wait(10)
    return c


def test_client_details_sessions_subscriptions_and_filters():
    """Issue 18: a client's peer as host:port, protocol version, keep-alive, its subscription
    filters with QoS and options, queue and in-flight counts; listings filtered; offline
    sessions listed and deleted (not a connected client's); subscriptions by filter and topic."""
    from paho.mqtt.subscribeoptions import SubscribeOptions
    with Server("--protocol", "mqtt", "--threads", "2") as srv:
        five = v5_client("five", srv.port)
        five.subscribe([("a/#", SubscribeOptions(qos=1, noLocal=True)), ("b/+/c", SubscribeOptions(qos=2))])
        old, _ = client("old-timer", srv.port, clean=False)
        old.subscribe("a/x", qos=1)
        time.sleep(0.3)
        old.disconnect()
        old.loop_stop()
        time.sleep(0.3)

        status, c = api(srv, "/api/v1/clients/five")
        assert status == 200, c
        host, port = c["peer"].rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        d = c["details"]
        assert d["protocol_version"] == "5.0" and d["keep_alive_s"] == 45
        assert d["queued"] == 0 and d["inflight"] == 0 and d["subscription_count"] == 2
        subs = {s["filter"]: s for s in c["subscriptions"]}
        assert subs["a/#"]["qos"] == 1 and subs["a/#"]["no_local"] is True
        assert subs["b/+/c"]["qos"] == 2 and "no_local" not in subs["b/+/c"]
        assert api(srv, "/api/v1/clients/five/subscriptions")[1]["subscriptions"] == c["subscriptions"]
        # Listings show the peer too (it was "" for MQTT clients).
        status, page = api(srv, "/api/v1/clients")
        assert all(x["peer"] for x in page["clients"] if x["connected"]), page
        assert [x["id"] for x in api(srv, "/api/v1/clients?state=offline")[1]["clients"]] == ["old-timer"]
        assert [x["id"] for x in api(srv, "/api/v1/clients?q=fiv")[1]["clients"]] == ["five"]
        assert api(srv, "/api/v1/clients?state=maybe")[0] == 400

        # Subscriptions by filter and by topic.
        status, body = api(srv, "/api/v1/subscriptions?filter=a/%23")
        assert [(s["client_id"], s["filter"]) for s in body["subscriptions"]] == [("five", "a/#")]
        status, body = api(srv, "/api/v1/subscriptions?topic=a/x")
        assert sorted((s["client_id"], s["filter"]) for s in body["subscriptions"]) == [
            ("five", "a/#"), ("old-timer", "a/x")]
        assert api(srv, "/api/v1/subscriptions")[0] == 400

        # Sessions: the offline one is listed and deleted; a connected one is not deleted.
        status, body = api(srv, "/api/v1/sessions")
        assert [s["id"] for s in body["sessions"]] == ["old-timer"]
        assert api(srv, "/api/v1/sessions/five", method="DELETE")[0] == 409
        assert api(srv, "/api/v1/clients/old-timer", method="DELETE")[0] == 409  # not connected
        status, body = api(srv, "/api/v1/sessions/old-timer", method="DELETE")
        assert status == 200 and body["status"] == "deleted", body
        assert api(srv, "/api/v1/sessions/old-timer", method="DELETE")[0] == 404
        assert api(srv, "/api/v1/sessions")[1]["sessions"] == []
        back = mqtt.Client(client_id="old-timer", clean_session=False)
        flags = {}
        ready = threading.Event()
        back.on_connect = lambda c, u, f, rc: (flags.update(f), ready.set())
        back.connect("127.0.0.1", srv.port)
        back.loop_start()
        assert ready.wait(5) and flags.get("session present") == 0
        back.loop_stop()
        five.loop_stop()


def test_publish_counts_receivers_and_sys_is_the_brokers():
    """The publish answer has `receivers` (docs showed it, the server never sent it); the API
    may not publish (retained or not) into $SYS/, nor push there, nor delete its retained
    messages (issue 14 #7)."""
    with Server("--protocol", "mqtt", "--threads", "2", "--sys-interval", "1") as srv:
        got = []
        subs = [client(f"s{i}", srv.port, received=got)[0] for i in range(3)]
        for s in subs:
            s.subscribe("news/#", qos=1)
        time.sleep(0.3)
        status, body = api(srv, "/api/v1/publish", "POST", {"topic": "news/today", "payload": "hi", "qos": 1})
        assert status == 200 and body["receivers"] == 3, body
        status, body = api(srv, "/api/v1/publish", "POST", {"topic": "nobody/home", "payload": "x"})
        assert status == 200 and body["receivers"] == 0, body
        for topic in ("$SYS/broker/version", "$SYS/x", "$SYS"):
            status, body = api(srv, "/api/v1/publish", "POST",
                               {"topic": topic, "payload": "forged", "retain": True})
            assert status == 403 and "$SYS" in body["error"], body
        status, body = api(srv, "/api/v1/clients/s0/send", "POST", {"topic": "$SYS/x", "payload": "y"})
        assert status == 403, body
        time.sleep(1.2)
        status, body = api(srv, "/api/v1/retained/$SYS/broker/version")
        assert status == 200 and body["payload"] != "forged"
        assert api(srv, "/api/v1/retained/$SYS/broker/version", method="DELETE")[0] == 403
        for s in subs:
            s.loop_stop()


def test_retained_messages_listed_read_and_deleted():
    with Server("--protocol", "mqtt", "--threads", "1", "--sys-interval", "0") as srv:
        for i in range(5):
            api(srv, "/api/v1/publish", "POST", {"topic": f"cfg/dev{i}", "payload": f"v{i}", "retain": True})
        api(srv, "/api/v1/publish", "POST",
            {"topic": "bin/blob", "payload": "AP8=", "encoding": "base64", "retain": True})
        time.sleep(0.3)
        status, body = api(srv, "/api/v1/retained?filter=cfg/%2B&limit=2")
        assert status == 200 and [r["topic"] for r in body["retained"]] == ["cfg/dev0", "cfg/dev1"]
        cursor = body["next_cursor"]
        status, body = api(srv, f"/api/v1/retained?filter=cfg/%2B&limit=10&cursor={cursor}")
        assert [r["topic"] for r in body["retained"]] == ["cfg/dev2", "cfg/dev3", "cfg/dev4"]
        assert body["next_cursor"] is None
        status, body = api(srv, "/api/v1/retained/cfg/dev3")
        assert status == 200 and body == {"topic": "cfg/dev3", "payload": "v3", "qos": 0, "payload_bytes": 2}
        status, body = api(srv, "/api/v1/retained/bin/blob")
        assert body["encoding"] == "base64" and body["payload"] == "AP8="
        assert api(srv, "/api/v1/retained?filter=a/%23/b")[0] == 400
        status, body = api(srv, "/api/v1/retained/cfg/dev3", method="DELETE")
        assert status == 200, body
        assert api(srv, "/api/v1/retained/cfg/dev3")[0] == 404
        assert api(srv, "/api/v1/retained/cfg/dev3", method="DELETE")[0] == 404
        # A new subscriber no longer gets it.
        got = []
        c, _ = client("late", srv.port, received=got)
        c.subscribe("cfg/#")
        time.sleep(0.5)
        assert sorted(t for t, _ in got) == ["cfg/dev0", "cfg/dev1", "cfg/dev2", "cfg/dev4"]
        assert srv.metrics()["tcpms_mqtt_retained_messages"] == 5
        c.loop_stop()


def test_stats_have_the_brokers_message_rates_and_figures():
    """The dashboard showed "Messages in/s: n/a" for MQTT: the push target reported nothing."""
    with Server("--protocol", "mqtt", "--threads", "2") as srv:
        got = []
        sub, _ = client("sub", srv.port, received=got)
        sub.subscribe("t", qos=0)
        pub, _ = client("pub", srv.port)
        api(srv, "/api/v1/stats")
        for _ in range(50):
            pub.publish("t", b"x")
        time.sleep(0.8)
        status, s = api(srv, "/api/v1/stats")
        assert s["protocol"] == "mqtt"
        assert s["messages_in_total"] == 50 and s["messages_out_total"] == 50, s
        assert s["messages_in_per_s"] > 0 and s["messages_out_per_s"] > 0
        p = s["protocol_stats"]
        for key in ("sessions_connected", "sessions_offline", "subscriptions", "retained", "dropped",
                    "auth_failures", "queued", "inflight"):
            assert key in p, key
        assert p["sessions_connected"] == 2 and p["subscriptions"] == 1
        sub.loop_stop()
        pub.loop_stop()


def test_topic_viewer_taps():
    with Server("--protocol", "mqtt", "--threads", "2") as srv:
        status, tap = api(srv, "/api/v1/taps", "POST", {"filter": "room/+/temp"})
        assert status == 201 and tap["messages"] == [], tap
        pub, _ = client("thermo", srv.port)
        pub.publish("room/1/temp", b"21.5")
        pub.publish("room/2/humidity", b"40")
        api(srv, "/api/v1/publish", "POST", {"topic": "room/2/temp", "payload": "19"})
        time.sleep(0.5)
        status, r = api(srv, f"/api/v1/taps/{tap['id']}?after=0")
        assert [(m["topic"], m["payload"]) for m in r["messages"]] == [("room/1/temp", "21.5"),
                                                                      ("room/2/temp", "19")]
        status, r2 = api(srv, f"/api/v1/taps/{tap['id']}?after={r['next']}")
        assert r2["messages"] == []
        assert api(srv, "/api/v1/taps", "POST", {"filter": "a/#/b"})[0] == 400
        assert api(srv, f"/api/v1/taps/{tap['id']}", method="DELETE")[0] == 200
        assert api(srv, f"/api/v1/taps/{tap['id']}")[0] == 404
        pub.loop_stop()


def test_connect_disconnect_and_auth_failures_are_logged_at_info():
    """No connect, disconnect or authentication-failure line was logged, even at debug."""
    with Server("--protocol", "mqtt", "--threads", "1", "--auth-user", "u:p") as srv:
        c = mqtt.Client(client_id="logged-1")
        c.username_pw_set("u", "p")
        c.connect("127.0.0.1", srv.port, keepalive=17)
        c.loop_start()
        time.sleep(0.3)
        c.disconnect()
        c.loop_stop()
        bad = mqtt.Client(client_id="intruder")
        bad.username_pw_set("u", "wrong")
        bad.connect("127.0.0.1", srv.port)
        bad.loop_start()
        time.sleep(0.5)
        bad.loop_stop()
        srv.wait_for(lambda: "authentication failed" in srv.output(), timeout=5)
        out = srv.output()
        line = next(l for l in out.splitlines() if "client connected" in l and "logged-1" in l)
        assert "[info]" in line and "127.0.0.1:" in line and '"3.1.1"' in line and "keep_alive_s 17" in line
        line = next(l for l in out.splitlines() if "client disconnected" in l and "logged-1" in l)
        assert "client sent DISCONNECT" in line
        line = next(l for l in out.splitlines() if "authentication failed" in l)
        assert "intruder" in line and "bad user name or password" in line


def test_client_log_lines_are_rate_limited_and_can_be_json():
    with Server("--protocol", "mqtt", "--threads", "1", "--log-format", "json",
                "--log-client-events-per-s", "0.5", "--log-client-events-burst", "3") as srv:
        for i in range(20):
            c = mqtt.Client(client_id=f"storm-{i}")
            c.connect("127.0.0.1", srv.port)
            c.disconnect()
        time.sleep(0.5)
        records = [json.loads(l) for l in srv.output().splitlines() if l.startswith("{")]
        assert records and all("time" in r and "level" in r for r in records)
        events = [r for r in records if r.get("msg") in ("client connected", "client disconnected")]
        assert 1 <= len(events) <= 4, events
        assert events[0]["client_id"].startswith("storm-") and events[0]["peer"].startswith("127.0.0.1:")
        assert srv.metrics()["tcpms_mqtt_log_lines_dropped_total"] >= 30
