"""Test keys made on the spot, a local JWKS server that publishes them, and the tokens they sign.

The caller check (caller_check.py) is tested for real: real signatures, keys fetched over HTTP. Run it on
its own to try the API by hand, or from other test suites:

    python tests/caller_keys.py --port 8900

prints one JSON line (the server's settings, request headers with a valid token) and serves the keys.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # settings.py, when run as a script
from settings import Settings  # noqa: E402

{%- if cookiecutter.caller_check == "firebase_app_check" %}

PROJECT_NUMBER: str = Settings.model_fields["app_check_project_number"].default
APP_ID = f"1:{PROJECT_NUMBER}:web:0a1b2c3d4e5f6a7b"


def valid_claims(server: JwksServer) -> dict[str, Any]:
    """What Firebase App Check puts in a token for one of the project's apps."""
    now = int(time.time())
    return {
        "iss": f"https://firebaseappcheck.googleapis.com/{PROJECT_NUMBER}",
        "aud": [f"projects/{PROJECT_NUMBER}", "projects/my-firebase-project"],
        "sub": APP_ID,
        "iat": now,
        "exp": now + 3600,
    }


def server_settings(server: JwksServer) -> dict[str, str]:
    return {"APP_CHECK_JWKS_URL": server.jwks_url}


def proof(token: str) -> dict[str, str]:
    return {"X-Firebase-AppCheck": token}


TOKEN_TYPE: str | None = "JWT"  # App Check tokens must say so in their header

{%- else %}

AUDIENCE: str = Settings.model_fields["oidc_audience"].default
USER = "user-4b1d9e0c"


def valid_claims(server: JwksServer) -> dict[str, Any]:
    """What an OpenID Connect provider puts in a signed-in user's ID token."""
    now = int(time.time())
    return {"iss": server.issuer, "aud": AUDIENCE, "sub": USER, "iat": now, "exp": now + 3600}


def server_settings(server: JwksServer) -> dict[str, str]:
    return {"OIDC_ISSUER": server.issuer}  # its keys are then found through discovery, as in production


def proof(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


TOKEN_TYPE: str | None = None  # ID tokens' header typ is not checked

{%- endif %}


class SigningKey:
    """A key pair and its key id: RSA for RS256 (what Google and Firebase use), or EC P-256 for ES256."""

    def __init__(self, kind: str = "RSA") -> None:
        self.kid = secrets.token_hex(8)
        self.algorithm = "RS256" if kind == "RSA" else "ES256"
        self.private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "RSA"
            else ec.generate_private_key(ec.SECP256R1())
        )

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        fields = (
            RSAAlgorithm.to_jwk(public, as_dict=True)
            if isinstance(public, rsa.RSAPublicKey)
            else ECAlgorithm.to_jwk(public, as_dict=True)
        )
        return {**fields, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], algorithm: str | None = None, **header: Any) -> str:
        """A token; `header` changes its header (a value of None leaves that field out)."""
        fields = {"kid": self.kid, "typ": "JWT", **header}
        headers = {k: v for k, v in fields.items() if v}
        return jwt.encode(claims, self.private, algorithm=algorithm or self.algorithm, headers=headers)


def forge_hs256(claims: dict[str, Any], kid: str, secret: bytes) -> str:
    """A token "signed" with HMAC, using `secret` (an attacker would use the public key). PyJWT refuses
    to make one with a PEM key, so it is built by hand here."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = part(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{part(signature)}"


class JwksServer:
    """Publishes `keys` at /jwks and a discovery document at /.well-known/openid-configuration, counting
    the fetches of each. With `down` set, both answer 503; with `delay`, they answer that many seconds
    late; with `trickle`, they send the body one byte per `trickle` seconds."""

    def __init__(self, *keys: SigningKey, port: int = 0, host: str = "127.0.0.1") -> None:
        self.keys = list(keys)
        self.down = False
        self.delay = 0.0
        self.trickle = 0.0
        self.fetches = 0
        self.discoveries = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    self.answer()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the backend gave up waiting (the slow and trickling tests)

            def answer(self) -> None:
                if self.path == "/jwks":
                    server.fetches += 1
                    body: Any = {"keys": [key.jwk() for key in server.keys]}
                elif self.path == "/.well-known/openid-configuration":
                    server.discoveries += 1
                    body = {"issuer": server.issuer, "jwks_uri": server.discovered_jwks_url}
                else:
                    self.send_error(404)
                    return
                time.sleep(server.delay)
                if server.down:
                    self.send_error(503)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not server.trickle:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(server.trickle)

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self.url = f"http://{host}:{self._http.server_address[1]}"
        self.jwks_url = f"{self.url}/jwks"
        self.issuer = self.url  # what the discovery document and valid_claims() name as the issuer
        self.discovered_jwks_url = self.jwks_url  # what the discovery document names as jwks_uri
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> JwksServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_session: tuple[dict[str, str], dict[str, str]] | None = None


def session_caller() -> tuple[dict[str, str], dict[str, str]]:
    """One JWKS server for a whole test session: (the app's settings for it, headers with a valid token)."""
    global _session
    if _session is None:
        key = SigningKey()
        server = JwksServer(key)
        _session = server_settings(server), proof(key.sign(valid_claims(server)))
    return _session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    key = SigningKey()
    server = JwksServer(key, port=args.port)
    ready = {"settings": server_settings(server), "headers": proof(key.sign(valid_claims(server)))}
    print(json.dumps(ready), flush=True)  # noqa: T201 - the caller reads this line
    threading.Event().wait()  # serve until stopped


if __name__ == "__main__":
    main()
