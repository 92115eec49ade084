"""`/-/health` against a real server: 200 `ok` while the metadata store takes writes."""

import requests


def test_health_answers_ok_while_writes_succeed(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="probe", Body=b"x")
    resp = requests.get(f"{server.endpoint}/-/health", timeout=10)
    assert (resp.status_code, resp.text) == (200, "ok\n")
    assert resp.headers["x-amz-request-id"]
