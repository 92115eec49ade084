"""Latchkey on PostgreSQL: the S3 API works the same, and several `latchkey serve` processes
sharing one database and one data dir behave as one service."""

import hashlib
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import Server, psql
from test_shares import api, mint


@pytest.fixture
def replicas(tmp_path, pg_url):
    data = tmp_path / "shared-data"
    first = Server(data, meta_url=pg_url).start()
    second = Server(data, meta_url=pg_url).start()
    yield first, second
    for srv in (first, second):
        srv.stop(signal.SIGKILL)


def test_s3_basics_on_postgres(replicas):
    first, second = replicas
    a, b = first.client(), second.client()
    a.create_bucket(Bucket="pg-bucket")
    payload = os.urandom(6 * 1024 * 1024)
    a.put_object(Bucket="pg-bucket", Key="dir/one", Body=payload, Metadata={"m": "1"})
    got = b.get_object(Bucket="pg-bucket", Key="dir/one")
    assert got["Body"].read() == payload and got["Metadata"] == {"m": "1"}
    for i in range(30):
        b.put_object(Bucket="pg-bucket", Key=f"dir/{i:03d}", Body=b"x")
    pages = list(a.get_paginator("list_objects_v2").paginate(Bucket="pg-bucket", Prefix="dir/",
                                                             PaginationConfig={"PageSize": 7}))
    assert sum(p["KeyCount"] for p in pages) == 31
    top = a.list_objects_v2(Bucket="pg-bucket", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["dir/"]
    # Multipart through one replica, completed through the other.
    uid = a.create_multipart_upload(Bucket="pg-bucket", Key="mp")["UploadId"]
    parts = [os.urandom(5 * 1024 * 1024), b"tail"]
    etags = [a.upload_part(Bucket="pg-bucket", Key="mp", UploadId=uid, PartNumber=n, Body=p)["ETag"]
             for n, p in enumerate(parts, start=1)]
    b.complete_multipart_upload(Bucket="pg-bucket", Key="mp", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": t} for n, t in enumerate(etags, start=1)]})
    assert hashlib.sha256(a.get_object(Bucket="pg-bucket", Key="mp")["Body"].read()).digest() == \
        hashlib.sha256(b"".join(parts)).digest()
    # An overwrite through one replica is what the other serves next.
    b.put_object(Bucket="pg-bucket", Key="dir/one", Body=b"replaced")
    assert a.get_object(Bucket="pg-bucket", Key="dir/one")["Body"].read() == b"replaced"
    with pytest.raises(ClientError) as e:
        a.delete_bucket(Bucket="pg-bucket")
    assert e.value.response["Error"]["Code"] == "BucketNotEmpty"


@pytest.mark.parametrize("uses", [1, 5])
def test_redemptions_spread_over_two_replicas_grant_exactly_max_uses(replicas, uses):
    first, second = replicas
    first.client().create_bucket(Bucket="pg-shares")
    first.client().put_object(Bucket="pg-shares", Key="f", Body=b"y" * 1024)
    link = mint(first, "pg-shares", "f", max_uses=uses)
    token = link["token"]
    urls = [f"{srv.endpoint}/-/access-object?nonce={token}" for srv in (first, second)]

    def redeem(i):
        resp = requests.get(urls[i % 2], timeout=30)
        return resp.status_code, resp.content

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(redeem, range(200)))
    granted = [r for r in results if r[0] == 200]
    refused = {r for r in results if r[0] != 200}
    assert len(granted) == uses and all(body == b"y" * 1024 for _, body in granted)
    assert len(refused) == 1 and next(iter(refused))[0] == 403
    assert api(second, "GET", f"/-/shares/{link['id']}").json()["uses_left"] == 0


def test_each_replica_keeps_to_its_connection_limit(tmp_path, pg_url):
    name = f"lk-pool-{os.getpid()}"
    srv = Server(tmp_path / "data", meta_url=f"{pg_url}&application_name={name}",
                 config={"meta_max_connections": 3}).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="pool")
        with ThreadPoolExecutor(max_workers=24) as pool:
            list(pool.map(lambda i: s3.put_object(Bucket="pool", Key=f"k{i}", Body=b"x"), range(200)))
        assert s3.list_objects_v2(Bucket="pool")["KeyCount"] == 200
        count = psql(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'")
        assert 1 <= int(count.stdout) <= 3, count
    finally:
        srv.stop()
