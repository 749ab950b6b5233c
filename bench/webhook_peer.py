"""The floor for bench/webhook.py: a minimal aiohttp TLS webhook that admits every pod unchanged.

    .venv/bin/python -m bench.webhook_peer --listen 127.0.0.1:8444 --cert C --key K

It reads each AdmissionReview and answers `allowed: true` with no patch: the cost of TLS, HTTP
and JSON alone, which `event-sidecar webhook` pays too. SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import ssl

from aiohttp import web


async def mutate(request: web.Request) -> web.Response:
    review = await request.json()
    response = {"uid": review["request"]["uid"], "allowed": True}
    return web.json_response(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    )


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8444", help="HOST:PORT")
    parser.add_argument("--cert", required=True, help="PEM certificate chain")
    parser.add_argument("--key", required=True, help="PEM private key")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/mutate", mutate)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host=host, port=int(port), ssl_context=context, access_log=None, print=None)


if __name__ == "__main__":
    main()
