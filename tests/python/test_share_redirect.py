"""Redirect-mode links: a redemption answers 302 with a presigned S3 URL that lives at most 60 s,
for clients that must fetch from an S3 URL; the link itself is still spent atomically."""

import time
from urllib.parse import parse_qs, urlsplit

import requests

from test_shares import api, mint


def test_a_redirect_link_is_spent_and_points_to_a_short_lived_presigned_url(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="media/clip one.mp4", Body=b"\x00clip" * 1000, ContentType="video/mp4")
    link = mint(server, bucket, "media/clip one.mp4", redirect=True)
    assert link["redirect"] is True

    resp = requests.get(link["api_url"], allow_redirects=False, timeout=10)
    assert resp.status_code == 302 and resp.headers["Cache-Control"] == "no-store"
    location = resp.headers["Location"]
    target = urlsplit(location)
    query = parse_qs(target.query)
    assert f"{target.scheme}://{target.netloc}" == server.endpoint
    assert target.path == f"/{bucket}/media/clip%20one.mp4"
    assert query["X-Amz-Expires"] == ["60"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    signed_at = time.mktime(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")) - time.timezone
    assert abs(signed_at - time.time()) < 30
    assert link["token"] not in location

    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200 and fetched.content == b"\x00clip" * 1000
    assert fetched.headers["Content-Type"] == "video/mp4"
    assert requests.get(link["api_url"], allow_redirects=False, timeout=10).status_code == 403

    # A browser's POST from the landing page is redirected the same way.
    other = mint(server, bucket, "media/clip one.mp4", redirect=True)
    followed = requests.post(other["url"], timeout=10)
    assert followed.status_code == 200 and followed.content == b"\x00clip" * 1000
    assert followed.history[0].status_code == 302


def test_a_redirect_never_outlives_its_link(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"short")
    link = mint(server, bucket, "k", redirect=True, expires_in=5)
    location = requests.get(link["api_url"], allow_redirects=False, timeout=10).headers["Location"]
    assert int(parse_qs(urlsplit(location).query)["X-Amz-Expires"][0]) <= 5


def test_a_redirect_link_cannot_claim_an_allow_list(server, s3, bucket):
    """Its presigned URL would work from any address, so the allow-list would be a false promise."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    resp = api(server, "POST", "/-/shares", {"bucket": bucket, "key": "k", "redirect": True,
                                             "allow_cidrs": ["127.0.0.1/32"]})
    assert resp.status_code == 400 and "allow_cidrs" in resp.json()["message"]
