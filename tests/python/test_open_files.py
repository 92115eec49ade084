"""A server started under a low open-file soft limit raises it, and keeps serving more clients
than the limit it was started with would have allowed."""

import resource
import signal
import socket
from pathlib import Path

import requests

from conftest import Server

STARTED_WITH = 256


def soft_open_files(pid):
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc")


def test_a_low_open_file_limit_is_raised_to_the_hard_limit(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or hard > 2 * STARTED_WITH, f"the hard limit ({hard}) leaves nothing to show"
    srv = Server(tmp_path / "data", open_files=STARTED_WITH).start()
    try:
        expected = hard if hard != resource.RLIM_INFINITY else soft_open_files(srv.proc.pid)
        assert soft_open_files(srv.proc.pid) == expected
        assert soft_open_files(srv.proc.pid) > STARTED_WITH

        s3 = srv.client()
        s3.create_bucket(Bucket="fds")
        for n in range(40):  # blobs across many fan-out directories, each held open once used
            s3.put_object(Bucket="fds", Key=f"k{n}", Body=b"x" * 1000)
        idle = []
        try:
            for _ in range(STARTED_WITH + 100):
                idle.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
            url = s3.generate_presigned_url("get_object", Params={"Bucket": "fds", "Key": "k39"}, ExpiresIn=60)
            resp = requests.get(url, timeout=10)
            assert resp.status_code == 200 and resp.content == b"x" * 1000
        finally:
            for conn in idle:
                conn.close()
    finally:
        srv.stop(signal.SIGKILL)
