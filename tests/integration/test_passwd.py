"""tcpms-passwd, the real binary: create, add, update, delete, --stdin, the terminal prompt
(through a pty), usage errors (exit 64), errors that name the file (exit 1), mode 0600, and the
format: every hash is checked with Python's own PBKDF2, and Mosquitto 2.0 itself (the installed
`mosquitto` broker) accepts our file, which proves the format both ways (the unit tests read
files mosquitto_passwd wrote)."""
import base64
import hashlib
import os
import pty
import re
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

from tcpms_harness import binary

LINE_RE = re.compile(r"^([^:]+):\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")
FAST = ["-I", "1000"]  # keep the tests quick; the default is 20000


def passwd(*args, stdin=None):
    return subprocess.run([binary("tcpms-passwd"), *args], input=stdin, capture_output=True,
                          text=True, timeout=30)


def entries(path):
    """user -> (iterations, salt, digest) for every line; fails on any other line."""
    out = {}
    with open(path) as f:
        for line in f.read().splitlines():
            if not line or line.startswith("#"):
                continue
            m = LINE_RE.match(line)
            assert m, f"not a $7$ line: {line!r}"
            out[m.group(1)] = (int(m.group(2)), base64.b64decode(m.group(3)),
                               base64.b64decode(m.group(4)))
    return out


def verifies(path, user, password):
    iterations, salt, digest = entries(path)[user]
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations) == digest


