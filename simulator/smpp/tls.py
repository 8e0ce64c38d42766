"""TLS for the SMSC's second port: the given certificate, or a self-signed one made at start.

A QA team pointing a gateway at ``smpps://`` wants the handshake, not a CA: the self-signed pair
(RSA 2048, ``CN=smslab``, valid for a year, with ``localhost`` and ``127.0.0.1`` as subject
alternative names) is written next to the carrier's database so a client can be told to trust it.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path


def server_context(cert: str | None, key: str | None, folder: Path) -> tuple[ssl.SSLContext, Path]:
    """The server's SSL context, and the certificate file it serves (for clients to trust)."""
    if cert is None:
        cert_path, key_path = folder / "smslab-smsc.crt", folder / "smslab-smsc.key"
        if not cert_path.exists() or not key_path.exists():
            _self_signed(cert_path, key_path)
    else:
        cert_path, key_path = Path(cert), Path(key) if key else None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert_path), str(key_path) if key_path else None)
    return context, cert_path


def _self_signed(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smslab")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
