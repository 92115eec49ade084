"""Listeners per surface (the network isolation of AWS's guidance: the S3 API inside, share links
outside): each listener serves only its surfaces (anything else is a bare 404, whatever its
credentials) and accepts connections only from its networks; `/-/health` (liveness) and
`/-/ready` (store and data dir) on the listeners that serve `health`."""

import os

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, free_port
from test_shares import mint


@pytest.fixture
def split(tmp_path):
    """S3 and health on the `listen` address; share links and health on a second listener, which
    is also the base of the links handed out."""
    outside = free_port()
    server = Server(tmp_path / "data", config={
        "surfaces": ["s3", "health"],
        "public_url": f"http://127.0.0.1:{outside}",
        "listeners": [{"address": f"127.0.0.1:{outside}", "surfaces": ["shares", "health"]}],
    }).start()
    server.outside = f"http://127.0.0.1:{outside}"
    yield server
    server.stop()


def test_each_listener_serves_only_its_surfaces(split):
    s3 = split.client()
    s3.create_bucket(Bucket="isolated")
    s3.put_object(Bucket="isolated", Key="brief.pdf", Body=b"%PDF brief")
    link = mint(split, "isolated", "brief.pdf", max_uses=3)
    assert link["api_url"].startswith(split.outside + "/-/access-object")

    # Outside: the link works; the S3 API does not exist, whatever the credentials.
    assert requests.get(link["api_url"], timeout=10).content == b"%PDF brief"
    assert requests.get(link["url"], timeout=10).status_code == 200
    outside_s3 = boto3.client("s3", endpoint_url=split.outside, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY, region_name=REGION)
    with pytest.raises(ClientError) as refused:
        outside_s3.list_buckets()
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    for path in ("/", "/isolated/brief.pdf", "/-/shares", "/-/metrics"):
        resp = requests.get(split.outside + path, timeout=10)
        assert (resp.status_code, resp.text) == (404, "Not Found\n"), path

    # Inside: S3 works; the link does not.
    assert s3.get_object(Bucket="isolated", Key="brief.pdf")["Body"].read() == b"%PDF brief"
    inside_link = link["api_url"].replace(split.outside, split.endpoint)
    assert requests.get(inside_link, timeout=10).status_code == 404
    for base in (split.endpoint, split.outside):
        assert requests.get(base + "/-/health", timeout=10).text == "ok\n"
        assert requests.get(base + "/-/ready", timeout=10).text == "ready\n"


def test_a_listener_accepts_only_its_networks(tmp_path):
    closed, open_ = free_port(), free_port()
    server = Server(tmp_path / "data", config={"listeners": [
        {"address": f"127.0.0.1:{closed}", "surfaces": ["health"], "allow_cidrs": ["192.0.2.0/24"]},
        {"address": f"127.0.0.1:{open_}", "surfaces": ["health"], "allow_cidrs": ["127.0.0.0/8"]},
    ]}).start()
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{closed}/-/health", timeout=10)
        assert requests.get(f"http://127.0.0.1:{open_}/-/health", timeout=10).text == "ok\n"
        # The `listen` address serves every surface, from anywhere.
        assert requests.get(server.endpoint + "/-/health", timeout=10).text == "ok\n"
    finally:
        server.stop()


def test_ready_says_when_the_data_dir_cannot_be_written(tmp_path):
    server = Server(tmp_path / "data").start()
    try:
        assert requests.get(server.endpoint + "/-/ready", timeout=10).text == "ready\n"
        # The probe file's name taken by a directory: the write fails (even for root).
        os.mkdir(server.data_dir / f".ready-{server.proc.pid}")
        resp = requests.get(server.endpoint + "/-/ready", timeout=10)
        assert (resp.status_code, resp.text) == (503, "not ready: data dir not writable\n")
        assert requests.get(server.endpoint + "/-/health", timeout=10).text == "ok\n", "alive all the same"
    finally:
        server.stop()
