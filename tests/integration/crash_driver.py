"""Kill -9 under load, again and again: the proof that nothing acknowledged is lost.

A tcpms-server with a persistent store, N persistent subscribers (CleanSession 0, one topic,
QoS 1 or 2) and one publisher sending a steady numbered stream. Every cycle streams for a
while, kill -9's the server, starts it again on the same store, and reconnects everyone (the
subscribers must get CONNACK session present 1). At the end the publisher stops and every
subscriber must hold every message whose acknowledgement the publisher received (PUBACK for
QoS 1, PUBREC for QoS 2):
  - QoS 1: at least once, and in order (first occurrences in increasing sequence);
  - QoS 2: exactly once, in order.

Used by test_mqtt_14_persistence.py (small) and bench/persistence_soak.sh (long):

    python3 crash_driver.py --subscribers 1000 --qos 1 --kills 20 --seconds 1.5 --rate 20

All clients are raw MQTT 3.1.1 on asyncio in this one process (paho would need a thread per
client). Exit status 0 when every check held; the report goes to stdout."""
import argparse
import asyncio
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mqtt_raw import (CONNACK, DISCONNECT_PACKET, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL,  # noqa: E402
                      SUBACK, ack_packet, connect_packet, publish_packet, subscribe_packet)

LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
TOPIC = "crash/stream"


class ServerProc:
    """tcpms-server on a kernel-chosen port with a persistent store in `store_dir`."""

    def __init__(self, binary, store_dir, extra):
        self.binary, self.store_dir, self.extra = binary, store_dir, extra
        self.proc, self.port, self.log = None, None, []

    def start(self, timeout=60.0):
        args = [self.binary, "--protocol", "mqtt", "--listen", "127.0.0.1:0", "--no-admin",
                "--sys-interval", "0", "--persistence-dir", self.store_dir] + self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.log.append(line.rstrip("\n"))
            m = LISTEN_RE.search(line)
            if m:
                self.port = int(m.group(2))
                break
            if time.monotonic() > deadline:
                break
        if self.port is None or self.proc.poll() is not None:
            raise RuntimeError("server did not start:\n" + "\n".join(self.log[-30:]))
        # Keep draining its output so it never blocks on a full pipe.
        self._drain = asyncio.get_event_loop().run_in_executor(None, self._read_rest)
        if self.processes() > 1:
            wait_mesh(self.port, self.processes())

    def processes(self):
        for i, a in enumerate(self.extra):
            if a.startswith("--processes="):
                return int(a.split("=", 1)[1])
            if a == "--processes" and i + 1 < len(self.extra):
                return int(self.extra[i + 1])
        return 1

    def _read_rest(self):
        for line in self.proc.stdout:
            self.log.append(line.rstrip("\n"))

    def kill9(self):
        kill9_whole(self.proc)
        self.port = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def listeners(port):
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    return len([line for line in out.stdout.splitlines() if line.strip()])


def wait_mesh(port, n):
    """Every worker listens, and their mesh links are up (they dial every 200 ms): a persistent
    CONNECT before then could land on a worker that cannot ask the others for its session."""
    deadline = time.monotonic() + 10
    while listeners(port) < n:
        assert time.monotonic() < deadline, f"{n} workers listening"
        time.sleep(0.02)
    time.sleep(0.6)


def holder_of(port, local_port, tries=50):
    """The pid of the process holding the server side of the connection from `local_port`
    (None if it was not accepted in time)."""
    for _ in range(tries):
        out = subprocess.run(["ss", "-Htnp", "state", "established",
                              f"( sport = :{port} and dport = :{local_port} )"],
                             capture_output=True, text=True).stdout
        m = re.search(r"pid=(\d+)", out)
        if m:
            return m.group(1)
        time.sleep(0.01)
    return None


