"""Alarm rules over the audit trail and over metrics: when one fires, a JSON notification signed with
HMAC-SHA256 (X-Latchkey-Timestamp, X-Latchkey-Signature: v1=hex(HMAC(secret, "ts.body"))) is
POSTed to the configured webhooks, retried on failure, once per rule, group and window (across
replicas too), and recorded in the audit trail as alarm.fired."""

import hashlib
import hmac
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import ACCESS_KEY, BIN, Server, audit_rows, free_port, toml_value
from test_counted_presign import presign
from test_identity import signed_request
from test_presign_revoke import revoke

SECRET = "whsec-0123456789abcdef"
WINDOW = 4


class Receiver:
    """A local webhook receiver that fails the first `fail_first` requests with 500."""

    def __init__(self, fail_first=0):
        self.received = []
        self.attempts = 0
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}/hooks/latchkey"

    def notifications(self, alarm):
        return [json.loads(body) for _, body in self.received if json.loads(body)["alarm"] == alarm]

    def close(self):
        self.server.shutdown()


def config(receiver):
    return {
        "alarms": [
            {"name": "denied-urls", "event": "presigned.denied", "group_by": "source_ip",
             "window_secs": WINDOW, "threshold": 3},
            {"name": "root-keys", "event": "root.used"},
        ],
        "webhooks": [{"url": receiver.url, "secret": SECRET}],
    }


def check_signature(headers, body):
    timestamp = headers["x-latchkey-timestamp"]
    expected = "v1=" + hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-latchkey-signature"], expected)
    assert abs(time.time() - int(timestamp)) < 60, "a fresh timestamp, so receivers can refuse replays"


def start_of_a_window():
    """Sleeps until a window has just begun, so that a burst falls in one window."""
    time.sleep(WINDOW - time.time() % WINDOW + 0.2)


def burst(server, url, n):
    for _ in range(n):
        assert requests.get(url, timeout=10).status_code == 403


def wait_for(predicate, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def receiver():
    r = Receiver(fail_first=1)
    yield r
    r.close()


def test_an_alarm_fires_signed_once_per_window_and_is_retried(receiver, tmp_path):
    server = Server(tmp_path / "data", config=config(receiver)).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="alarmed")
        url = presign(server, tmp_path / "home", "s3://alarmed/k")
        assert revoke(server, tmp_path / "home", url).returncode == 0
        start_of_a_window()
        burst(server, url, 10)
        wait_for(lambda: receiver.notifications("denied-urls"), "no notification")
        wait_for(lambda: receiver.notifications("root-keys"), "root's use not notified")
        time.sleep(2)
        first = receiver.notifications("denied-urls")
        assert len(first) == 1, "exactly once in the window"
        assert receiver.attempts >= len(receiver.received) + 1, "the failed attempt was retried"
        note = first[0]
        assert (note["count"], note["threshold"], note["group_by"], note["group"]) == (4, 3, "source_ip", "127.0.0.1")
        assert note["window_secs"] == WINDOW and note["event"]["event"] == "presigned.denied"
        assert note["summary"] == f"denied-urls: 4 presigned.denied events in {WINDOW} s (threshold 3) from 127.0.0.1"
        for headers, body in receiver.received:
            check_signature(headers, body)
            assert headers["x-latchkey-delivery"] == json.loads(body)["id"]
        # A changed body or another secret does not verify.
        headers, body = receiver.received[0]
        with pytest.raises(AssertionError):
            check_signature(headers, body + b" ")

        # The next window fires again, once.
        start_of_a_window()
        burst(server, url, 10)
        wait_for(lambda: len(receiver.notifications("denied-urls")) == 2, "the next window did not fire")
        time.sleep(2)
        notes = receiver.notifications("denied-urls")
        assert len(notes) == 2 and notes[0]["window_start"] != notes[1]["window_start"]
        assert len(receiver.notifications("root-keys")) == 1, "root's use from one address: once"
        fired = [row["reason"] for row in audit_rows(server, "alarm.fired")]
        assert sum(r.startswith("denied-urls: 4 presigned.denied events") for r in fired) == 2
        # The webhook's host only: its path and query can be a credential.
        assert all(f"http://127.0.0.1:{receiver.port} answered 204 No Content" in r for r in fired), fired
        assert not any("/hooks/latchkey" in r for r in fired)
    finally:
        server.stop()


