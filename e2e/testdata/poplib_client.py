"""POP3 client for the popscope e2e tests, using Python's poplib.

usage: poplib_client.py HOST PORT USER PASS MODE OUTDIR
  MODE user: CAPA, USER/PASS, STAT, LIST, UIDL, TOP 1 0, NOOP, RETR every
             message, RSET, QUIT
  MODE apop: APOP, STAT, RETR every message, QUIT
Writes OUTDIR/MODE-retr-NN (the message as delivered: lines joined with
CRLF plus a final CRLF), OUTDIR/MODE-top-01 and OUTDIR/MODE-meta.json.
"""
import json
import os
import poplib
import sys

# poplib refuses lines over 2048 octets ("line too long"); the test
# mailbox has a 100,000-octet line.
poplib._MAXLINE = 1 << 20

host, port, user, pw, mode, out = sys.argv[1:7]
p = poplib.POP3(host, int(port), timeout=60)
meta = {}


def save(name, lines):
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\r\n".join(lines) + b"\r\n")


if mode == "user":
    meta["capa"] = sorted(p.capa().keys())
    p.user(user)
    p.pass_(pw)
elif mode == "apop":
    p.apop(user, pw)
else:
    sys.exit("unknown mode " + mode)

n, size = p.stat()
meta["stat"] = [n, size]
if mode == "user":
    meta["list"] = [l.decode() for l in p.list()[1]]
    meta["uidl"] = [l.decode() for l in p.uidl()[1]]
    save(mode + "-top-01", p.top(1, 0)[1])
    p.noop()
for i in range(1, n + 1):
    save("%s-retr-%02d" % (mode, i), p.retr(i)[1])
if mode == "user":
    p.rset()
p.quit()
with open(os.path.join(out, mode + "-meta.json"), "w") as f:
    json.dump(meta, f, sort_keys=True, indent=1)
print("%s: %d messages, %d octets" % (mode, n, size))
