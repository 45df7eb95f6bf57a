"""TLS and mutual TLS on the gRPC port (certificates made by the test)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import start_live_server
from orchestrator.v1 import agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator_devmodel import DevModelServer


def make_cert(
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
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
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


async def test_tls_and_mutual_tls(devmodel: DevModelServer, tmp_path: Path) -> None:
    ca = make_cert("test ca", ca=True)
    server_cert, server_key = make_cert("localhost", ca)
    client_cert, client_key = make_cert("a client", ca)
    files = {
        "ca.pem": pem(ca[0]),
        "server.pem": pem(server_cert),
        "server.key": pem_key(server_key),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    live = await start_live_server(
        tmp_path / "tls.db",
        devmodel.base_url,
        tls_cert_file=str(tmp_path / "server.pem"),
        tls_key_file=str(tmp_path / "server.key"),
        tls_client_ca_file=str(tmp_path / "ca.pem"),
    )
    try:
        request = pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="secure"))
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=pem(ca[0]),
            private_key=pem_key(client_key),
            certificate_chain=pem(client_cert),
        )
        async with grpc.aio.secure_channel(live.address, with_cert) as channel:
            reply = await pb_grpc.OrchestratorServiceStub(channel).CreateAgent(request)
            assert reply.created

        # Without a client certificate the handshake fails (mutual TLS).
        without_cert = grpc.ssl_channel_credentials(root_certificates=pem(ca[0]))
        async with grpc.aio.secure_channel(live.address, without_cert) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await pb_grpc.OrchestratorServiceStub(channel).GetAgent(
                    pb.GetAgentRequest(agent_id="secure"), timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

        # Plaintext is refused too.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.GetAgent(pb.GetAgentRequest(agent_id="secure"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await live.stop()
