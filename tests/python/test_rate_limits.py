"""Rate limits per client address, per access key and per share link: over its rate a client gets
`503 SlowDown` (S3 XML) on the S3 API and `429` elsewhere, both with `Retry-After`, while other
clients are served; it recovers once the window passes; failed authentications cost more. The
clients' addresses are set through a trusted proxy (the tests stand in for it)."""

import json
import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, SECRET_KEY, Server
from test_identity import signed_request
from test_shares import mint


def limited_server(tmp_path, **limits):
    config = {"trusted_proxies": ["127.0.0.1"],
              "rate_limits": {"per_ip": 1, "per_ip_burst": 4, "per_link": 100, "failed_auth_cost": 10,
                              "exempt": [], **limits}}
    return Server(tmp_path / "data", config=config).start()


def health(server, ip):
    return requests.get(server.endpoint + "/-/health", headers={"X-Forwarded-For": ip}, timeout=10)


def test_a_client_over_its_rate_waits_while_another_is_served(tmp_path):
    server = limited_server(tmp_path)
    try:
        # The client is made and warmed up (botocore loads its models on the first call) as another
        # address first.
        s3 = server.client()
        client_ip = ["203.0.113.77"]

        def add(request, **_):
            request.headers["X-Forwarded-For"] = client_ip[0]
        s3.meta.events.register("before-sign.s3.ListBuckets", add)
        s3.list_buckets()
        # The refusals must all land within the one second a request refills; each is held back
        # up to 375 ms, so on a loaded machine the round is tried again from a fresh address.
        for attempt in range(5):
            address = f"203.0.113.{5 + attempt}"
            client_ip[0] = address
            started = time.monotonic()
            assert [health(server, address).status_code for _ in range(4)] == [200] * 4
            # The S3 API answers in S3's words, which SDKs back off on.
            try:
                s3.list_buckets()
                error = None
            except ClientError as slow:
                error = slow.response
            refused = health(server, address)
            if time.monotonic() - started < 0.95:
                break
        else:
            pytest.fail("five rounds each took longer than the one second a request refills")
        assert error is not None, "the fifth request within the burst's second was served"
        assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("SlowDown", 503)
        assert "retry-after" in error["ResponseMetadata"]["HTTPHeaders"]
        assert (refused.status_code, refused.text) == (429, "Too Many Requests\n")
        assert int(refused.headers["Retry-After"]) == 1
        assert health(server, "203.0.113.66").status_code == 200, "another address is not affected"

        time.sleep(1.1)  # a request's worth at 1/s: the window is what is under test
        assert health(server, address).status_code == 200, "recovered"
    finally:
        server.stop()


def test_refusals_are_held_back_unless_a_trusted_proxy_carries_them(tmp_path):
    """A client over its rate waits for its answer (125 to 375 ms), so that a flood's connections
    sit idle; a trusted proxy's connection carries other clients' requests too and is not held."""
    server = Server(tmp_path / "data", config={"rate_limits": {"per_ip": 1, "per_ip_burst": 2, "exempt": []}})
    server.start()
    try:
        url = server.endpoint + "/-/health"
        assert [requests.get(url, timeout=10).status_code for _ in range(2)] == [200, 200]
        started = time.monotonic()
        refused = requests.get(url, timeout=10)
        assert refused.status_code == 429 and time.monotonic() - started >= 0.125
    finally:
        server.stop()


def test_failed_authentications_cost_more_than_requests(tmp_path):
    server = limited_server(tmp_path)
    try:
        forged = signed_request(server, "GET", "/", "AKIAFORGEDFORGED0000", "not-the-secret",
                                headers={"X-Forwarded-For": "198.51.100.9"})
        assert forged.status_code == 403, forged.text
        # Ten requests' worth against a burst of four: this address now waits.
        assert health(server, "198.51.100.9").status_code == 429
        assert health(server, "198.51.100.10").status_code == 200
    finally:
        server.stop()


def test_a_link_has_a_limit_of_its_own_whoever_asks(tmp_path):
    server = limited_server(tmp_path, per_ip=100, per_ip_burst=100, per_link=1, per_link_burst=2)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="linked")
        s3.put_object(Bucket="linked", Key="doc", Body=b"doc")
        link = mint(server, "linked", "doc", max_uses=10)
        other = mint(server, "linked", "doc", max_uses=10)
        got = [requests.get(link["api_url"], headers={"X-Forwarded-For": f"192.0.2.{i}"}, timeout=10).status_code
               for i in range(1, 4)]
        assert got == [200, 200, 429], got
        assert requests.get(other["api_url"], headers={"X-Forwarded-For": "192.0.2.9"}, timeout=10).status_code == 200
    finally:
        server.stop()


