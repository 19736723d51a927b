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
import subprocess
import tempfile
from typing import Any


def server_context(spec: Any) -> ssl.SSLContext:
    """A server context from ``True`` (self-signed) or a ``(key, cert)`` pair of paths."""
    if spec is True:
        key, cert = self_signed_pair()
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
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
    """Create a throw-away key and self-signed certificate with the ``openssl`` command."""
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("ssl=True needs the openssl command to make a certificate; "
                           "give ssl=(key_file, cert_file) instead")
    tmp = tempfile.mkdtemp(prefix="wq-ssl-")
    atexit.register(shutil.rmtree, tmp, True)
    key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    subprocess.run([exe, "req", "-x509", "-newkey", "rsa:2048", "-keyout", key, "-out", cert,
                    "-sha256", "-days", "365", "-nodes", "-batch", "-subj", "/CN=work-queue"],
                   check=True, capture_output=True, timeout=60)
    return key, cert
