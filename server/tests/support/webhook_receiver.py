"""A webhook receiver for the tests: checks each delivery's signature on its own (Python's
hmac, not liveproc's code), then appends one JSON line per request to OUT and answers 200,
after DELAY seconds if given.  Usage: webhook_receiver.py PORT OUT SECRET [DELAY]"""
import hashlib
import hmac
import http.server
import json
import sys
import threading
import time

port, out, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
lock = threading.Lock()


def valid(header, body):
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    expected = hmac.new(secret, parts.get("t", "").encode() + b"." + body, hashlib.sha256)
    fresh = abs(time.time() - int(parts.get("t", "0"))) < 300
    return fresh and hmac.compare_digest(expected.hexdigest(), parts.get("v1", ""))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(delay)
        line = {
            "at": time.time(),
            "id": self.headers.get("Liveproc-Event-Id"),
            "type": self.headers.get("Liveproc-Event-Type"),
            "valid": valid(self.headers.get("Liveproc-Signature", ""), body),
            "body": json.loads(body),
        }
        with lock, open(out, "a") as f:
            f.write(json.dumps(line) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
