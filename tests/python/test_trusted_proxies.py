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
    """A server that trusts the loopback address as its proxy (the tests stand in for it), which
    sets X-Forwarded-Proto."""
    server = Server(tmp_path / "proxied", config={"trusted_proxies": ["127.0.0.1"],
                                                  "trust_forwarded_proto": True}).start()
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
    # Only the header the proxies write counts: a client's own Forwarded passes through them.
    passed_through = {"Forwarded": "for=203.0.113.10", "X-Forwarded-For": "198.51.100.8"}
    assert requests.get(link["api_url"], headers=passed_through, timeout=10).status_code == 403
    # An IPv4 client written as IPv6 by a dual-stack proxy is the IPv4 client.
    assert requests.get(link["api_url"], headers={"X-Forwarded-For": "::ffff:203.0.113.11"}, timeout=10).status_code \
        == 200
    rows = audit_rows(proxied, share_id=link["id"])
    assert [(row["event"], row["source_ip"]) for row in rows if row["event"] != "share.created"] == [
        ("share.redeemed", "203.0.113.9"), ("share.denied", "198.51.100.7"), ("share.denied", "198.51.100.8"),
        ("share.redeemed", "203.0.113.11")]


def test_an_unreadable_forwarding_header_is_refused_not_taken_for_the_proxy(proxied):
    """Falling back to the proxy's own address would give the client the proxy's network (here
    loopback, which the link allows)."""
    link = link_for(proxied, "127.0.0.0/8")
    for junk in ("unknown", "_hidden", b"\x80, 198.51.100.7"):
        resp = requests.get(link["api_url"], headers={"X-Forwarded-For": junk}, timeout=10)
        assert (resp.status_code, resp.text) == (400, "Bad Request: unreadable forwarding header\n"), junk
    assert requests.get(link["api_url"], timeout=10).status_code == 200, "no header: the proxy's own request"


def test_the_protocol_counts_only_when_the_proxies_are_said_to_set_it(tmp_path):
    server = Server(tmp_path / "xfp", config={"trusted_proxies": ["127.0.0.1"]}).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="tls-only")
        s3.put_object(Bucket="tls-only", Key="k", Body=b"v")
        _, key_id, secret = new_user(server, allow("s3:GetObject", "arn:aws:s3:::tls-only/*",
                                                   Condition={"Bool": {"aws:SecureTransport": "true"}}))
        assert error_code(with_headers(server, key_id, secret, {"X-Forwarded-Proto": "https"})) == "AccessDenied"
    finally:
        server.stop()


def with_headers(server, key_id, secret, headers, bucket="tls-only", key="k"):
    """A GetObject of bucket/key by the user, sent with extra (signed) headers."""
    def add(request, **_):
        for name, value in headers.items():
            request.headers[name] = value
    fresh = client(server, "s3", key_id, secret)
    fresh.meta.events.register("before-sign.s3.GetObject", add)
    return lambda: fresh.get_object(Bucket=bucket, Key=key)["Body"].read()


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
        return with_headers(proxied, key_id, secret, headers, "partners", "price-list")

    assert error_code(lambda: user_s3.get_object(Bucket="partners", Key="price-list")) == "AccessDenied"
    assert error_code(get_with({"X-Forwarded-For": "203.0.113.9"})) == "AccessDenied", "not over TLS"
    assert get_with({"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})() == b"prices"
    assert get_with({"X-Forwarded-For": "::ffff:203.0.113.9", "X-Forwarded-Proto": "https"})() == b"prices"
    assert error_code(get_with({"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"})) == "AccessDenied"
    denied = [row for row in audit_rows(proxied, "policy.denied") if "price-list" in row["reason"]]
    assert [row["source_ip"] for row in denied] == ["127.0.0.1", "203.0.113.9", "198.51.100.7"]
