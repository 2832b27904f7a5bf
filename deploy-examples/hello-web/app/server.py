#!/usr/bin/env python3
"""hello-web: serve a directory over HTTP, or fetch a URL (--get) for checks."""
import argparse
import functools
import http.server
import sys
import urllib.request


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--dir", default=".")
    p.add_argument("--get", help="print the body of this URL and exit")
    a = p.parse_args()
    if a.get:
        with urllib.request.urlopen(a.get, timeout=2) as r:
            sys.stdout.write(r.read().decode().strip() + "\n")
        return
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=a.dir)
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    with http.server.ThreadingHTTPServer(("127.0.0.1", a.port), handler) as srv:
        srv.serve_forever()


if __name__ == "__main__":
    main()
