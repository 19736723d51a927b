"""TLS for manager and worker connections, as CCTools uses it.

The manager presents a key and certificate (``WorkQueue(ssl=(key, cert))``, or ``ssl=True``
for a fresh self-signed pair).  The worker (``--ssl``) encrypts but, like CCTools, does not
verify the certificate: TLS here protects the traffic from eavesdroppers, and the password
(``--password``) is what authenticates the two ends.
"""

from __future__ import annotations

import atexit
import os
import shutil
import ssl
import tempfile
from typing import Any


def server_context(spec: Any) -> ssl.SSLContext | None:
    """A server context from ``True`` (self-signed) or a ``(key, cert)`` pair of paths; None
    (plain text) from a false value or a pair with neither given, as CCTools does (its own
    test programs pass ``ssl=(None, None)``)."""
    if not spec:
        return None
    if spec is True:
        key, cert = self_signed_pair()
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        if spec[0] is None and spec[1] is None:
            return None
        if spec[0] is None or spec[1] is None:
            missing = "key" if spec[0] is None else "certificate"
            raise ValueError(f"ssl=(key_file, cert_file) names no {missing} file: {spec!r}")
        key, cert = (os.fspath(p) for p in spec)
    else:
        raise ValueError("ssl must be True or a (key_file, cert_file) pair, "
                         f"not {spec!r}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def self_signed_pair() -> tuple[str, str]:
    """A throw-away RSA key and self-signed certificate, made in-process (``cryptography``)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "work-queue")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    tmp = tempfile.mkdtemp(prefix="wq-ssl-")
    atexit.register(shutil.rmtree, tmp, True)
    key_path, cert_path = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path
