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
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

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

{%- else %}

AUDIENCE: str = Settings.model_fields["oidc_audience"].default
USER = "user-4b1d9e0c"


def valid_claims(server: JwksServer) -> dict[str, Any]:
    """What an OpenID Connect provider puts in a signed-in user's ID token."""
    now = int(time.time())
    return {"iss": server.url, "aud": AUDIENCE, "sub": USER, "iat": now, "exp": now + 3600}


def server_settings(server: JwksServer) -> dict[str, str]:
    return {"OIDC_ISSUER": server.url}  # its keys are then found through discovery, as in production


def proof(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

{%- endif %}


class SigningKey:
    """An RSA key pair and its key id."""

    def __init__(self) -> None:
        self.kid = secrets.token_hex(8)
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], algorithm: str = "RS256", **header: Any) -> str:
        """A token; `header` changes its header (a value of None leaves that field out)."""
        fields = {"kid": self.kid, "typ": "JWT", **header}
        return jwt.encode(claims, self.private, algorithm=algorithm, headers={k: v for k, v in fields.items() if v})


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
    the fetches of each. With `down` set, both answer 503."""

    def __init__(self, *keys: SigningKey, port: int = 0) -> None:
        self.keys = list(keys)
        self.down = False
        self.fetches = 0
        self.discoveries = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/jwks":
                    server.fetches += 1
                    body: Any = {"keys": [key.jwk() for key in server.keys]}
                elif self.path == "/.well-known/openid-configuration":
                    server.discoveries += 1
                    body = {"issuer": server.url, "jwks_uri": server.jwks_url}
                else:
                    self.send_error(404)
                    return
                if server.down:
                    self.send_error(503)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self.jwks_url = f"{self.url}/jwks"
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
