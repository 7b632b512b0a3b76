"""tcpms-doctor on this machine: its JSON must say what /proc says, it must change nothing
without --apply, and --apply (root only) must write a sysctl and persist it. The --apply test
touches one harmless sysctl (net.ipv4.tcp_fin_timeout, per network namespace) through a fake
root whose only real file is that one, and restores the original value."""
import json
import os
import resource
import subprocess

import pytest

from tcpms_harness import binary

SYSCTLS = [
    "fs.nr_open", "fs.file-max", "net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog",
    "net.core.netdev_max_backlog", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_mem",
    "net.netfilter.nf_conntrack_max", "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_fin_timeout",
]
FIN_TIMEOUT = "/proc/sys/net/ipv4/tcp_fin_timeout"


def proc_sysctl(key):
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return None


def netstat(name):
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for header, values in zip(lines[::2], lines[1::2]):
        if header.startswith("TcpExt:"):
            return int(dict(zip(header.split()[1:], values.split()[1:]))[name])
    raise KeyError(name)


def meminfo(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def doctor(*args, check_json=True):
    proc = subprocess.run([binary("tcpms-doctor"), *args], capture_output=True, text=True,
                          timeout=120)
    report = json.loads(proc.stdout) if check_json and "--json" in args else None
    return proc, report


def by_name(report):
    return {f["name"]: f for f in report["findings"]}


def test_json_matches_proc():
    proc, report = doctor("--connections", "1000000", "--role", "both", "--json",
                          "--measure-pairs", "500")
    assert proc.returncode in (0, 1, 2), proc.stderr
    assert proc.returncode == report["exit_code"]
    worst = max(({"OK": 0, "WARN": 1, "FAIL": 2}[f["severity"]] for f in report["findings"]))
    assert worst == report["exit_code"]
    assert report["connections"] == 1000000 and report["role"] == "both"
    findings = by_name(report)

    for key in SYSCTLS:
        real = proc_sysctl(key)
        if key == "net.netfilter.nf_conntrack_max" and real is None:
            assert findings[key]["value"] == "conntrack not loaded"
            continue
        assert real is not None, key
        assert findings[key]["observed"][: len(real)] == real, key
        if findings[key]["severity"] != "OK" and findings[key]["sysctl"]:
            assert findings[key]["sysctl"]["key"] == key
            assert findings[key]["fix"], key

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert report["limits"]["nofile_soft"] == soft
    assert report["limits"]["nofile_hard"] == hard
    assert findings["RLIMIT_NOFILE"]["observed"] == [soft, hard]
    per_worker = hard - report["fd_reserve"]
    if hard < 1000000 + report["fd_reserve"] and not report["limits"]["can_raise_hard"]:
        assert findings["RLIMIT_NOFILE"]["severity"] == "FAIL"
        # both: a server and a client fleet, ceil(N / (hard - reserve)) each
        assert report["processes_needed"] == 2 * -(-1000000 // per_worker)

    avail = findings["MemAvailable"]["observed"][0]
    assert abs(avail - meminfo("MemAvailable")) < 0.1 * avail

    # Counters only grow, so what the doctor read is at most what we read after it.
    for counter in ("ListenOverflows", "ListenDrops"):
        assert findings["TcpExt." + counter]["observed"][0] <= netstat(counter)

    m = report["measurement"]
    if m["error"]:
        assert report["kernel_bytes_source"] == "default"
    else:
        assert report["kernel_bytes_source"] == "measured"
        assert report["kernel_bytes_per_socket"] == m["bytes_per_socket"]
        assert 256 < m["bytes_per_socket"] < 1 << 20
        assert 0 < m["pairs"] <= 500
    assert report["apply"] is None


def test_table_lists_every_check():
    proc, _ = doctor("--connections", "1000000", "--measure-pairs", "0")
    assert proc.returncode in (0, 1, 2)
    _, report = doctor("--connections", "1000000", "--measure-pairs", "0", "--json")
    for f in report["findings"]:
        assert f["name"] in proc.stdout
    assert f"result: {report['worst']} (exit {report['exit_code']})" in proc.stdout
    assert "STATUS CHECK" in proc.stdout


def test_changes_nothing_without_apply():
    before = {k: proc_sysctl(k) for k in SYSCTLS}
    proc, _ = doctor("--connections", "1000000", "--role", "both", "--measure-pairs", "0")
    assert proc.returncode in (0, 1, 2)
    assert {k: proc_sysctl(k) for k in SYSCTLS} == before


@pytest.mark.parametrize("args", [
    ["--connections", "0"],
    [],
    ["--connections", "10", "--role", "proxy"],
    ["--connections", "10", "--persist", "/tmp/x.conf"],  # --persist needs --apply
    ["--connections", "ten"],
])
def test_bad_usage_exits_64(args):
    proc, _ = doctor(*args, check_json=False)
    assert proc.returncode == 64, (args, proc.stdout, proc.stderr)


def test_help_documents_exit_codes():
    proc, _ = doctor("--help", check_json=False)
    assert proc.returncode == 0
    assert "0 every check OK, 1 at least one WARN, 2 at least one FAIL, 64 bad usage" in proc.stdout


def fake_root(root, **overrides):
    """A host ready for 10000 server connections; overrides are sysctl key -> text."""
    values = {
        "fs.nr_open": "1048576", "fs.file-max": "2097152", "net.core.somaxconn": "4096",
        "net.ipv4.tcp_max_syn_backlog": "4096", "net.core.netdev_max_backlog": "1000",
        "net.ipv4.tcp_mem": "1048576 1572864 2097152", "net.ipv4.tcp_fin_timeout": "30",
    }
    values.update(overrides)
    for key, text in values.items():
        path = root / "proc" / "sys" / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if text.startswith("/"):
            path.symlink_to(text)
        else:
            path.write_text(text + "\n")
    (root / "proc" / "meminfo").write_text("MemAvailable:   16777216 kB\nSlab: 1000 kB\n")
    (root / "proc" / "net").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "net" / "netstat").write_text(
        "TcpExt: ListenOverflows ListenDrops\nTcpExt: 0 0\n")
    return root


@pytest.mark.parametrize("overrides,code", [
    ({}, 0),
    ({"net.core.somaxconn": "128"}, 1),
    ({"fs.nr_open": "1024"}, 2),
])
def test_exit_code_follows_worst_finding(tmp_path, overrides, code):
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 10256:
        pytest.skip("RLIMIT_NOFILE soft below 10256: the real limit would fail the run")
    root = fake_root(tmp_path, **overrides)
    proc, _ = doctor("--connections", "10000", "--root", str(root), "--measure-pairs", "0",
                     check_json=False)
    assert proc.returncode == code, proc.stdout


def test_apply_writes_harmless_sysctl_and_persists(tmp_path):
    if os.geteuid() != 0 or not os.access(FIN_TIMEOUT, os.W_OK):
        pytest.skip("needs root and a writable /proc/sys")
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 10256:
        pytest.skip("RLIMIT_NOFILE soft below 10256")
    with open(FIN_TIMEOUT) as f:
        original = f.read().strip()
    root = fake_root(tmp_path / "root", **{"net.ipv4.tcp_fin_timeout": FIN_TIMEOUT})
    dropin = tmp_path / "99-tcpms-test.conf"
    try:
        with open(FIN_TIMEOUT, "w") as f:
            f.write("45\n")
        proc, report = doctor("--connections", "10000", "--root", str(root), "--measure-pairs",
                              "0", "--json", "--apply", "--persist", str(dropin))
        assert proc.returncode == 0, proc.stdout
        assert report["apply"]["sysctls"] == [
            {"key": "net.ipv4.tcp_fin_timeout", "value": "30", "error": ""}]
        assert report["apply"]["persist_error"] == ""
        with open(FIN_TIMEOUT) as f:
            assert f.read().strip() == "30"
        assert "\nnet.ipv4.tcp_fin_timeout = 30\n" in dropin.read_text()
    finally:
        with open(FIN_TIMEOUT, "w") as f:
            f.write(original + "\n")


DEPLOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy")


def deploy_sysctls():
    values = {}
    with open(os.path.join(DEPLOY, "99-tcpms-1m.conf")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.lstrip("-").partition("=")
                values[key.strip()] = value.strip()
    return values


@pytest.mark.parametrize("role", ["server", "client", "both"])
def test_deploy_sysctl_file_satisfies_the_doctor_for_a_million(tmp_path, role):
    values = deploy_sysctls()
    root = fake_root(tmp_path, **values)
    (root / "proc" / "meminfo").write_text("MemAvailable:   67108864 kB\n")  # a 64 GiB host
    _, report = doctor("--connections", "1000000", "--role", role, "--root", str(root),
                       "--source-addrs", "19", "--measure-pairs", "0", "--json")
    not_ok = {f["name"]: f["value"] for f in report["findings"]
              if f["severity"] != "OK" and f["name"] != "RLIMIT_NOFILE"}
    assert not_ok == {}


def test_deploy_unit_limit_nofile_fits_a_million_and_nr_open():
    with open(os.path.join(DEPLOY, "tcpms.service")) as f:
        limit = [int(line.split("=", 1)[1]) for line in f if line.startswith("LimitNOFILE=")]
    assert len(limit) == 1
    assert 1000000 + 256 <= limit[0] <= int(deploy_sysctls()["fs.nr_open"])
