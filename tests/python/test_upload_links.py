"""Upload links ("file requests"): one PUT or POST stores one object, the use is spent in the
same transaction that makes the object visible, and a broken upload leaves nothing behind."""

import hashlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import botocore.exceptions
import pytest
import requests

from test_shares import api, audit_reasons


def mint_upload(server, bucket, **terms):
    resp = api(server, "POST", "/-/shares", {"method": "PUT", "bucket": bucket, **terms})
    assert resp.status_code == 201, resp.text
    return resp.json()


def uses_left(server, link):
    return api(server, "GET", f"/-/shares/{link['id']}").json()["uses_left"]


def object_body(s3, bucket, key):
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchKey"
        return None


def test_one_put_succeeds_and_the_second_is_refused(server, s3, bucket):
    link = mint_upload(server, bucket, key="inbox/signed contract.pdf", max_size=1024,
                       content_types=["application/pdf"])
    assert link["method"] == "PUT" and link["max_size"] == 1024 and link["etag"] is None
    assert object_body(s3, bucket, "inbox/signed contract.pdf") is None, "minting creates nothing"

    first = requests.put(link["api_url"], data=b"%PDF signed", headers={"Content-Type": "application/pdf"},
                         timeout=10)
    assert first.status_code == 201, first.text
    assert first.json() == {"name": "signed contract.pdf", "size": 11, "etag": hashlib.md5(b"%PDF signed").hexdigest()}
    stored = s3.get_object(Bucket=bucket, Key="inbox/signed contract.pdf")
    assert stored["Body"].read() == b"%PDF signed" and stored["ContentType"] == "application/pdf"
    assert stored["ETag"] == f'"{first.json()["etag"]}"'

    second = requests.put(link["api_url"], data=b"%PDF forged", headers={"Content-Type": "application/pdf"},
                          timeout=10)
    unknown = requests.put(f"{server.endpoint}/-/access-object?nonce=not-a-token", data=b"x", timeout=10)
    assert second.status_code == unknown.status_code == 403
    assert second.content == unknown.content, "refusals must not tell used from unknown"
    assert object_body(s3, bucket, "inbox/signed contract.pdf") == b"%PDF signed"
    assert audit_reasons(server, link["id"]) == [("share.created", None), ("share.redeemed", None),
                                                  ("share.denied", "used")]
    assert api(server, "GET", f"/-/shares/{link['id']}").json()["state"] == "used"


def test_size_and_type_limits_refuse_without_spending_the_link(server, s3, bucket):
    link = mint_upload(server, bucket, key="photo", max_size=1000, content_types=["image/*"])
    wrong_type = requests.put(link["api_url"], data=b"<html>", headers={"Content-Type": "text/html"}, timeout=10)
    assert wrong_type.status_code == 415 and "text/html" in wrong_type.text
    declared_too_big = requests.put(link["api_url"], data=b"x" * 1001, headers={"Content-Type": "image/png"},
                                    timeout=10)
    assert declared_too_big.status_code == 413 and "1000 bytes" in declared_too_big.text
    # No Content-Length (chunked): the limit holds while the bytes stream in.
    chunks = (b"y" * 100 for _ in range(50))
    streamed_too_big = requests.put(link["api_url"], data=chunks, headers={"Content-Type": "image/png"},
                                    timeout=10)
    assert streamed_too_big.status_code == 413
    assert object_body(s3, bucket, "photo") is None and uses_left(server, link) == 1

    fits = requests.put(link["api_url"], data=b"z" * 1000, headers={"Content-Type": "image/png"}, timeout=10)
    assert fits.status_code == 201 and object_body(s3, bucket, "photo") == b"z" * 1000


def test_a_partial_upload_leaves_no_object(server, s3, bucket):
    link = mint_upload(server, bucket, key="big.bin")
    url = urlsplit(link["api_url"])
    with socket.create_connection((url.hostname, url.port)) as conn:
        conn.sendall(f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                     f"Content-Length: {4 << 20}\r\n\r\n".encode() + b"p" * (1 << 20))
        time.sleep(0.3)  # the server is writing the first MiB when the client vanishes
    deadline = time.monotonic() + 10
    while server.tmp_files() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.tmp_files() == [], "the partial upload's temporary file was removed"
    assert object_body(s3, bucket, "big.bin") is None
    assert uses_left(server, link) == 1, "an upload that never completed spends nothing"
    done = requests.put(link["api_url"], data=b"q" * (4 << 20), timeout=30)
    assert done.status_code == 201 and object_body(s3, bucket, "big.bin") == b"q" * (4 << 20)