def test_forged_requests_naming_a_key_do_not_lock_out_its_owner(tmp_path):
    """Key ids are not secret: a stranger's forged requests for root's key cost the stranger's
    address, not the key (a per-key limit is on here, with room for five)."""
    server = limited_server(tmp_path, per_ip=100, per_ip_burst=100, per_key=1, per_key_burst=5)
    try:
        forged = signed_request(server, "GET", "/", ACCESS_KEY, "not-the-secret",
                                headers={"X-Forwarded-For": "198.51.100.66"})
        assert forged.status_code == 403, forged.text
        owner = signed_request(server, "GET", "/", ACCESS_KEY, SECRET_KEY, headers={"X-Forwarded-For": "192.0.2.7"})
        assert owner.status_code == 200, owner.text
    finally:
        server.stop()


def test_forms_count_against_the_key_that_signed_them(tmp_path):
    """A form's signing key is in its body, past the guard: PostObject charges it there, so a key
    whose forms are posted from many addresses is held to its rate as its presigned URLs are.
    The key's own calls and one form after the window are served; nothing is stored when refused."""
    server = limited_server(tmp_path, per_ip=100, per_ip_burst=100, per_key=1, per_key_burst=5)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="forms")
        form = s3.generate_presigned_post("forms", "posted/${filename}", ExpiresIn=300)

        def post(n):
            return requests.post(form["url"], data=form["fields"], files={"file": (f"{n}.txt", b"form")},
                                 headers={"X-Forwarded-For": f"198.51.100.{10 + n}"}, timeout=30)
        answers = [post(n) for n in range(10)]
        statuses = [resp.status_code for resp in answers]
        assert statuses[:3] == [204] * 3, statuses
        refused = [resp for resp in answers if resp.status_code == 503]
        assert refused, f"ten forms within a burst of five were all served: {statuses}"
        assert set(statuses) == {204, 503}, statuses
        assert all("<Code>SlowDown</Code>" in resp.text and "Retry-After" in resp.headers for resp in refused)
        # The key itself is over its rate too now: once the window passes, it lists and posts.
        time.sleep(3)
        stored = s3.list_objects_v2(Bucket="forms", Prefix="posted/").get("Contents", [])
        assert len(stored) == statuses.count(204), (statuses, [o["Key"] for o in stored])
        assert post(20).status_code == 204
        # Logged as the guard's own rate refusals are.
        lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
        posts = [line for line in lines if line.get("operation") == "PostObject"]
        assert [line["status"] for line in posts] == statuses + [204]
        assert all(line["refused"] == ("rate" if line["status"] == 503 else None) for line in posts)
    finally:
        server.stop()


def test_forged_forms_naming_a_key_do_not_spend_its_rate(tmp_path):
    """A form is charged to its key only once its signature checks: a stranger posting forms with
    a bad signature for the key (key ids are not secret) spends the stranger's addresses, and the
    key's own form is still served."""
    server = limited_server(tmp_path, per_ip=100, per_ip_burst=100, per_key=1, per_key_burst=5)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="forms")
        form = s3.generate_presigned_post("forms", "posted/${filename}", ExpiresIn=300)
        name = next(name for name in form["fields"] if name.lower() in ("signature", "x-amz-signature"))
        signature = form["fields"][name]
        forged = dict(form["fields"], **{name: ("B" if signature[0] == "A" else "A") + signature[1:]})
        for n in range(10):
            resp = requests.post(form["url"], data=forged, files={"file": ("f.txt", b"forged")},
                                 headers={"X-Forwarded-For": f"198.51.100.{40 + n}"}, timeout=30)
            assert resp.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in resp.text, resp.text
        genuine = requests.post(form["url"], data=form["fields"], files={"file": ("g.txt", b"genuine")},
                                headers={"X-Forwarded-For": "192.0.2.30"}, timeout=30)
        assert genuine.status_code == 204, genuine.text
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="forms")["Contents"]] == ["posted/g.txt"]
    finally:
        server.stop()
