"""Samples the memory of a server's two generations during an upgrade (bench/upgrade.sh): the
summed VmRSS and, with PSS=1 (default), Pss (/proc/PID/smaps_rollup: each shared page counted
once) of the old server (ROOT_PID and its descendants at the first sample) and of the new one
(every other descendant of ROOT_PID or of the pid in PID_FILE once it differs), every INTERVAL seconds (0.25) until SIGTERM. After each
sample it rewrites OUT with the peaks so far as JSON: peak_total_rss_bytes (both generations
at one sample), with old and new at that moment, each generation's own peak
(peak_old_rss_bytes, peak_new_rss_bytes), the same for Pss, and the wall-clock times
the pid file changed and the old root exited.

usage: server_memory.py OUT PID_FILE ROOT_PID
"""
import json
import os
import signal
import sys
import time

from upgrade_driver import read_pid  # 0 when the file holds no pid


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def tree(root):
    seen, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo += children(p)
    return seen


def field_kb(path, name):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main():
    out, pid_file, root = sys.argv[1], sys.argv[2], int(sys.argv[3])
    interval = float(os.environ.get("INTERVAL", "0.25"))
    pss = os.environ.get("PSS", "1") == "1"
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    peak = {"samples": 0, "peak_total_rss_bytes": 0, "peak_total_pss_bytes": 0,
            "pid_file_changed_unix": None, "old_root_gone_unix": None}
    # The old generation is what ran at the first sample (the caller starts this once every
    # worker listens); whatever appears later in either tree is the new one, which runs as the
    # old supervisor's child until it writes the pid file.
    first = tree(root)
    while not stop:
        new_root = read_pid(pid_file)
        both = tree(root) | (tree(new_root) if new_root and new_root != root else set())
        both = {p for p in both if alive(p)}
        old, new = both & first, both - first
        if new_root and new_root != root and peak["pid_file_changed_unix"] is None:
            peak["pid_file_changed_unix"] = time.time()
        if not alive(root) and peak["old_root_gone_unix"] is None:
            peak["old_root_gone_unix"] = time.time()
        sums = {}
        for gen, pids in (("old", old), ("new", new)):
            sums[gen + "_rss"] = sum(field_kb(f"/proc/{p}/status", "VmRSS:") for p in pids)
            sums[gen + "_pss"] = sum(field_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids) if pss else 0
            sums[gen + "_processes"] = len(pids)
        peak["samples"] += 1
        for k, v in sums.items():
            if not k.endswith("processes"):
                peak[f"peak_{k}_bytes"] = max(peak.get(f"peak_{k}_bytes", 0), v)
        for kind in ("rss", "pss"):
            total = sums["old_" + kind] + sums["new_" + kind]
            if total > peak[f"peak_total_{kind}_bytes"]:
                peak[f"peak_total_{kind}_bytes"] = total
                peak[f"at_peak_{kind}"] = {k: v for k, v in sums.items() if k.endswith(kind) or k.endswith("processes")}
        with open(out + ".tmp", "w") as f:
            json.dump(peak, f)
        os.replace(out + ".tmp", out)
        time.sleep(interval)


if __name__ == "__main__":
    main()
