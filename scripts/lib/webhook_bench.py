"""Helpers of bench/webhooks (python3's standard library only).

  receiver PORT_FILE      a webhook receiver on 127.0.0.1 (port written to PORT_FILE). It
                          records each delivery's commit-to-arrival latency (arrival time
                          minus the event's recordedAt) and answers 200, or what
                          `POST /control?status=N` set. `GET /stats` answers JSON: count,
                          distinct events, whether each job's events came in order, and
                          latency percentiles in ms; `POST /reset` forgets what came.
  drive URL TOKEN RATE SECONDS
                          creates jobs for customer 1 at RATE per second for SECONDS, on
                          four keep-alive connections; prints how many were created.
  create URL TOKEN COUNT  creates COUNT jobs for customer 1 as fast as one connection goes.
  load-sqlite DB COUNT    inserts COUNT JobCreated events of customers 2… into DB, as other
                          customers' jobs would be stored (one transaction).
"""

import http.client
import http.server
import json
import sqlite3
import sys
import threading
import time
import urllib.parse
import uuid
from datetime import datetime


def percentile(values, p):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def receiver(port_file):
    lock = threading.Lock()
    state = {"status": 200, "latencies": [], "seen": set(), "count": 0, "last": {}, "ordered": True}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body=b""):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            path = urllib.parse.urlparse(self.path)
            if path.path == "/control":
                state["status"] = int(urllib.parse.parse_qs(path.query)["status"][0])
                return self.answer(204)
            if path.path == "/reset":
                with lock:
                    state.update(latencies=[], seen=set(), count=0, last={}, ordered=True)
                return self.answer(204)
            status = state["status"]
            if status == 200:
                arrived = time.time()
                data = json.loads(body)["data"]
                recorded = datetime.fromisoformat(data["recordedAt"].replace("Z", "+00:00")).timestamp()
                with lock:
                    state["count"] += 1
                    if data["id"] not in state["seen"]:
                        state["seen"].add(data["id"])
                        state["latencies"].append((arrived - recorded) * 1000)
                        previous = state["last"].get(data["jobId"], 0)
                        if data["sequence"] != previous + 1:
                            state["ordered"] = False
                        state["last"][data["jobId"]] = data["sequence"]
            self.answer(status)

        def do_GET(self):
            with lock:
                latencies = list(state["latencies"])
                stats = {
                    "count": state["count"],
                    "distinct": len(state["seen"]),
                    "ordered": state["ordered"],
                    "p50": percentile(latencies, 0.50),
                    "p99": percentile(latencies, 0.99),
                    "max": max(latencies, default=0.0),
                }
            self.answer(200, json.dumps(stats).encode())

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


def create_job(connection, token):
    connection.request(
        "POST",
        "/v1/jobs",
        body=json.dumps({"typeId": 1, "contactId": 2}),
        headers={"Authorization": f"Bearer {token}", "Customer-Id": "1", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    response.read()
    return response.status == 201


def connect(url):
    parsed = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)


def drive(url, token, rate, seconds):
    rate, seconds = float(rate), float(seconds)
    workers = 4
    created = [0] * workers
    start = time.monotonic()

    def work(index):
        connection = connect(url)
        interval = workers / rate
        n = 0
        while True:
            due = start + index / rate + n * interval
            if due - start >= seconds:
                return
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if create_job(connection, token):
                created[index] += 1
            n += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(sum(created))


def create(url, token, count):
    connection = connect(url)
    made = sum(create_job(connection, token) for _ in range(int(count)))
    print(made)


def load_sqlite(path, count):
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    payload = json.dumps({"JobCreated": {"customerId": 2, "typeId": 1, "contactId": 2,
                                         "occurredAt": "2026-11-30T00:00:00Z"}})
    rows = (
        ("Job", str(uuid.uuid4()), 1, "JobCreated", "1.0", payload,
         json.dumps({"customerId": str(2 + n % 1000), "clientId": "bench", "tokenId": "bench",
                     "requestId": "bench"}))
        for n in range(int(count))
    )
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.execute("COMMIT")
    db.execute("ANALYZE")


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    {"receiver": receiver, "drive": drive, "create": create, "load-sqlite": load_sqlite}[command](*arguments)
