#!/usr/bin/env python3
"""A Web Push endpoint on this machine that prints what it receives, decrypted.

For trying the gateway without a browser or an app: it makes a P-256 key pair
and an auth secret as a browser does, prints the subscription to register
with POST /v1/devices, then serves HTTP on 127.0.0.1 and prints every push
decrypted (RFC 8291, aes128gcm) with the independent `http_ece` package.

    python3 -m venv ~/.cache/lemonade-tools
    ~/.cache/lemonade-tools/bin/pip install http_ece cryptography
    ~/.cache/lemonade-tools/bin/python tools/push_inbox.py --port 8099 > subscription.json

The gateway must allow a plain-HTTP endpoint on loopback:
LEMONADE_PUSH_ALLOW_PRIVATE_ENDPOINTS=true.
"""

import argparse
import base64
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()

    key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    subscription = {
        "endpoint": f"http://127.0.0.1:{args.port}/push",
        "keys": {"p256dh": b64url(public), "auth": b64url(auth)},
    }
    print(json.dumps(subscription), flush=True)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                text = http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm")
                print(text.decode(), file=sys.stderr, flush=True)
                self.send_response(201)
            except Exception as error:  # a push that does not decrypt is reported, not fatal
                print(f"undecryptable push: {error}", file=sys.stderr, flush=True)
                self.send_response(400)
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
