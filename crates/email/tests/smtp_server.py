#!/usr/bin/python3
"""A real SMTP server on loopback for the email sink's tests (aiosmtpd, Debian's
python3-aiosmtpd). Binds 127.0.0.1 port 0, writes the port to --portfile, and stores each
delivered message as a JSON file in --outdir: envelope, parsed headers, decoded text and HTML
parts, the AUTH login used and whether the session was encrypted.

Options: --auth USER:PASS (AUTH required) with --auth-mech PLAIN|LOGIN to offer only one;
--starttls CERT KEY (STARTTLS required); --tls CERT KEY (implicit TLS);
--reject-rcpt "451 4.3.0 try again later" to answer every RCPT with that reply.
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--portfile", required=True)
parser.add_argument("--outdir", required=True)
parser.add_argument("--auth")
parser.add_argument("--auth-mech")
parser.add_argument("--starttls", nargs=2)
parser.add_argument("--tls", nargs=2)
parser.add_argument("--reject-rcpt")
args = parser.parse_args()


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if args.reject_rcpt:
            return args.reject_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": [[k, str(v)] for k, v in msg.items()],
            "raw_headers": raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace"),
            # Line ends as the reader sees them (SMTP carries CRLF).
            "text": text.get_content().replace("\r\n", "\n") if text is not None else None,
            "html": html.get_content().replace("\r\n", "\n") if html is not None else None,
            "auth_login": getattr(session, "f2b_login", None),
            "tls": bool(session.ssl) or args.tls is not None,
        }
        n = len(os.listdir(args.outdir))
        tmp = os.path.join(args.outdir, f".{n:04d}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(args.outdir, f"{n:04d}.json"))
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    user, password = args.auth.split(":", 1)
    if isinstance(auth_data, LoginPassword):
        if auth_data.login.decode() == user and auth_data.password.decode() == password:
            session.f2b_login = f"{mechanism}:{user}"
            return AuthResult(success=True)
    return AuthResult(success=False, handled=False)


def context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def main():
    loop = asyncio.get_running_loop()
    starttls = context(*args.starttls) if args.starttls else None
    implicit = context(*args.tls) if args.tls else None
    excluded = []
    if args.auth_mech:
        excluded = [m for m in ("PLAIN", "LOGIN") if m != args.auth_mech]

    def factory():
        return SMTP(
            Handler(),
            hostname="smtp.test",
            authenticator=authenticator if args.auth else None,
            auth_required=bool(args.auth),
            auth_require_tls=False,
            auth_exclude_mechanism=excluded,
            tls_context=starttls,
            require_starttls=starttls is not None,
        )

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=implicit)
    port = server.sockets[0].getsockname()[1]
    tmp = args.portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, args.portfile)
    async with server:
        await server.serve_forever()


asyncio.run(main())