def holders(port):
    """The pids of the processes holding established connections on `port` (the workers, with
    --processes)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return set(re.findall(r"pid=(\d+)", out))


def kill9_whole(proc):
    """SIGKILL for the server and, with --processes, each of its workers at once: the
    supervisor is stopped first (so it restarts nobody and its death does not send the workers
    the SIGTERM of a clean stop), then every worker and the supervisor are killed."""
    pid = proc.pid
    try:
        os.kill(pid, signal.SIGSTOP)
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            workers = [int(w) for w in f.read().split()]
    except (OSError, ValueError):
        workers = []
    for w in workers:
        try:
            os.kill(w, signal.SIGKILL)
        except OSError:
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def read_packet(reader):
    head = await reader.readexactly(1)
    mult, length = 1, 0
    while True:
        b = (await reader.readexactly(1))[0]
        length += (b & 0x7F) * mult
        if not b & 0x80:
            break
        mult *= 128
    body = await reader.readexactly(length) if length else b""
    return head[0] >> 4, head[0] & 0x0F, body


def parse_publish(flags, body):
    qos = (flags >> 1) & 3
    n = struct.unpack("!H", body[:2])[0]
    rest = body[2 + n:]
    pid = struct.unpack("!H", rest[:2])[0] if qos else 0
    return qos, pid, (rest[2:] if qos else rest)


class Subscriber:
    def __init__(self, index, qos, topic_filter=TOPIC):
        self.client_id = f"crash-sub-{index}"
        self.qos = qos
        self.filter = topic_filter
        self.received = []       # sequence numbers in arrival order (duplicates included)
        self.awaiting_rel = set()  # QoS 2 ids delivered, PUBREL not yet seen (method B)
        self.subscribed = False
        self.problems = []
        self.task = None

    async def connect(self, port, expect_present, avoid=None):
        packet = connect_packet(self.client_id, clean=False, keepalive=120)
        for _ in range(30):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if avoid is None:
                break
            # The CONNECT's first byte: an MQTT listener accepts a connection only once it
            # speaks (TCP_DEFER_ACCEPT), and only then does a worker hold it.
            writer.write(packet[:1])
            await writer.drain()
            local = writer.get_extra_info("sockname")[1]
            if await asyncio.to_thread(holder_of, port, local) not in (avoid, None):
                packet = packet[1:]
                break
            writer.close()  # on the publisher's worker: another connection, before CONNECT
        else:
            raise RuntimeError(f"{self.client_id}: every connection landed on worker {avoid}")
        writer.write(packet)
        ptype, _, body = await asyncio.wait_for(read_packet(reader), 30)
        if ptype != CONNACK or body[1] != 0:
            raise RuntimeError(f"{self.client_id}: bad CONNACK {body!r}")
        present = bool(body[0] & 1)
        if expect_present and not present:
            self.problems.append("CONNACK session present 0 after a restart")
        if not self.subscribed:
            writer.write(subscribe_packet(1, [(self.filter, self.qos)]))
            ptype, _, body = await asyncio.wait_for(read_packet(reader), 30)
            if ptype != SUBACK:
                raise RuntimeError(f"{self.client_id}: no SUBACK")
            self.subscribed = True
        self.writer = writer
        self.task = asyncio.ensure_future(self.run(reader, writer))

    async def go_offline(self):
        """DISCONNECT: the session stays (CleanSession 0) and its messages queue in the store."""
        self.writer.write(DISCONNECT_PACKET)
        await self.writer.drain()
        self.writer.close()
        await asyncio.gather(self.task, return_exceptions=True)
        self.task = None

    async def run(self, reader, writer):
        try:
            while True:
                ptype, flags, body = await read_packet(reader)
                if ptype == PUBLISH:
                    qos, pid, payload = parse_publish(flags, body)
                    seq = int(payload.decode())
                    if qos == 1:
                        self.received.append(seq)
                        writer.write(ack_packet(PUBACK, pid))
                    elif qos == 2:
                        if pid not in self.awaiting_rel:  # a resend of one we have: not again
                            self.awaiting_rel.add(pid)
                            self.received.append(seq)
                        writer.write(ack_packet(PUBREC, pid))
                    else:
                        self.received.append(seq)
                elif ptype == PUBREL:
                    pid = struct.unpack("!H", body[:2])[0]
                    self.awaiting_rel.discard(pid)
                    writer.write(ack_packet(PUBCOMP, pid))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()


class Publisher:
    """Clean session; numbered messages at `rate`/s; a message counts as acknowledged at its
    PUBACK (QoS 1) or PUBREC (QoS 2, after which the server owns it)."""

    def __init__(self, qos, rate):
        self.qos, self.rate = qos, rate
        self.next_seq = 1
        self.acked = []
        self.inflight = {}  # pid -> seq
        self.conn = None  # opened ahead of a stream (open())

    async def open(self, port):
        """Connects; returns the pid of the worker holding the connection (None without
        worker processes)."""
        self.conn = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = self.conn
        writer.write(connect_packet("crash-publisher", clean=True))
        ptype, _, _ = await asyncio.wait_for(read_packet(reader), 30)
        assert ptype == CONNACK
        return await asyncio.to_thread(holder_of, port, writer.get_extra_info("sockname")[1])

    async def stream(self, port, seconds):
        if self.conn is None:
            await self.open(port)
        reader, writer = self.conn
        self.conn = None
        self.inflight.clear()

        async def acks():
            try:
                while True:
                    ptype, _, body = await read_packet(reader)
                    pid = struct.unpack("!H", body[:2])[0]
                    if ptype in (PUBACK, PUBREC) and pid in self.inflight:
                        self.acked.append(self.inflight.pop(pid))
                        if ptype == PUBREC:
                            writer.write(ack_packet(PUBREL, pid))
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                pass

        ack_task = asyncio.ensure_future(acks())
        start = time.monotonic()
        pid = 0
        try:
            while time.monotonic() - start < seconds and not ack_task.done():
                pid = pid % 65535 + 1
                seq = self.next_seq
                self.next_seq += 1
                self.inflight[pid] = seq
                writer.write(publish_packet(TOPIC, str(seq).encode(), qos=self.qos, pid=pid))
                await writer.drain()
                await asyncio.sleep(1.0 / self.rate)
        except (ConnectionError, OSError):
            pass
        return ack_task, writer


async def connect_all(subs, port, expect_present, parallel=100, avoid=None):
    sem = asyncio.Semaphore(parallel)

    async def one(s):
        async with sem:
            for attempt in range(50):
                try:
                    await s.connect(port, expect_present, avoid)
                    return
                except (ConnectionError, OSError, asyncio.TimeoutError):
                    await asyncio.sleep(0.1)
            raise RuntimeError(f"{s.client_id}: could not reconnect")

    await asyncio.gather(*(one(s) for s in subs))


async def drive(args):
    store_dir = args.store or tempfile.mkdtemp(prefix="tcpms-crash-")
    server = ServerProc(args.server, store_dir, args.server_arg)
    # --shared: one group; each message reaches one of them, and the check is on the union.
    topic_filter = f"$share/crash/{TOPIC}" if args.shared else TOPIC
    subs = [Subscriber(i, args.qos, topic_filter) for i in range(args.subscribers)]

    def all_delivered(acked):
        if args.shared:
            return acked <= set().union(*(s.received for s in subs))
        return all(acked <= set(s.received) for s in subs)

    pub = Publisher(args.qos, args.rate)
    restarts = []
    spread = []  # with --processes: how many workers held subscribers, after each (re)connect
    try:
        workers = server.processes()

        async def place(expect_present):
            # With worker processes the publisher's worker holds no subscriber: every delivery
            # crosses to another worker, whose store the acknowledgement must wait for.
            avoid = await pub.open(server.port) if workers > 1 else None
            await connect_all(subs, server.port, expect_present, avoid=avoid)
            if workers > 1:
                held = holders(server.port) - {avoid}
                # The kernel spreads connections at random: one that missed a worker moves.
                for _ in range(12):
                    if len(held) >= workers - 1:
                        break
                    await subs[0].go_offline()
                    await subs[0].connect(server.port, False, avoid)
                    held = holders(server.port) - {avoid}
                spread.append(len(held))
            # Offline ones get nothing live: what reaches them is only what the store kept.
            await asyncio.gather(*(s.go_offline() for s in subs[:args.offline]))

        server.start()
        await place(expect_present=False)
        for cycle in range(args.kills):
            # The kill lands while messages flow: the publisher is mid-stream.
            stream = asyncio.ensure_future(pub.stream(server.port, args.seconds + 5))
            await asyncio.sleep(args.seconds)
            server.kill9()
            ack_task, writer = await stream
            await asyncio.wait_for(ack_task, 10)
            writer.close()
            await asyncio.gather(*(s.task for s in subs if s.task), return_exceptions=True)
            t0 = time.monotonic()
            server.start()
            await place(expect_present=True)
            restarts.append(time.monotonic() - t0)
        # A last stretch without a kill, then the publisher stops and everything drains.
        stream = asyncio.ensure_future(pub.stream(server.port, args.seconds))
        ack_task, writer = await stream
        await asyncio.sleep(0.5)
        writer.close()
        await connect_all(subs[:args.offline], server.port, expect_present=True)
        acked = set(pub.acked)
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline:
            if all_delivered(acked):
                break
            await asyncio.sleep(0.2)
    finally:
        server.stop()
        for s in subs:
            if s.task:
                s.task.cancel()
        if not args.store and not args.keep:
            shutil.rmtree(store_dir, ignore_errors=True)

    failures = []
    acked = set(pub.acked)
    if args.shared:
        missing = sorted(acked - set().union(*(s.received for s in subs)))
        if missing:
            failures.append(f"the group: {len(missing)} acknowledged messages never delivered to "
                            f"any member, first {missing[:5]}")
    for s in ([] if args.shared else subs):
        got = s.received
        first, seen = [], set()
        for q in got:
            if q not in seen:
                seen.add(q)
                first.append(q)
        missing = sorted(acked - seen)
        if missing:
            failures.append(f"{s.client_id}: {len(missing)} acknowledged messages never delivered, "
                            f"first {missing[:5]}")
        if any(b <= a for a, b in zip(first, first[1:])):
            failures.append(f"{s.client_id}: out of order: {first[:50]}")
        if args.qos == 2 and len(got) != len(seen):
            failures.append(f"{s.client_id}: {len(got) - len(seen)} duplicates under QoS 2")
        failures += [f"{s.client_id}: {p}" for p in s.problems]
    if args.shared:
        failures += [f"{s.client_id}: {p}" for s in subs for p in s.problems]
    if spread and min(spread) < server.processes() - 1:
        failures.append(f"subscribers were not on every worker but the publisher's after each "
                        f"(re)connect: {spread}")
    dups = sum(len(s.received) - len(set(s.received)) for s in subs)
    print(f"crash_driver: {args.kills} kills, {args.subscribers} QoS {args.qos} subscribers, "
          f"{pub.next_seq - 1} published, {len(acked)} acknowledged, "
          f"{sum(len(s.received) for s in subs)} deliveries ({dups} duplicates); restart to all "
          f"reconnected: max {max(restarts, default=0):.2f} s, mean "
          f"{(sum(restarts) / len(restarts)) if restarts else 0:.2f} s"
          + (f"; other workers than the publisher's holding subscribers: {spread}" if spread else ""))
    for f in failures[:20]:
        print("FAIL", f)
    if failures:
        print("server log (last lines):\n" + "\n".join(server.log[-40:]))
    return 0 if not failures else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--server", default=os.path.join(
        os.environ.get("TCPMS_BIN_DIR", os.path.join(HERE, "..", "..", "build", "release", "bin")),
        "tcpms-server"))
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--qos", type=int, default=1, choices=(1, 2))
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=1.5, help="streaming per cycle")
    ap.add_argument("--rate", type=float, default=20, help="publishes per second")
    ap.add_argument("--drain-timeout", type=float, default=60)
    ap.add_argument("--shared", action="store_true",
                    help="the subscribers are one shared group ($share/crash/...): every "
                         "acknowledged message must reach one of them")
    ap.add_argument("--offline", type=int, default=0,
                    help="subscribers that are offline while the stream runs (they reconnect "
                         "after each restart and at the end)")
    ap.add_argument("--store", help="store directory (default: a fresh temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary store")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra tcpms-server argument (repeatable), e.g. --server-arg=--threads=2")
    args = ap.parse_args()
    return asyncio.run(drive(args))


if __name__ == "__main__":
    sys.exit(main())
