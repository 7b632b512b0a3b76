"""Test certificates made with the openssl CLI in a temporary directory: a CA, a server
certificate for localhost/127.0.0.1, client certificates (valid, expired, revoked, from
another CA), and a CRL. Nothing is checked in: every run makes its own."""
import os
import subprocess
import tempfile

CA_CNF = """
[ca]
default_ca = test_ca
[test_ca]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
crlnumber = {dir}/crlnumber
default_md = sha256
default_crl_days = 30
policy = anything
unique_subject = no
copy_extensions = copy
[anything]
commonName = supplied
[server_ext]
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
[client_ext]
extendedKeyUsage = clientAuth
subjectAltName = email:{{cn}}@example.com
"""


def run(*args, cwd=None):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl " + " ".join(args) + "\n" + r.stderr)
    return r.stdout


class CA:
    """A CA in `dir`/name: sign() makes certificates, revoke() and crl() a revocation list."""

    def __init__(self, root, name):
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "newcerts"))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(self.dir, "crlnumber"), "w") as f:
            f.write("1000\n")
        self.key = os.path.join(self.dir, "ca.key")
        self.cert = os.path.join(self.dir, "ca.pem")
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.key, "-out", self.cert, "-days", "30", "-subj", f"/CN={name}")

    def _cnf(self, cn):
        path = os.path.join(self.dir, "ca.cnf")
        with open(path, "w") as f:
            f.write(CA_CNF.format(dir=self.dir).replace("{cn}", cn))
        return path

    def sign(self, cn, kind="client", start=None, end=None, days=30, stem=None):
        """Returns (cert path, key path), named `stem` (default: the CN). `start`/`end` as
        YYYYMMDDHHMMSSZ for odd validity."""
        stem = stem or cn
        key = os.path.join(self.dir, f"{stem}.key")
        csr = os.path.join(self.dir, f"{stem}.csr")
        cert = os.path.join(self.dir, f"{stem}.pem")
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", csr, "-subj", f"/CN={cn}")
        args = ["ca", "-batch", "-config", self._cnf(cn), "-cert", self.cert, "-keyfile", self.key,
                "-in", csr, "-out", cert, "-extensions", f"{kind}_ext", "-notext"]
        if start:
            args += ["-startdate", start, "-enddate", end]
        else:
            args += ["-days", str(days)]
        run(*args)
        return cert, key

    def revoke(self, cert):
        run("ca", "-config", self._cnf("x"), "-cert", self.cert, "-keyfile", self.key, "-revoke", cert)

    def crl(self):
        path = os.path.join(self.dir, "crl.pem")
        run("ca", "-config", self._cnf("x"), "-cert", self.cert, "-keyfile", self.key, "-gencrl",
            "-out", path)
        return path


class Pki:
    """Everything a TLS test needs, in one temporary directory."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tcpms-pki-")
        root = self._tmp.name
        self.root = root
        self.ca = CA(root, "test-ca")
        self.rogue = CA(root, "rogue-ca")
        self.server_cert, self.server_key = self.ca.sign("localhost", "server")
        self.alice = self.ca.sign("alice")
        self.bob = self.ca.sign("bob")
        self.expired = self.ca.sign("old-device", start="20200101000000Z", end="20200201000000Z")
        self.revoked = self.ca.sign("stolen-device")
        self.ca.revoke(self.revoked[0])
        self.crl = self.ca.crl()
        self.mallory = self.rogue.sign("mallory")

    def listener(self, extra=""):
        """A config file's TLS listener on a free port, with the server certificate; `extra`:
        more of its settings, one per line."""
        return (f'[[listeners]]\nbind = "127.0.0.1:0"\ntls.cert_file = "{self.server_cert}"\n'
                f'tls.key_file = "{self.server_key}"\n{extra}')

    def cleanup(self):
        self._tmp.cleanup()
