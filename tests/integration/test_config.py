"""tcpms-server's configuration: a TOML file (--config), flags over the file, --check-config,
clear errors naming the file, line and setting, and SIGHUP reloads (live settings applied,
the rest reported, a broken file keeping the running configuration)."""
import os
import signal
import subprocess
import tempfile
import time

from tcpms_harness import Server, binary


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_check_config_shows_where_each_value_came_from():
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "tcpms.toml")
        write(cfg, 'protocol = "echo"\nthreads = 1\n[log]\nlevel = "warn"\n')
        r = subprocess.run([binary("tcpms-server"), "--config", cfg, "--threads", "2",
                            "--check-config"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        lines = {l.split("=")[0].strip(): l for l in r.stdout.splitlines() if "=" in l}
        assert 'protocol = "echo"' in lines["protocol"] and f"{cfg}:1" in lines["protocol"]
        assert "threads = 2" in lines["threads"] and "flag --threads" in lines["threads"]
        assert "# default" in lines["processes"]


def test_bad_file_names_file_line_and_setting():
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "bad.toml")
        write(cfg, 'protocol = "echo"\n[mqtt]\nmax_paket_size = 10\n')
        r = subprocess.run([binary("tcpms-server"), "--config", cfg], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 64
        assert f"{cfg}:3" in r.stderr and "max_packet_size" in r.stderr, r.stderr
        write(cfg, 'threads = "two"\n')
        r = subprocess.run([binary("tcpms-server"), "--config", cfg], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 64 and f"{cfg}:1" in r.stderr and "threads" in r.stderr, r.stderr


def test_sighup_applies_live_settings_reports_the_rest_and_survives_a_broken_file():
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "tcpms.toml")
        write(cfg, 'protocol = "echo"\nthreads = 1\n[log]\nlevel = "info"\n')
        with Server("--config", cfg) as srv:
            c = srv.connect()
            write(cfg, 'protocol = "echo"\nthreads = 2\n[log]\nlevel = "debug"\n')
            srv.proc.send_signal(signal.SIGHUP)
            srv.wait_for(lambda: "could not change threads live" in srv.output()
                         and "log.level" in srv.output(), what="reload lines")
            write(cfg, 'protocol = "echo"\nthreads = [\n')
            srv.proc.send_signal(signal.SIGHUP)
            srv.wait_for(lambda: f"{cfg}:" in srv.output(), what="parse error logged")
            # Still serving, same connection.
            c.sendall(b"still here")
            assert c.recv(64) == b"still here"
            assert srv.proc.poll() is None


def test_help_shows_numbers_as_written_and_a_mistyped_flag_gets_a_suggestion():
    """--help printed 0.20000000000000001; a flag typo got no "did you mean" (the file did)."""
    r = subprocess.run([binary("tcpms-server"), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert "0.20000000000000001" not in r.stdout and "=0.2 " in r.stdout.replace("\n", " ")
    r = subprocess.run([binary("tcpms-server"), "--max-inflght", "5"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 64
    assert "did you mean --max-inflight?" in r.stderr, r.stderr
    r = subprocess.run([binary("tcpms-server"), "--auth-http-ulr", "http://x/"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 64 and "did you mean --auth-http-url?" in r.stderr, r.stderr
