"""Share links: minting through the signed /-/shares API, atomic one-time redemption through
/-/access-object, and refusals that all look alike while the audit trail knows why."""

import hashlib
import json
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, PG_URL, REGION, SECRET_KEY, audit_rows, psql


def api(server, method, path, body=None, signed=True):
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json", "x-amz-content-sha256": hashlib.sha256(data).hexdigest()}
    request = AWSRequest(method=method, url=f"{server.endpoint}{path}", data=data, headers=headers)
    if signed:
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    return requests.request(method, request.url, data=data, headers=dict(request.headers), timeout=10)


def mint(server, bucket, key, **options):
    resp = api(server, "POST", "/-/shares", {"bucket": bucket, "key": key, **options})
    assert resp.status_code == 201, resp.text
    return resp.json()


def audit_reasons(server, share_id):
    """A link's stored audit events as (event, reason), oldest first."""
    return [(row["event"], row["reason"]) for row in audit_rows(server, share_id=share_id)]


def test_a_link_downloads_once_then_refuses(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="reports/Q3 résumé.pdf", Body=b"%PDF quarterly", ContentType="application/pdf")
    link = mint(server, bucket, "reports/Q3 résumé.pdf", label="for the auditors")
    assert len(link["token"]) == 43 and link["max_uses"] == 1
    assert link["url"].endswith(f"/-/s/{link['token']}")
    assert link["api_url"] == f"{server.endpoint}/-/access-object?nonce={link['token']}"

    first = requests.get(link["api_url"], timeout=10)
    assert first.status_code == 200 and first.content == b"%PDF quarterly"
    assert first.headers["Content-Type"] == "application/pdf"
    assert first.headers["Content-Length"] == "14"
    assert first.headers["Content-Disposition"].startswith('attachment; filename="Q3 r_sum_.pdf"')
    assert "filename*=UTF-8''Q3%20r%C3%A9sum%C3%A9.pdf" in first.headers["Content-Disposition"]

    second = requests.get(link["api_url"], timeout=10)
    unknown = requests.get(f"{server.endpoint}/-/access-object?nonce=not-a-real-token", timeout=10)
    assert second.status_code == unknown.status_code == 403
    assert second.content == unknown.content, "refusals must not tell used from unknown"
    assert audit_reasons(server, link["id"]) == [("share.created", None), ("share.redeemed", None),
                                                  ("share.denied", "used")]

    shown = api(server, "GET", f"/-/shares/{link['id']}").json()
    assert shown["uses_left"] == 0 and shown["state"] == "used" and "token" not in shown


def test_machine_clients_send_the_nonce_in_a_header(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"via header")
    link = mint(server, bucket, "k")
    resp = requests.get(f"{server.endpoint}/-/access-object", headers={"X-Latchkey-Nonce": link["token"]}, timeout=10)
    assert resp.status_code == 200 and resp.content == b"via header"


@pytest.mark.parametrize("uses", [1, 5])
def test_concurrent_redemptions_grant_exactly_max_uses(server, s3, bucket, uses):
    body = b"x" * 1024
    s3.put_object(Bucket=bucket, Key="hot", Body=body)
    link = mint(server, bucket, "hot", max_uses=uses)

    def redeem(_):
        resp = requests.get(link["api_url"], timeout=30)
        return resp.status_code, resp.content

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(redeem, range(200)))
    granted = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert len(granted) == uses
    assert all(content == body for _, content in granted)
    assert len(refused) == 200 - uses
    assert {r for r in refused} == {refused[0]} and refused[0][0] == 403
    assert api(server, "GET", f"/-/shares/{link['id']}").json()["uses_left"] == 0


