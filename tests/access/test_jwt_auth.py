"""Bearer JWTs with real signatures: a test RSA key pair, its JWKS served over local
HTTP, tokens signed by PyJWT. Every kind of bad token is refused; a key rotation is
picked up when a token names the new key."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from access_helpers import Identity, auth_server, code_of
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelServer
from orchestrator_server.api.auth.config import parse_auth

ISSUER = "https://idp.test"
AUDIENCE = "orchestrator"


class Jwks:
    """A JWKS endpoint on loopback whose keys the test changes."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, kid: str, key: rsa.RSAPrivateKey) -> None:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        self.keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    endpoint = Jwks()
    yield endpoint
    endpoint.server.shutdown()


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 300,
        "permissions": ["acme:runner", "other-system:superuser"],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _token(key: Any, kid: str = "k1", alg: str = "RS256", **changes: Any) -> str:
    return jwt.encode(_claims(**changes), key, algorithm=alg, headers={"kid": kid})


def _caller(live: Any, token: str) -> Identity:
    return Identity(live.stub, (("authorization", f"Bearer {token}"),))


async def _list(live: Any, token: str) -> tuple[grpc.StatusCode, str]:
    who = _caller(live, token)
    return await code_of(who.stub.ListAgents(pb.ListAgentsRequest(), **who.kw()))


async def test_tokens_are_verified_and_bad_ones_refused(
    devmodel: DevModelServer, tmp_path: Path, jwks: Jwks
) -> None:
    signing = _key()
    jwks.publish("k1", signing)
    auth = parse_auth(
        {
            "enabled": True,
            "jwt": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "jwks_url": jwks.url,
                "algorithms": ["RS256"],
                "min_refresh_seconds": 0,
                "leeway_seconds": 5,
            },
        }
    )
    async with auth_server(tmp_path, devmodel.base_url, auth=auth) as live:
        assert await _list(live, _token(signing)) == (grpc.StatusCode.OK, "")
        now = int(time.time())
        unauthenticated = (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
        public_pem = signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        good = _token(signing)
        head, _, signature = good.split(".")
        forged_payload = jwt.utils.base64url_encode(
            json.dumps(_claims(sub="mallory", permissions=["acme:admin"])).encode()
        ).decode()
        cases = {
            "expired": _token(signing, exp=now - 60, iat=now - 400),
            "not yet valid": _token(signing, nbf=now + 120),
            "wrong issuer": _token(signing, iss="https://evil.test"),
            "wrong audience": _token(signing, aud="someone-else"),
            "no expiry": _token(signing, exp=None),
            "alg none": jwt.encode(_claims(), None, algorithm="none", headers={"kid": "k1"}),
            "HS256 with the public key": _hs256_with(public_pem),
            "tampered payload": f"{head}.{forged_payload}.{signature}",
            "unknown kid": _token(_key(), kid="k2"),
            "garbage": "not.a.token",
        }
        results = {name: await _list(live, token) for name, token in cases.items()}
        assert results.pop("expired") == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")
        assert results == dict.fromkeys(results, unauthenticated)

        # Rotation: the identity provider publishes a new key; a token naming it is
        # accepted once the server fetches the set again.
        rotated = _key()
        jwks.publish("k2", rotated)
        assert await _list(live, _token(rotated, kid="k2")) == (grpc.StatusCode.OK, "")


def _hs256_with(secret: bytes) -> str:
    """A token signed HS256 with the public key as the shared secret (key confusion);
    PyJWT refuses to do this, so the signature is made by hand."""
    import base64
    import hashlib
    import hmac

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'})}.{part(_claims())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


async def test_claims_become_tenant_roles(
    devmodel: DevModelServer, tmp_path: Path, jwks: Jwks
) -> None:
    signing = _key()
    jwks.publish("k1", signing)
    auth = parse_auth(
        {
            "enabled": True,
            "jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks.url},
        }
    )
    async with auth_server(tmp_path, devmodel.base_url, auth=auth) as live:
        runner = _caller(live, _token(signing))
        create = runner.stub.CreateAgent(
            pb.CreateAgentRequest(agent={"agent_id": "a1"}), **runner.kw()
        )
        # acme:runner may not create agents; no other tenant is its.
        assert await code_of(create) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
        other = Identity(live.stub, (*runner.metadata, ("x-tenant-id", "globex")))
        listing = other.stub.ListAgents(pb.ListAgentsRequest(), **other.kw())
        assert await code_of(listing) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "TENANT_ACCESS_DENIED",
        )
        # A token cannot claim an API key's principal.
        claimed = _caller(live, _token(signing, sub="apikey:0123456789abcdef"))
        listing = claimed.stub.ListAgents(pb.ListAgentsRequest(), **claimed.kw())
        assert (await code_of(listing))[0] == grpc.StatusCode.UNAUTHENTICATED


def test_the_configuration_refuses_unsafe_jwt_settings() -> None:
    base = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/dev/null"}
    for bad, why in (
        ({**base, "algorithms": ["none"]}, "is not allowed"),
        ({**base, "algorithms": ["HS256"]}, "HS256 needs"),  # a secret, configured explicitly
        ({**base, "leeway_seconds": 3600}, "leeway"),
        ({"issuer": ISSUER, "audience": AUDIENCE}, "jwks_url or jwks_file"),
        ({**base, "jwks_url": "http://idp.example/jwks"}, "must be https"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_auth({"enabled": True, "jwt": bad})
