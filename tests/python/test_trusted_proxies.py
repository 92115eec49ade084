"""Trusted proxies: `X-Forwarded-For` / `Forwarded` / `X-Forwarded-Proto` name the client only when
the connection comes from a configured proxy; from anyone else they are ignored. What they name
is the client everywhere: share links' address lists, `aws:SourceIp` and `aws:SecureTransport` in
policies, and the audit trail."""

import json

import pytest
import requests

from conftest import Server, audit_rows
from test_identity import allow, client, error_code, new_user
from test_shares import mint


@pytest.fixture
def proxied(tmp_path):
    """A server that trusts the loopback address as its proxy (the tests stand in for it)."""
    server = Server(tmp_path / "proxied", config={"trusted_proxies": ["127.0.0.1"]}).start()
    yield server
    server.stop()


@pytest.fixture
def direct(tmp_path):
    server = Server(tmp_path / "direct").start()
    yield server
    server.stop()


def link_for(server, cidr):
    s3 = server.client()
    s3.create_bucket(Bucket="outside")
    s3.put_object(Bucket="outside", Key="doc", Body=b"for the partner")
    return mint(server, "outside", "doc", allow_cidrs=[cidr], max_uses=5)


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(direct):
    link = link_for(direct, "203.0.113.0/24")
    for spoof in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}):
        assert requests.get(link["api_url"], headers=spoof, timeout=10).status_code == 403
    denied = [row for row in audit_rows(direct, share_id=link["id"]) if row["event"] == "share.denied"]
    assert [row["source_ip"] for row in denied] == ["127.0.0.1", "127.0.0.1"]


def test_the_client_named_by_a_trusted_proxy_is_the_client(proxied):
    link = link_for(proxied, "203.0.113.0/24")
    assert requests.get(link["api_url"], headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10).content \
        == b"for the partner"
    # The client wrote its own first hop; the proxy appended what it saw: the right-most
    # untrusted hop is the client, and it is outside the list.
    chain = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
    assert requests.get(link["api_url"], headers=chain, timeout=10).status_code == 403
    assert requests.get(link["api_url"], headers={"Forwarded": 'for="203.0.113.10:4711"'}, timeout=10).status_code \
        == 200
    rows = audit_rows(proxied, share_id=link["id"])
    assert [(row["event"], row["source_ip"]) for row in rows if row["event"] != "share.created"] == [
        ("share.redeemed", "203.0.113.9"), ("share.denied", "198.51.100.7"), ("share.redeemed", "203.0.113.10")]


def test_source_ip_and_secure_transport_conditions_see_the_proxied_client(proxied):
    s3 = proxied.client()
    s3.create_bucket(Bucket="partners")
    s3.put_object(Bucket="partners", Key="price-list", Body=b"prices")
    s3.put_bucket_policy(Bucket="partners", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::partners/*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    _, key_id, secret = new_user(proxied, allow("s3:GetObject", "arn:aws:s3:::partners/*",
                                                Condition={"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}))
    user_s3 = client(proxied, "s3", key_id, secret)

    def get_with(headers):
        def add(request, **_):
            for name, value in headers.items():
                request.headers[name] = value
        fresh = client(proxied, "s3", key_id, secret)
        fresh.meta.events.register("before-sign.s3.GetObject", add)
        return lambda: fresh.get_object(Bucket="partners", Key="price-list")["Body"].read()

    assert error_code(lambda: user_s3.get_object(Bucket="partners", Key="price-list")) == "AccessDenied"
    assert error_code(get_with({"X-Forwarded-For": "203.0.113.9"})) == "AccessDenied", "not over TLS"
    assert get_with({"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})() == b"prices"
    assert error_code(get_with({"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"})) == "AccessDenied"
    denied = [row for row in audit_rows(proxied, "policy.denied") if "price-list" in row["reason"]]
    assert [row["source_ip"] for row in denied] == ["127.0.0.1", "203.0.113.9", "198.51.100.7"]