def test_prefix_links_name_files_and_never_overwrite(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="drop/existing.txt", Body=b"keep me")
    link = mint_upload(server, bucket, prefix="drop/", max_uses=4)

    def put(name, body):
        return requests.put(link["api_url"], params={"name": name} if name is not None else None, data=body,
                            timeout=10)

    assert put(None, b"x").status_code == 400
    for bad in ["../escape", "a/b", ".."]:
        resp = put(bad, b"x")
        assert resp.status_code == 400 and "not a file name" in resp.text, bad
    # A taken name is neither replaced nor revealed: the file goes under the next free name.
    clash = put("existing.txt", b"not an overwrite")
    assert (clash.status_code, clash.json()["name"]) == (201, "existing (1).txt")
    assert object_body(s3, bucket, "drop/existing.txt") == b"keep me"
    assert put("report.pdf", b"first").json()["name"] == "report.pdf"
    assert put("report.pdf", b"second").json()["name"] == "report (1).pdf"
    assert uses_left(server, link) == 1
    posted = requests.post(link["api_url"], params={"name": "b.txt"}, data=b"third", timeout=10)
    assert posted.status_code == 201, "a raw POST uploads like a PUT"
    assert put("c.txt", b"fourth").status_code == 403
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="drop/")["Contents"]
    assert [o["Key"] for o in listed] == [
        "drop/b.txt", "drop/existing (1).txt", "drop/existing.txt", "drop/report (1).pdf", "drop/report.pdf",
    ]
    assert object_body(s3, bucket, "drop/report.pdf") == b"first"
    assert object_body(s3, bucket, "drop/report (1).pdf") == b"second"
    assert object_body(s3, bucket, "drop/existing (1).txt") == b"not an overwrite"


def test_racing_uploads_of_a_one_use_link_store_exactly_one(server, s3, bucket):
    link = mint_upload(server, bucket, key="race")

    def attempt(i):
        resp = requests.put(link["api_url"], data=f"upload {i}".encode() * 1000, timeout=30)
        return i, resp.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    winners = [i for i, status in outcomes if status == 201]
    assert len(winners) == 1, outcomes
    assert sorted(status for _, status in outcomes) == [201] + [403] * 19
    assert object_body(s3, bucket, "race") == f"upload {winners[0]}".encode() * 1000


def test_links_do_only_what_they_were_made_for(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="doc", Body=b"original")
    download = api(server, "POST", "/-/shares", {"bucket": bucket, "key": "doc"}).json()
    assert requests.put(download["api_url"], data=b"replaced", timeout=10).status_code == 403
    assert object_body(s3, bucket, "doc") == b"original"
    upload = mint_upload(server, bucket, key="doc")
    assert requests.get(upload["api_url"], timeout=10).status_code == 403
    assert ("share.denied", "wrong_method") in audit_reasons(server, download["id"])
    assert ("share.denied", "wrong_method") in audit_reasons(server, upload["id"])
    assert uses_left(server, download) == 1 and uses_left(server, upload) == 1


def test_the_landing_page_form_uploads(server, s3, bucket):
    link = mint_upload(server, bucket, prefix="forms/", content_types=["text/plain"], max_size=2048)
    page = requests.get(link["url"], timeout=10)
    assert page.status_code == 200
    assert 'type="file"' in page.text and 'accept="text/plain"' in page.text and "2.0 KiB" in page.text
    assert uses_left(server, link) == 1, "viewing the form spends nothing"
    sent = requests.post(link["url"], files={"file": ("C:\\Users\\ann\\notes.txt", b"hello", "text/plain")},
                         timeout=10)
    assert sent.status_code == 200 and "notes.txt (5 B) was received" in sent.text
    stored = s3.get_object(Bucket=bucket, Key="forms/notes.txt")
    assert stored["Body"].read() == b"hello" and stored["ContentType"] == "text/plain"
    again = requests.post(link["url"], files={"file": ("more.txt", b"again", "text/plain")}, timeout=10)
    assert again.status_code == 403 and "not valid" in again.text


@pytest.mark.parametrize("terms, message", [
    ({"key": "k", "redirect": True}, "redirect and disposition are for download links"),
    ({"key": "k", "max_size": 0}, "max_size must be between 1 and"),
    ({"key": "k", "content_types": ["*/*"]}, "not a media type"),
    ({"key": "k", "prefix": "p/"}, "not both"),
    ({}, "missing field `key`"),
])
def test_bad_upload_terms_are_explained(server, bucket, terms, message):
    resp = api(server, "POST", "/-/shares", {"method": "PUT", "bucket": bucket, **terms})
    assert resp.status_code == 400 and message in resp.json()["message"], resp.text


def test_upload_links_need_the_bucket_and_download_links_refuse_upload_terms(server, bucket):
    missing = api(server, "POST", "/-/shares", {"method": "PUT", "bucket": "no-such-bucket", "key": "k"})
    assert missing.status_code == 404 and missing.json()["error"] == "NoSuchBucket"
    wrong = api(server, "POST", "/-/shares", {"bucket": bucket, "prefix": "p/"})
    assert wrong.status_code == 400 and '"method": "PUT"' in wrong.json()["message"]
