"""A minimal SMTP relay for the `alerts send` tests, on loopback only.

Offers STARTTLS (Python's ssl module, i.e. OpenSSL: a TLS stack independent of
the client's rustls), refuses MAIL before TLS when told to, and writes what it
received to a JSON file. Bounded: it serves at most --messages connections and
exits after --seconds whatever happens.

usage: smtp_relay.py PORTFILE OUTFILE --cert C --key K [--no-starttls]
                     [--require-tls] [--messages N] [--seconds S]
"""
import argparse
import json
import socket
import ssl
import time

p = argparse.ArgumentParser()
p.add_argument("portfile")
p.add_argument("outfile")
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--no-starttls", action="store_true")
p.add_argument("--require-tls", action="store_true")
p.add_argument("--messages", type=int, default=1)
p.add_argument("--seconds", type=float, default=30)
a = p.parse_args()

ctx = None
if not a.no_starttls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
deadline = time.time() + a.seconds
with open(a.portfile + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
import os
os.rename(a.portfile + ".tmp", a.portfile)

sessions = []


def serve(conn):
    s = {"tls": None, "ehlo": 0, "mail": None, "rcpt": None, "data": "", "error": None}
    f = conn.makefile("rwb")

    def say(line):
        f.write(line.encode() + b"\r\n")
        f.flush()

    say("220 relay.test ESMTP")
    while True:
        raw = f.readline()
        if not raw:
            break
        cmd = raw.decode(errors="replace").rstrip("\r\n")
        up = cmd.upper()
        if up.startswith("EHLO"):
            s["ehlo"] += 1
            if ctx is not None and s["tls"] is None:
                f.write(b"250-relay.test\r\n250-SIZE 10000000\r\n250 STARTTLS\r\n")
                f.flush()
            else:
                f.write(b"250-relay.test\r\n250 SIZE 10000000\r\n")
                f.flush()
        elif up == "STARTTLS" and ctx is not None and s["tls"] is None:
            say("220 2.0.0 Ready to start TLS")
            f.close()
            try:
                conn = ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as e:
                s["error"] = "handshake: %s" % e
                break
            s["tls"] = conn.version()
            f = conn.makefile("rwb")
        elif up.startswith("MAIL"):
            if a.require_tls and s["tls"] is None:
                say("530 5.7.0 Must issue a STARTTLS command first")
            else:
                s["mail"] = cmd
                say("250 OK")
        elif up.startswith("RCPT"):
            s["rcpt"] = cmd
            say("250 OK")
        elif up == "DATA":
            say("354 go ahead")
            while True:
                l = f.readline()
                if not l or l == b".\r\n":
                    break
                s["data"] += l.decode(errors="replace")
            say("250 2.0.0 queued as 7")
        elif up == "QUIT":
            say("221 bye")
            break
        else:
            say("502 unknown")
    try:
        conn.close()
    except OSError:
        pass
    return s


while len(sessions) < a.messages and time.time() < deadline:
    srv.settimeout(max(0.1, deadline - time.time()))
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        break
    conn.settimeout(10)
    try:
        sessions.append(serve(conn))
    except (OSError, ssl.SSLError) as e:
        sessions.append({"error": str(e)})
    with open(a.outfile, "w") as out:
        json.dump(sessions, out)
with open(a.outfile, "w") as out:
    json.dump(sessions, out)
