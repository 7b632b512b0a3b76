"""CONNECT to CONNACK times, clean and persistent (new ids: the session is held nowhere, so
with several workers every CONNECT with CleanSession 0 asks the others), with 1 and 2 worker
processes. Not a test: the figures in docs/mqtt.md, "Sessions across processes".

    TCPMS_BIN_DIR=build/release/bin python3 tests/integration/connect_latency.py
"""
import statistics
import time

from mqtt_raw import RawClient, DISCONNECT_PACKET, mqtt_server
def run(procs):
    with mqtt_server("--processes", str(procs), "--threads", "1", "--no-admin") as srv:
        time.sleep(1.0)
        out = {}
        for clean in (True, False):
            ts = []
            for i in range(300):
                c = RawClient(srv.port)
                t = time.perf_counter()
                present, rc = c.connect(f"m-{clean}-{i}", clean=clean)
                ts.append((time.perf_counter() - t) * 1e6)
                c.send(DISCONNECT_PACKET); c.close()
            ts.sort()
            out[clean] = (statistics.median(ts), ts[int(len(ts)*0.99)])
        return out

if __name__ == "__main__":
    for p in (1, 2):
        r = run(p)
        print(f"processes={p}: clean CONNECT->CONNACK median {r[True][0]:.0f} us p99 {r[True][1]:.0f} us; "
              f"persistent (new id) median {r[False][0]:.0f} us p99 {r[False][1]:.0f} us")
