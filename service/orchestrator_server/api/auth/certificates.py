"""Identities of verified client certificates (mutual TLS).

gRPC has already checked the certificate against the configured client CA before a call
reaches the server; this reads who it names: its URI SANs (a SPIFFE id), then its DNS
SANs, then its subject. The operator maps those identities to principals.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from cryptography import x509

CACHE_ENTRIES = 1024


def certificate_identities(pem: bytes) -> list[str]:
    """A certificate's identities in order of preference: URI SANs, DNS SANs, subject
    (as an RFC 4514 string, e.g. `CN=billing,O=Acme`)."""
    cert = x509.load_pem_x509_certificate(pem)
    identities: list[str] = []
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        identities += names.get_values_for_type(x509.UniformResourceIdentifier)
        identities += names.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    identities.append(cert.subject.rfc4514_string())
    return identities


class CertificatePrincipals:
    """Maps the certificate of a call to the principal the operator configured for it."""

    def __init__(self, principals: Mapping[str, str]) -> None:
        self._principals = dict(principals)
        # Parsing a certificate costs ~50 µs; a connection presents the same one for
        # every call.
        self._seen: OrderedDict[bytes, str | None] = OrderedDict()

    def principal_of(self, auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
        """The principal of the call's client certificate, or None (no certificate, or
        one whose identities are not mapped)."""
        pem = next(iter(auth_context.get("x509_pem_cert") or ()), None)
        if pem is None:
            return None
        if pem in self._seen:
            self._seen.move_to_end(pem)
            return self._seen[pem]
        principal = next(
            (
                self._principals[identity]
                for identity in certificate_identities(pem)
                if identity in self._principals
            ),
            None,
        )
        self._seen[pem] = principal
        while len(self._seen) > CACHE_ENTRIES:
            self._seen.popitem(last=False)
        return principal