def test_a_metric_rule_fires_once_when_its_series_rise_past_the_threshold(receiver, tmp_path):
    rule = {"name": "bad-signatures", "metric": "latchkey_denied_total", "labels": {"code": "SignatureDoesNotMatch"},
            "window_secs": WINDOW, "threshold": 2}
    server = Server(tmp_path / "data", config={"alarms": [rule], "webhooks": [{"url": receiver.url, "secret": SECRET}]})
    server.start()
    try:
        time.sleep(1.5)  # the first reading of the metrics is the base
        start_of_a_window()
        for _ in range(2):
            assert signed_request(server, "GET", "/", ACCESS_KEY, "not-the-secret").status_code == 403
        assert requests.get(server.endpoint + "/nope", timeout=10).status_code == 403, "another code: not counted"
        time.sleep(1.5)
        assert receiver.notifications("bad-signatures") == [], "two is not more than two"
        for _ in range(3):
            assert signed_request(server, "GET", "/", ACCESS_KEY, "not-the-secret").status_code == 403
        wait_for(lambda: receiver.notifications("bad-signatures"), "no notification")
        time.sleep(1.5)
        [note] = receiver.notifications("bad-signatures")
        # It fires at the first reading past the threshold: after the third, fourth or fifth denial.
        rise = note["metric"]["value"]
        assert note["metric"] == {"name": "latchkey_denied_total", "value": rise, "gauge": False} and rise in (3, 4, 5)
        assert "event" not in note and note["window_secs"] == WINDOW
        assert note["summary"] == f"bad-signatures: latchkey_denied_total rose by {rise:g} in {WINDOW} s (threshold 2)"
        check_signature(*receiver.received[-1])
        wait_for(lambda: any(r.startswith(f"bad-signatures: latchkey_denied_total rose by {rise:g}")
                             for r in (row["reason"] for row in audit_rows(server, "alarm.fired"))),
                 "the firing was not audited")
    finally:
        server.stop()


def test_two_replicas_deliver_each_firing_once(receiver, pg_url, tmp_path):
    master = {"LATCHKEY_MASTER_KEY": "cd" * 32}
    pair = [Server(tmp_path / "data", meta_url=pg_url, env=master, config=config(receiver)).start()
            for _ in range(2)]
    try:
        first, second = pair
        first.client().create_bucket(Bucket="alarmed")
        url = presign(first, tmp_path / "home", "s3://alarmed/k")
        assert revoke(first, tmp_path / "home", url).returncode == 0
        path = url.split(first.endpoint, 1)[1]
        host = {"Host": first.endpoint.split("://", 1)[1]}
        start_of_a_window()
        for i in range(10):
            replica = pair[i % 2]
            assert requests.get(replica.endpoint + path, headers=host, timeout=10).status_code == 403
        wait_for(lambda: receiver.notifications("denied-urls"), "no notification")
        time.sleep(3)
        assert len(receiver.notifications("denied-urls")) == 1, "both replicas saw it; one delivered"
    finally:
        for srv in pair:
            srv.stop()


def test_bad_alarm_and_webhook_settings_are_refused_at_start(tmp_path):
    for n, (settings, message) in enumerate((
        ({"alarms": [{"name": "a", "event": "x*y"}]}, "alarm a: event"),
        ({"alarms": [{"name": "a", "event": "x"}, {"name": "a", "event": "y"}]}, "two alarms are named"),
        ({"alarms": [{"name": "a", "event": "x", "treshold": 3}]}, "treshold"),
        ({"alarms": [{"name": "m", "metric": "latchkey_nope_total"}]}, "alarm m: no metric is named"),
        ({"alarms": [{"name": "m", "metric": "latchkey_denied_total", "principal": "x"}]}, "a metric rule takes no"),
        ({"alarms": [{"name": "m", "metric": "latchkey_denied_total", "labels": {"cod": "x"}}]}, "has no label \"cod\""),
        ({"webhooks": [{"url": "ftp://x/y", "secret": SECRET}]}, "http:// or https://"),
        ({"webhooks": [{"url": "http://x/y", "secret": "short"}]}, "at least 16"),
    )):
        config_file = tmp_path / f"bad{n}.toml"
        config_file.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in settings.items()))
        out = subprocess.run([BIN, "serve", "--data-dir", str(tmp_path / f"d{n}"), "--listen", "127.0.0.1:0",
                              "--config", str(config_file)], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and message in out.stderr, (settings, out.stderr)