def test_create_add_update_delete(tmp_path):
    pw = str(tmp_path / "passwd")
    r = passwd("-c", "--stdin", *FAST, pw, "alice", stdin="s3cret\n")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(pw).st_mode) == 0o600
    e = entries(pw)
    assert list(e) == ["alice"]
    assert e["alice"][0] == 1000 and len(e["alice"][1]) == 12 and len(e["alice"][2]) == 64
    assert verifies(pw, "alice", "s3cret")
    assert not verifies(pw, "alice", "s3cret\n")

    assert passwd("--stdin", *FAST, pw, "bob", stdin="hunter2\n").returncode == 0
    assert passwd("--stdin", *FAST, pw, "alice", stdin="changed").returncode == 0  # no newline
    e = entries(pw)
    assert list(e) == ["alice", "bob"]  # updated in place, order kept
    assert verifies(pw, "alice", "changed") and verifies(pw, "bob", "hunter2")

    r = passwd("-D", pw, "alice")
    assert r.returncode == 0, r.stderr
    assert list(entries(pw)) == ["bob"]
    assert stat.S_IMODE(os.stat(pw).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["passwd"]  # no temporary files left behind


def test_default_iterations_and_fresh_salts(tmp_path):
    pw = str(tmp_path / "passwd")
    assert passwd("-c", "--stdin", pw, "a", stdin="same\n").returncode == 0
    assert passwd("--stdin", pw, "b", stdin="same\n").returncode == 0
    e = entries(pw)
    assert e["a"][0] == 20000
    assert e["a"][1] != e["b"][1] and e["a"][2] != e["b"][2]


def test_comments_and_other_users_survive(tmp_path):
    pw = tmp_path / "passwd"
    assert passwd("-c", "--stdin", *FAST, str(pw), "a", stdin="x\n").returncode == 0
    pw.write_text("# managed by ops\n" + pw.read_text())
    assert passwd("--stdin", *FAST, str(pw), "b", stdin="y\n").returncode == 0
    assert pw.read_text().startswith("# managed by ops\na:$7$1000$")


def test_create_replaces_existing_file(tmp_path):
    pw = str(tmp_path / "passwd")
    assert passwd("-c", "--stdin", *FAST, pw, "a", stdin="x\n").returncode == 0
    assert passwd("-c", "--stdin", *FAST, pw, "b", stdin="y\n").returncode == 0
    assert list(entries(pw)) == ["b"]


def run_on_pty(args, answers):
    """Runs tcpms-passwd on a pseudo-terminal, answering each prompt in turn once it appears
    (the prompt flushes pending input, so an early answer would be lost). Returns the exit
    code and everything the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(binary("tcpms-passwd"), ["tcpms-passwd", *args])
    seen = b""

    def read_until(token, timeout=10):
        nonlocal seen
        deadline = time.time() + timeout
        while token not in seen and time.time() < deadline:
            try:
                seen += os.read(fd, 1024)
            except OSError:
                break
        assert token in seen, seen

    for prompt, answer in answers:
        read_until(prompt)
        os.write(fd, answer)
    deadline = time.time() + 15
    while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)  # a test must never hang on a prompt
        time.sleep(0.02)
    status = waited[1]
    try:
        seen += os.read(fd, 4096)
    except OSError:
        pass
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen


def test_prompt_without_echo(tmp_path):
    pw = str(tmp_path / "passwd")
    code, seen = run_on_pty(["-c", *FAST, pw, "carol"],
                            [(b"Password: ", b"typed-secret\n"),
                             (b"Reenter password: ", b"typed-secret\n")])
    assert code == 0, seen
    assert b"typed-secret" not in seen  # never echoed
    assert verifies(pw, "carol", "typed-secret")


def test_prompt_mismatch_is_an_error(tmp_path):
    pw = str(tmp_path / "passwd")
    code, seen = run_on_pty(["-c", *FAST, pw, "carol"],
                            [(b"Password: ", b"one\n"), (b"Reenter password: ", b"two\n")])
    assert code == 1 and b"passwords do not match" in seen, seen
    assert not os.path.exists(pw)


@pytest.mark.parametrize("args", [
    [],                                   # no FILE, no USER
    ["only-file"],                        # no USER
    ["-c", "-D", "f", "u"],               # contradictory
    ["-D", "--stdin", "f", "u"],
    ["-I", "10", "f", "u"],               # below the minimum
    ["--frobnicate", "f", "u"],
    ["f", "a:b"],                         # ':' cannot be in a username
    ["f", "u", "extra"],
])
def test_bad_usage_exits_64(tmp_path, args):
    r = subprocess.run([binary("tcpms-passwd"), *args], capture_output=True, text=True,
                       cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 64, (args, r.stdout, r.stderr)
    assert not os.path.exists(tmp_path / "f")


def test_help_exits_0():
    r = passwd("--help")
    assert r.returncode == 0 and "Usage" in r.stdout


def test_errors_name_the_file_and_reason(tmp_path):
    missing = str(tmp_path / "missing")
    r = passwd("--stdin", missing, "u", stdin="x\n")
    assert r.returncode == 1
    assert f"{missing}: No such file or directory (use -c to create it)" in r.stderr

    pw = tmp_path / "passwd"
    pw.write_text("good:$7$1000$AAAAAAAAAAAAAAAA$" + "A" * 86 + "==\nbroken line\n")
    before = pw.read_text()
    r = passwd("--stdin", *FAST, str(pw), "u", stdin="x\n")
    assert r.returncode == 1
    assert f"{pw}:2: expected USER:HASH; file left unchanged" in r.stderr
    assert pw.read_text() == before

    ok = str(tmp_path / "ok")
    assert passwd("-c", "--stdin", *FAST, ok, "a", stdin="x\n").returncode == 0
    r = passwd("-D", ok, "nobody")
    assert r.returncode == 1 and f"{ok}: user 'nobody' not found" in r.stderr

    for stdin, why in [("", "no password on stdin"), ("\n", "empty password")]:
        r = passwd("--stdin", ok, "a", stdin=stdin)
        assert r.returncode == 1 and why in r.stderr, r.stderr
    r = subprocess.run([binary("tcpms-passwd"), ok, "a"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "use --stdin" in r.stderr

    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(ok, ro / "passwd")
    os.chmod(ro, 0o500)
    try:
        if os.geteuid() != 0:  # root ignores directory permissions
            r = passwd("--stdin", *FAST, str(ro / "passwd"), "b", stdin="x\n")
            assert r.returncode == 1 and "Permission denied" in r.stderr
    finally:
        os.chmod(ro, 0o700)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("mosquitto") is None or shutil.which("mosquitto_sub") is None,
                    reason="mosquitto is not installed")
def test_mosquitto_accepts_our_file(tmp_path):
    pw = str(tmp_path / "passwd")
    assert passwd("-c", "--stdin", *FAST, pw, "alice", stdin="wonder land\n").returncode == 0
    assert passwd("--stdin", pw, "bob", stdin="b0b\n").returncode == 0  # default iterations
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert broker.poll() is None and time.time() < deadline, broker.stdout.read()
                time.sleep(0.05)

        def sub(user, password):
            return subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-u", user,
                                   "-P", password, "-t", "t", "-E"],
                                  capture_output=True, text=True, timeout=30)

        for user, password in [("alice", "wonder land"), ("bob", "b0b")]:
            r = sub(user, password)
            assert r.returncode == 0, (user, r.stderr)
        for user, password in [("alice", "wonder Land"), ("bob", ""), ("carol", "b0b")]:
            r = sub(user, password)
            assert r.returncode != 0 and "not authorised" in r.stderr, (user, r.stderr)
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def test_a_user_name_that_is_not_utf8_is_refused(tmp_path):
    """Issue 14 #13: such a user could never log in (the broker's codec refuses the CONNECT)."""
    f = tmp_path / "f"
    # The argument reaches the program as the single byte 0xE9 (Latin-1, not UTF-8): refused.
    r = subprocess.run([binary("tcpms-passwd").encode(), b"-c", b"--stdin", str(f).encode(), b"caf\xe9"],
                       input=b"pw\n", capture_output=True, timeout=30)
    assert r.returncode == 64, r
    assert b"not valid UTF-8" in r.stderr
    assert not f.exists()
    ok = subprocess.run([binary("tcpms-passwd"), "-c", "--stdin", str(f), "café"], input="pw\n",
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
