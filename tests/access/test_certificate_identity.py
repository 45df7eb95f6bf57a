"""Mutual TLS: the principal is the operator's name for the verified certificate's
identity (its SPIFFE URI SAN here); an unmapped certificate is refused, and one of
another CA never gets a connection. A trusted proxy's certificate may carry an end
user's claims in a header; nobody else's may."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import grpc
from access_helpers import code_of
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import start_live_server
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator_devmodel import DevModelServer
from orchestrator_server.api.auth.config import parse_auth

Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _cert(name: str, issuer: Issued | None = None, uri: str = "") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if uri:
        names.append(x509.UniformResourceIdentifier(uri))
    if issuer is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def _pem(issued: Issued) -> tuple[bytes, bytes]:
    cert, key = issued
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


async def test_certificates_map_to_principals(devmodel: DevModelServer, tmp_path: Path) -> None:
    ca = _cert("test ca")
    other_ca = _cert("another ca")
    server = _pem(_cert("localhost", ca))
    (tmp_path / "ca.pem").write_bytes(_pem(ca)[0])
    (tmp_path / "server.pem").write_bytes(server[0])
    (tmp_path / "server.key").write_bytes(server[1])
    auth = parse_auth(
        {
            "enabled": True,
            "principals": {
                "billing-svc": {"tenants": {"billing": ["runner"]}},
                "gateway": {"tenants": {"billing": ["viewer"]}},
            },
            "mtls": {
                "principals": {
                    "spiffe://mesh/ns/billing/sa/agent": "billing-svc",
                    "spiffe://mesh/ns/edge/sa/gateway": "gateway",
                }
            },
            "jwt": {"issuer": "i", "audience": "a", "jwks_file": "/dev/null"},
            "trusted_proxy": {"principals": ["gateway"]},
        }
    )
    live = await start_live_server(
        tmp_path / "mtls.db",
        devmodel.base_url,
        auth=auth,
        tls_cert_file=str(tmp_path / "server.pem"),
        tls_key_file=str(tmp_path / "server.key"),
        tls_client_ca_file=str(tmp_path / "ca.pem"),
    )
    channels: list[grpc.aio.Channel] = []

    def stub(issued: Issued) -> pb_grpc.OrchestratorServiceStub:
        cert, key = _pem(issued)
        creds = grpc.ssl_channel_credentials(_pem(ca)[0], key, cert)
        channel = grpc.aio.secure_channel(live.address.replace("127.0.0.1", "localhost"), creds)
        channels.append(channel)
        return pb_grpc.OrchestratorServiceStub(channel)

    try:
        billing = stub(_cert("billing", ca, "spiffe://mesh/ns/billing/sa/agent"))
        assert await code_of(billing.ListAgents(pb.ListAgentsRequest())) == (
            grpc.StatusCode.OK,
            "",
        )
        create = billing.CreateAgent(pb.CreateAgentRequest(agent={"agent_id": "a"}))
        assert await code_of(create) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
        stranger = stub(_cert("stranger", ca, "spiffe://mesh/ns/other/sa/x"))
        assert await code_of(stranger.ListAgents(pb.ListAgentsRequest())) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "UNAUTHENTICATED",
        )
        foreign = stub(_cert("foreign", other_ca, "spiffe://mesh/ns/billing/sa/agent"))
        code, _ = await code_of(foreign.ListAgents(pb.ListAgentsRequest(), timeout=5))
        assert code == grpc.StatusCode.UNAVAILABLE  # the handshake fails

        # The trusted proxy forwards an end user; the user's claims decide.
        claims = {"sub": "carol", "permissions": ["billing:editor"]}
        header = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        gateway = stub(_cert("gateway", ca, "spiffe://mesh/ns/edge/sa/gateway"))
        forwarded = (("x-end-user-claims", header),)
        made = gateway.CreateAgent(
            pb.CreateAgentRequest(agent={"agent_id": "by_carol"}), metadata=forwarded
        )
        assert await code_of(made) == (grpc.StatusCode.OK, "")
        # The same header from a certificate that is not a trusted proxy is refused.
        spoofed = billing.ListAgents(pb.ListAgentsRequest(), metadata=forwarded)
        assert (await code_of(spoofed))[0] == grpc.StatusCode.UNAUTHENTICATED
    finally:
        for channel in channels:
            await channel.close()
        await live.stop()
