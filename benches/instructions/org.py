"""A Salesforce org for the instruction count (run.sh): the token endpoint and the Apex endpoint,
answering at once, counting deliveries (GET /delivered). It runs outside valgrind, so its own
work is not counted; only the relay's is."""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APEX_PATH = "/services/apexrest/digitalriverv3/webhooks/"
TOKEN_PATH = "/services/oauth2/token"

delivered = 0
lock = threading.Lock()


class Org(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        global delivered
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith(TOKEN_PATH):
            base = f"http://127.0.0.1:{self.server.server_port}"
            token = {"access_token": "00DIR!instructions", "instance_url": base, "token_type": "Bearer",
                     "id": "https://test.salesforce.com/id/00DIR/005IR", "issued_at": "1764000000000"}
            self.answer(200, json.dumps(token))
        elif self.path == APEX_PATH:
            with lock:
                delivered += 1
            self.answer(200, "")
        else:
            self.answer(404, '[{"message":"not found","errorCode":"NOT_FOUND"}]')

    def do_GET(self):
        if self.path == "/delivered":
            self.answer(200, json.dumps({"delivered": delivered}))
        else:
            self.answer(404, '[{"message":"not found","errorCode":"NOT_FOUND"}]')


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Org).serve_forever()