def test_expiry_revocation_cidr_and_overwrite_are_refused_with_reasons(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="doc", Body=b"v1")
    short = mint(server, bucket, "doc", expires_in=1)
    revoked = mint(server, bucket, "doc")
    elsewhere = mint(server, bucket, "doc", allow_cidrs=["203.0.113.0/24"])
    local = mint(server, bucket, "doc", allow_cidrs=["127.0.0.0/8", "::1/128"])
    replaced = mint(server, bucket, "doc", max_uses=3)

    assert api(server, "DELETE", f"/-/shares/{revoked['id']}").status_code == 204
    assert api(server, "DELETE", f"/-/shares/{revoked['id']}").status_code == 404
    assert requests.get(local["api_url"], timeout=10).status_code == 200
    time.sleep(1.5)
    s3.put_object(Bucket=bucket, Key="doc", Body=b"v2")

    refusals = {requests.get(link["api_url"], timeout=10).content for link in (short, revoked, elsewhere, replaced)}
    assert len(refusals) == 1
    assert audit_reasons(server, short["id"])[-1] == ("share.denied", "expired")
    assert audit_reasons(server, revoked["id"])[-1] == ("share.denied", "revoked")
    assert audit_reasons(server, elsewhere["id"])[-1] == ("share.denied", "ip_denied")
    assert audit_reasons(server, replaced["id"])[-1] == ("share.denied", "object_changed")
    # Refusals consumed nothing.
    assert api(server, "GET", f"/-/shares/{replaced['id']}").json()["uses_left"] == 3
    assert api(server, "GET", f"/-/shares/{elsewhere['id']}").json()["uses_left"] == 1

    listed = api(server, "GET", f"/-/shares?bucket={bucket}").json()["shares"]
    states = {s["id"]: s["state"] for s in listed}
    assert states[revoked["id"]] == "revoked" and states[short["id"]] == "expired" and states[local["id"]] == "used"
    # The object was overwritten: the links that could still be used are not active any more.
    assert states[elsewhere["id"]] == states[replaced["id"]] == "object_changed"
    active = api(server, "GET", f"/-/shares?bucket={bucket}&state=active").json()["shares"]
    assert {s["id"] for s in active} == set()


def test_the_api_requires_a_signature_and_explains_bad_requests(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    unsigned = api(server, "POST", "/-/shares", {"bucket": bucket, "key": "k"}, signed=False)
    assert unsigned.status_code == 403 and "<Code>AccessDenied</Code>" in unsigned.text
    too_long = api(server, "POST", "/-/shares", {"bucket": bucket, "key": "k", "expires_in": 604801})
    assert too_long.status_code == 400 and "expires_in" in too_long.json()["message"]
    assert api(server, "POST", "/-/shares", {"bucket": bucket, "key": "absent"}).status_code == 404
    bad_cidr = api(server, "POST", "/-/shares", {"bucket": bucket, "key": "k", "allow_cidrs": ["10.0.0.0/33"]})
    assert bad_cidr.status_code == 400
    typo = api(server, "POST", "/-/shares", {"bucket": bucket, "key": "k", "max_use": 2})
    assert typo.status_code == 400 and "max_use" in typo.json()["message"]
    assert api(server, "GET", "/-/shares/shr_nope").status_code == 404
    # "-" is the reserved segment, never a bucket.
    assert api(server, "PUT", "/-").status_code == 400
    assert "-" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_tokens_never_reach_the_database_or_the_logs(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"x")
    link = mint(server, bucket, "secret")
    assert requests.get(link["api_url"], timeout=10).status_code == 200
    requests.get(link["url"], timeout=10)
    upload = api(server, "POST", "/-/shares", {"method": "PUT", "bucket": bucket, "prefix": "in/", "max_uses": 2})
    upload = upload.json()
    assert requests.put(upload["api_url"], params={"name": "a"}, data=b"a", timeout=10).status_code == 201
    assert requests.post(upload["url"], files={"file": ("b", b"b")}, timeout=10).status_code == 200
    redirect = mint(server, bucket, "secret", redirect=True)
    assert requests.get(redirect["api_url"], timeout=10).status_code == 200
    links = [link, upload, redirect]
    if server.schema():
        dump = subprocess.run(["pg_dump", "--data-only", "--schema", server.schema(), PG_URL],
                              capture_output=True, timeout=60)
        assert dump.returncode == 0 and link["id"].encode() in dump.stdout
        for each in links:
            assert each["token"].encode() not in dump.stdout, "token in clear in PostgreSQL"
        hashed = psql(f"SELECT length(token_hash) FROM {server.schema()}.shares WHERE id = '{link['id']}'")
        assert hashed.stdout.strip() == "32"
    else:
        for path in server.data_dir.glob("meta.db*"):
            for each in links:
                assert each["token"].encode() not in path.read_bytes(), f"token in clear in {path.name}"
        db = sqlite3.connect(f"file:{server.data_dir / 'meta.db'}?mode=ro", uri=True)
        rows = db.execute("SELECT token_hash FROM shares WHERE id = ?", (link["id"],)).fetchall()
        assert len(rows) == 1 and len(rows[0][0]) == 32 and link["token"].encode() not in rows[0][0]
    log = server.log_text()
    for each in links:
        assert each["token"] not in log
