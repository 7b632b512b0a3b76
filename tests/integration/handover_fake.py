"""A stand-in for the new process of an upgrade handover (docs/upgrade.md), started by a
running tcpms-server on SIGUSR2 when upgrade.binary names it. It speaks the handover frames
(src/proto/handover/handover_frame.h) on the socket TCPMS_HANDOVER_FD names and misbehaves as
HANDOVER_FAKE says:

  die-after-listeners   take the listeners, receive the first batch, exit without answering
                        (once the file HANDOVER_FAKE_RELEASE names exists, if it names one)
  version               say it speaks versions 7-9 only; print the refusal it gets
  garbage               send bytes that are no frame at all
  take-none             take the listeners, answer every batch "not taken", then hold the
                        listeners without accepting until killed
  workers-die           a new supervisor (worker processes, handover version 3): take the
                        ports, give every old worker a channel, play each new worker up to its
                        listeners, receive each one's first frame after them, exit without
                        answering
  dies-at-done          (version 4) take the listeners and every batch ("all taken", the
                        descriptors kept), then exit at Done without answering it
  worker-dies-after-a-batch
                        a new supervisor as in workers-die, but each new worker speaks version
                        4, takes every batch and answers Done; new worker 0 dies (its channel
                        closes) right after answering its first batch, the others wait until
                        their old workers hang up
"""
import selectors
import os
import socket
import struct
import sys
import time


def frame(kind, body, version=1):
    return struct.pack("<IBB", len(body) + 2, version, kind) + body


PENDING = {"data": b"", "fds": []}  # a stream: one read may hold the start of the next frame


def receive(sock, want_fds=253):
    """One whole frame: (version, kind, body, descriptors received so far)."""
    data = PENDING["data"]
    while len(data) < 4 or len(data) < 4 + struct.unpack_from("<I", data)[0]:
        msg, more, _flags, _addr = socket.recv_fds(sock, 1 << 16, want_fds)
        if not msg:
            raise SystemExit("handover fake: the server closed the socket")
        data += msg
        PENDING["fds"] += more
    length = struct.unpack_from("<I", data)[0]
    PENDING["data"] = data[4 + length:]
    fds, PENDING["fds"] = PENDING["fds"], []
    return data[4], data[5], data[6:4 + length], fds


def take_listeners_as_new_process(sock, highest=3):
    """Hello (versions 1-highest), Welcome, Listeners answered "all taken". Returns the
    Welcome's loops (a supervisor's: its process count)."""
    sock.sendall(frame(1, struct.pack("<HHI", 1, highest, os.getpid())))
    _, kind, body, _ = receive(sock)
    assert kind == 2, kind  # Welcome: u16 version, u32 pid, u32 loops, str16 protocol
    version, _pid, loops = struct.unpack_from("<HII", body)
    assert version == highest, version
    _, kind, body, fds = receive(sock)
    assert kind == 4, kind  # Listeners
    n = struct.unpack_from("<I", body)[0]
    sock.sendall(frame(5, struct.pack("<II", 0, n) + b"\x01" * n, version))  # Taken: all
    return loops, fds


def take_all(sock, kind, body, version):
    """Answers a Batch (6) or State (8) frame "all taken"."""
    sequence, n = struct.unpack_from("<II", body)
    sock.sendall(frame(5, struct.pack("<II", sequence, n) + b"\x01" * n, version))


def give_channels(sock, processes):
    """As a new supervisor: one socket pair per worker, their far ends to the old supervisor
    (Workers). Returns our ends."""
    ours, theirs = [], []
    for _ in range(processes):
        a, b = socket.socketpair()
        ours.append(a)
        theirs.append(b)
    body = struct.pack("<II", os.getpid(), processes) + b"".join(
        struct.pack("<I", i) for i in range(processes))
    socket.send_fds(sock, [frame(9, body, 3)], [b.fileno() for b in theirs])  # Workers
    for b in theirs:
        b.close()
    return ours


def dies_at_done(sock):
    take_listeners_as_new_process(sock, highest=4)
    kept, batches = [], 0
    while True:
        _, kind, body, fds = receive(sock)
        kept += fds  # held open, never touched: the old process keeps serving them
        if kind == 7:  # Done
            print(f"handover fake: took {batches} batches; dying at done", flush=True)
            sys.exit(3)
        take_all(sock, kind, body, 4)
        batches += kind == 6


