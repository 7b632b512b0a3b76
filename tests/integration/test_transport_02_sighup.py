"""A certificate renewed under load: 1,000 live TLS connections, the certificate and key files
replaced and SIGHUP sent. New handshakes present the new certificate; every one of the 1,000
stays up and answers a PINGREQ; a broken file on the next SIGHUP keeps the certificate in use."""
import os
import shutil
import signal
import socket
import ssl
import time

from mqtt_raw import PINGREQ_PACKET, PINGRESP, RawClient, mqtt_server
from tcpms_harness import raise_nofile_limit
from tls_certs import Pki

N = 1000


def peer_cert(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                         server_hostname="localhost") as s:
        return s.getpeercert(binary_form=True)


def der(pem_path):
    return ssl.PEM_cert_to_DER_cert(open(pem_path).read().split("-----END CERTIFICATE-----")[0] +
                                    "-----END CERTIFICATE-----\n")


def test_sighup_swaps_the_certificate_under_1000_connections():
    raise_nofile_limit(N + 500)
    pki = Pki()
    live_cert = os.path.join(pki.root, "live.pem")
    live_key = os.path.join(pki.root, "live.key")
    shutil.copy(pki.server_cert, live_cert)
    shutil.copy(pki.server_key, live_key)
    renewed_cert, renewed_key = pki.ca.sign("localhost", "server", stem="renewed")  # new key and serial
    cfg = os.path.join(pki.root, "sighup.toml")
    with open(cfg, "w") as f:
        f.write(f'listen = "127.0.0.1:0"\n[[listeners]]\nbind = "127.0.0.1:0"\n'
                f'tls.cert_file = "{live_cert}"\ntls.key_file = "{live_key}"\n')
    clients = []
    try:
        with mqtt_server("--config", cfg, "--threads", "2") as srv:
            port = srv.port_of("tls")
            assert peer_cert(port, pki.ca.cert) == der(pki.server_cert)
            ctx = ssl.create_default_context(cafile=pki.ca.cert)
            for i in range(N):
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname="localhost")
                c = RawClient.over(s)
                assert c.connect(f"held-{i}", keepalive=0)[1] == 0
                clients.append(c)

            # Renew: the files change under their names, then SIGHUP.
            shutil.copy(renewed_cert, live_cert)
            shutil.copy(renewed_key, live_key)
            srv.proc.send_signal(signal.SIGHUP)
            srv.wait_for(lambda: "reloaded " + live_cert in srv.output(), what="reload logged")
            assert peer_cert(port, pki.ca.cert) == der(renewed_cert)

            # None of the 1,000 was dropped: each still answers.
            for c in clients:
                c.send(PINGREQ_PACKET)
            for c in clients:
                c.expect(PINGRESP, timeout=10)
            m = srv.metrics()
            assert m["tcpms_connections"] >= N
            assert m.get('tcpms_tls_handshake_failures_total{cause="other"}', 0) == 0

            # A broken file: the reload fails, says so, and the renewed certificate stays.
            with open(live_cert, "w") as f:
                f.write("not a certificate\n")
            srv.proc.send_signal(signal.SIGHUP)
            srv.wait_for(lambda: "keeping the old certificate" in srv.output(), what="error logged")
            assert peer_cert(port, pki.ca.cert) == der(renewed_cert)
            clients[0].send(PINGREQ_PACKET)
            clients[0].expect(PINGRESP)
    finally:
        for c in clients:
            c.close()
        pki.cleanup()
