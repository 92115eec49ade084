"""/-/metrics in Prometheus text: requests by operation and status, latency histograms, bytes in
and out, denials by code, refusals by reason, expired presigned URLs, share links minted,
redeemed and denied, store latency, the audit chain's length and open connections."""

import re
import time

import pytest
import requests

from conftest import Server
from test_shares import mint


@pytest.fixture
def measured(tmp_path):
    srv = Server(tmp_path / "data", config={"surfaces": ["s3", "shares", "health", "metrics"]}).start()
    yield srv
    srv.stop()


def samples(server):
    """Every sample of /-/metrics: {(name, frozenset(labels)): value}."""
    text = requests.get(server.endpoint + "/-/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            out[(match.group(1), labels)] = float(match.group(3))
    return out


def value(all_samples, name, **labels):
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, l), v in all_samples.items() if n == name and wanted <= l)


def test_the_metrics_count_what_happened(measured):
    s3 = measured.client()
    s3.create_bucket(Bucket="measured")
    s3.put_object(Bucket="measured", Key="k", Body=b"x" * 1000)
    assert s3.get_object(Bucket="measured", Key="k")["Body"].read() == b"x" * 1000
    assert requests.get(f"{measured.endpoint}/measured/k", timeout=10).status_code == 403
    link = mint(measured, "measured", "k")
    assert requests.get(link["api_url"], timeout=10).status_code == 200
    assert requests.get(link["api_url"], timeout=10).status_code == 403
    expiring = measured.client(signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": "measured", "Key": "k"}, ExpiresIn=1)
    time.sleep(2.1)
    assert requests.get(expiring, timeout=10).status_code == 403
    time.sleep(1.5)  # the audit events are linked within a second

    got = samples(measured)
    assert value(got, "latchkey_requests_total", surface="s3", operation="GetObject", status="200") == 1
    assert value(got, "latchkey_requests_total", surface="s3", operation="PutObject", status="200") == 1
    assert value(got, "latchkey_request_duration_seconds_count", surface="s3") >= 5
    assert value(got, "latchkey_bytes_in_total", surface="s3") >= 1000
    assert value(got, "latchkey_bytes_out_total", surface="s3") >= 1000
    assert value(got, "latchkey_denied_total", code="AccessDenied") >= 2
    assert value(got, "latchkey_presigned_expired_total") == 1
    assert value(got, "latchkey_shares_total", outcome="minted") == 1
    assert value(got, "latchkey_shares_total", outcome="redeemed") == 1
    assert value(got, "latchkey_shares_total", outcome="denied") == 1
    assert value(got, "latchkey_store_duration_seconds_count", operation="consume_share") >= 1
    assert value(got, "latchkey_store_duration_seconds_count", operation="link_audit") >= 1
    # share.created, share.redeemed, share.denied, policy.denied, config.changed, root.used...
    assert value(got, "latchkey_audit_chain_length") >= 5