def worker_dies_after_a_batch(sock):
    processes, _ports = take_listeners_as_new_process(sock)
    ours = give_channels(sock, processes)
    for a in ours:
        PENDING["data"], PENDING["fds"] = b"", []
        take_listeners_as_new_process(a, highest=4)
    # The old workers hand over in parallel: one frame reader per channel.
    pending = {a.fileno(): {"data": b"", "fds": []} for a in ours}
    sel = selectors.DefaultSelector()
    for i, a in enumerate(ours):
        sel.register(a, selectors.EVENT_READ, i)
    kept, batches, open_channels = [], [0] * processes, processes
    taken, dones = [0] * processes, [0] * processes
    while open_channels:
        for key, _ in sel.select():
            a, i = key.fileobj, key.data
            PENDING.update(pending[a.fileno()])
            try:
                _, kind, body, fds = receive(a)
            except SystemExit:  # the old worker hung up
                sel.unregister(a)
                open_channels -= 1
                continue
            pending[a.fileno()] = {"data": PENDING["data"], "fds": PENDING["fds"]}
            kept += fds
            if kind == 7:  # Done: the first asks whether we hold them all, a second commits
                dones[i] += 1
                print(f"handover fake: worker {i} was sent done ({dones[i]})", flush=True)
                a.sendall(frame(7, struct.pack("<I", taken[i]), 4))
                continue
            take_all(a, kind, body, 4)
            batches[i] += kind == 6
            if kind == 6:
                taken[i] += struct.unpack_from("<II", body)[1]
            if i == 0 and kind == 6:
                print("handover fake: worker 0 took a batch; dying", flush=True)
                sel.unregister(a)
                a.close()
                open_channels -= 1
    print(f"handover fake: every old worker hung up; batches taken {batches}", flush=True)
    sys.exit(3)


def workers_die(sock):
    processes, _ports = take_listeners_as_new_process(sock)
    ours = give_channels(sock, processes)
    # Each channel is its own stream: the frame reader's leftovers are per channel.
    for a in ours:
        PENDING["data"], PENDING["fds"] = b"", []
        take_listeners_as_new_process(a)
    kinds = []
    for a in ours:
        PENDING["data"], PENDING["fds"] = b"", []
        _, kind, _, fds = receive(a)
        kinds.append(kind)
    print(f"handover fake: {processes} workers sent frame kinds {kinds}; dying", flush=True)
    sys.exit(3)


def main():
    mode = os.environ.get("HANDOVER_FAKE", "")
    sock = socket.socket(fileno=int(os.environ["TCPMS_HANDOVER_FD"]))
    if mode == "workers-die":
        workers_die(sock)
    if mode == "dies-at-done":
        dies_at_done(sock)
    if mode == "worker-dies-after-a-batch":
        worker_dies_after_a_batch(sock)
    if mode == "garbage":
        sock.sendall(b"\xff\xff\xff\xff this is no handover frame")
        sock.recv(1)  # until the server hangs up
        return
    lowest, highest = (7, 9) if mode == "version" else (1, 2)  # 2: State, never sent here
    sock.sendall(frame(1, struct.pack("<HHI", lowest, highest, os.getpid())))
    version, kind, body, _ = receive(sock)
    if kind == 3:  # Refuse: u16 code, str16 reason
        code, n = struct.unpack_from("<HH", body)
        print(f"handover fake: refused ({code}): {body[4:4 + n].decode()}", flush=True)
        return
    assert kind == 2, kind  # Welcome
    _, kind, body, fds = receive(sock)
    assert kind == 4, kind  # Listeners
    n = struct.unpack_from("<I", body)[0]
    sock.sendall(frame(5, struct.pack("<II", 0, n) + b"\x01" * n))  # Taken: all of them
    if mode == "take-none":
        batches = 0
        while True:
            _, kind, body, fds = receive(sock)
            for fd in fds:
                os.close(fd)  # not taken: the old process serves it on
            if kind == 7:  # Done
                print(f"handover fake: took none of {batches} batches; holding", flush=True)
                while True:
                    time.sleep(60)
            sequence, n = struct.unpack_from("<II", body)
            sock.sendall(frame(5, struct.pack("<II", sequence, n) + b"\x00" * n))
            batches += 1
    _, kind, body, fds = receive(sock)
    print(f"handover fake: got frame kind {kind} with {len(fds)} descriptors; dying",
          flush=True)
    release = os.environ.get("HANDOVER_FAKE_RELEASE")
    deadline = time.monotonic() + 60
    while release and not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)  # the test acts while the batch is parked, then lets us die
    sys.exit(3)  # no answer: the running server must resume every connection of the batch


if __name__ == "__main__":
    main()
