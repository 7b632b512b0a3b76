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
