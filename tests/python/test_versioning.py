"""Versioning, as the S3 API reference describes it, with boto3 and the AWS CLI on both metadata
backends: Put/GetBucketVersioning, version ids on every write, GET/HEAD/DELETE/CopyObject source
and tagging by versionId, delete markers (404 with x-amz-delete-marker on the key, 405 on the
marker, deleting the marker restores), the null version of unversioned and suspended buckets,
ListObjectVersions with key and version-id markers, prefixes and delimiters; share links bound
to the version they were made for; blobs freed exactly when no version names them."""

import json
import sqlite3
import subprocess
import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import pg_rows
from test_shares import api, mint


def code(exc):
    return exc.value.response["Error"]["Code"]


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def headers(exc):
    return exc.value.response["ResponseMetadata"]["HTTPHeaders"]


def enable(s3, bucket, state="Enabled"):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": state})


def history(s3, bucket, prefix=""):
    """The bucket's versions and delete markers as (key, version id, is latest, marker), read page
    by page with the paginator (MaxKeys 2, so markers are exercised). The XML lists a page's
    versions apart from its delete markers, so versions are newest first per key, and markers
    follow the versions of their page."""
    entries = []
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix,
                                                               PaginationConfig={"PageSize": 2})
    for page in pages:
        for v in page.get("Versions", []):
            entries.append((v["Key"], v["VersionId"], v["IsLatest"], False))
        for m in page.get("DeleteMarkers", []):
            entries.append((m["Key"], m["VersionId"], m["IsLatest"], True))
    return entries


def body(s3, bucket, key, **kw):
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def test_overwrites_and_deletes_are_recovered_through_versions(server, s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"first")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"second")["VersionId"]
    assert v1 != v2 and len(v1) == 32
    assert body(s3, bucket, "doc.txt") == b"second"
    assert body(s3, bucket, "doc.txt", VersionId=v1) == b"first"
    head = s3.head_object(Bucket=bucket, Key="doc.txt", VersionId=v1)
    assert (head["ContentLength"], head["VersionId"]) == (5, v1)
    assert s3.get_object(Bucket=bucket, Key="doc.txt", VersionId=v1, Range="bytes=1-2")["Body"].read() == b"ir"

    deleted = s3.delete_object(Bucket=bucket, Key="doc.txt")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket=bucket, Key="doc.txt")
    assert (status(gone), code(gone)) == (404, "NoSuchKey")
    assert headers(gone)["x-amz-delete-marker"] == "true" and headers(gone)["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as on_marker:
        s3.get_object(Bucket=bucket, Key="doc.txt", VersionId=marker)
    assert (status(on_marker), code(on_marker)) == (405, "MethodNotAllowed")
    assert headers(on_marker)["x-amz-delete-marker"] == "true" and "last-modified" in headers(on_marker)
    with pytest.raises(ClientError) as head_marker:
        s3.head_object(Bucket=bucket, Key="doc.txt", VersionId=marker)
    assert status(head_marker) == 405
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket), "a deleted key is not listed"
    assert sorted(history(s3, bucket)) == sorted([("doc.txt", v2, False, False), ("doc.txt", v1, False, False),
                                                  ("doc.txt", marker, True, True)])

    # Deleting the marker restores the newest version; deleting a version removes it for good.
    restored = s3.delete_object(Bucket=bucket, Key="doc.txt", VersionId=marker)
    assert (restored["DeleteMarker"], restored["VersionId"]) == (True, marker)
    assert body(s3, bucket, "doc.txt") == b"second"
    assert s3.delete_object(Bucket=bucket, Key="doc.txt", VersionId=v2)["VersionId"] == v2
    assert body(s3, bucket, "doc.txt") == b"first"
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="doc.txt", VersionId=v2)
    assert (status(missing), code(missing)) == (404, "NoSuchVersion")
    assert history(s3, bucket) == [("doc.txt", v1, True, False)]

    # A bucket with versions left is not empty; once they are all deleted it can go.
    s3.delete_object(Bucket=bucket, Key="doc.txt")
    with pytest.raises(ClientError) as not_empty:
        s3.delete_bucket(Bucket=bucket)
    assert code(not_empty) == "BucketNotEmpty"
    for key, version, _, _ in history(s3, bucket):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    s3.delete_bucket(Bucket=bucket)


def test_bad_version_ids_and_settings_are_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for bad in ["../x", "A" * 32, "1234"]:
        with pytest.raises(ClientError) as refused:
            s3.get_object(Bucket=bucket, Key="k", VersionId=bad)
        assert (status(refused), code(refused)) == (400, "InvalidArgument"), bad
    with pytest.raises(ClientError) as unknown:
        s3.get_object(Bucket=bucket, Key="k", VersionId="0" * 32)
    assert code(unknown) == "NoSuchVersion"
    # Deleting a version that does not exist is no error, and deletes nothing.
    s3.delete_object(Bucket=bucket, Key="k", VersionId="0" * 32)
    assert body(s3, bucket, "k") == b"x"
    with pytest.raises(ClientError) as mfa:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"})
    assert code(mfa) == "AccessDenied", "MFA Delete needs a code (test_mfa_delete.py)"
    with pytest.raises(ClientError) as no_bucket:
        enable(s3, "t-no-such-bucket")
    assert code(no_bucket) == "NoSuchBucket"
    with pytest.raises(ClientError) as no_key_marker:
        s3.list_object_versions(Bucket=bucket, VersionIdMarker="null")
    assert code(no_key_marker) == "InvalidArgument"
    for marker in ["null.notanumber", "../x.5", "null.", "A" * 32 + ".1"]:
        with pytest.raises(ClientError) as bad_marker:
            s3.list_object_versions(Bucket=bucket, KeyMarker="k", VersionIdMarker=marker)
        assert code(bad_marker) == "InvalidArgument", marker


def test_the_null_version_of_unversioned_and_suspended_buckets(server, s3, bucket):
    before = s3.put_object(Bucket=bucket, Key="k", Body=b"before")
    assert "VersionId" not in before, "a never-versioned bucket names no version"
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")["VersionId"]
    assert history(s3, bucket) == [("k", v1, True, False), ("k", "null", False, False)]
    assert body(s3, bucket, "k", VersionId="null") == b"before"

    # Suspended: writes make the null version, replacing the old null; v1 is kept.
    enable(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    s3.put_object(Bucket=bucket, Key="k", Body=b"suspended")
    assert history(s3, bucket) == [("k", "null", True, False), ("k", v1, False, False)]
    assert body(s3, bucket, "k", VersionId="null") == b"suspended"
    # A suspended delete replaces the null version with a null delete marker.
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert (deleted["DeleteMarker"], deleted["VersionId"]) == (True, "null")
    assert sorted(history(s3, bucket)) == sorted([("k", "null", True, True), ("k", v1, False, False)])
    assert body(s3, bucket, "k", VersionId=v1) == b"versioned"


def test_list_object_versions_pages_with_markers_prefixes_and_delimiters(server, s3, bucket):
    enable(s3, bucket)
    written = {}
    for key in ["a/1", "a/2", "b", "c/x/1", "d"]:
        written[key] = [s3.put_object(Bucket=bucket, Key=key, Body=key.encode() * n)["VersionId"] for n in (1, 2, 3)]
    s3.delete_object(Bucket=bucket, Key="b")
    full = s3.list_object_versions(Bucket=bucket)
    assert not full["IsTruncated"] and len(full["Versions"]) == 15 and len(full["DeleteMarkers"]) == 1
    paged = history(s3, bucket)
    expected = []
    for key in ["a/1", "a/2", "b", "c/x/1", "d"]:
        if key == "b":
            marker = full["DeleteMarkers"][0]["VersionId"]
            expected.append((key, marker, True, True))
        ids = list(reversed(written[key]))
        expected += [(key, v, i == 0 and key != "b", False) for i, v in enumerate(ids)]
    assert sorted(paged) == sorted(expected)
    versions_only = [e for e in paged if not e[3]]
    assert versions_only == [e for e in expected if not e[3]], "keys in order, each newest first"

    # One page ends inside a key's history: the next starts at the following version.
    first = s3.list_object_versions(Bucket=bucket, MaxKeys=2)
    assert first["IsTruncated"] and first["NextKeyMarker"] == "a/1"
    assert first["NextVersionIdMarker"].startswith(written["a/1"][1] + "."), "an id and a position in the history"
    for marker in [first["NextVersionIdMarker"], written["a/1"][1]]:  # a marker made here, or a version id
        rest = s3.list_object_versions(Bucket=bucket, KeyMarker="a/1", VersionIdMarker=marker, MaxKeys=2)
        assert [(v["Key"], v["VersionId"]) for v in rest["Versions"]] == [("a/1", written["a/1"][0]),
                                                                           ("a/2", written["a/2"][2])]
    after_key = s3.list_object_versions(Bucket=bucket, KeyMarker="a/2", MaxKeys=1)
    assert after_key["DeleteMarkers"][0]["Key"] == "b" and "Versions" not in after_key

    # A delimiter rolls keys up; a prefix narrows; URL encoding applies to keys.
    rolled = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["a/", "c/"]
    assert sorted({v["Key"] for v in rolled["Versions"]}) == ["b", "d"]
    nested = s3.list_object_versions(Bucket=bucket, Prefix="c/", Delimiter="/")
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["c/x/"] and "Versions" not in nested
    by_prefix = [(k, v) for k, v, _, _ in history(s3, bucket, prefix="a/2")]
    assert by_prefix == [("a/2", v) for v in reversed(written["a/2"])]
    paged_prefixes = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert paged_prefixes["IsTruncated"] and paged_prefixes["NextKeyMarker"] == "a/"
    assert "NextVersionIdMarker" not in paged_prefixes
    resumed = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=1, KeyMarker="a/")
    assert resumed["DeleteMarkers"][0]["Key"] == "b"


def test_deleting_each_page_as_it_is_listed_deletes_every_version(server, s3, bucket):
    # boto3's bucket.object_versions.page_size(2).delete(): each page's versions are deleted
    # before the next page is asked for after them.
    enable(s3, bucket)
    for n in range(6):
        s3.put_object(Bucket=bucket, Key="many", Body=str(n).encode())
    s3.delete_object(Bucket=bucket, Key="many")
    import boto3
    resource = boto3.resource("s3", endpoint_url=server.endpoint, region_name=s3.meta.region_name,
                              aws_access_key_id=s3._request_signer._credentials.access_key,
                              aws_secret_access_key=s3._request_signer._credentials.secret_key)
    resource.Bucket(bucket).object_versions.page_size(2).delete()
    assert history(s3, bucket) == []
    s3.delete_bucket(Bucket=bucket)


def test_delete_objects_copy_and_tagging_by_version(server, s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="src", Body=b"one", Tagging="era=one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="src", Body=b"two")["VersionId"]
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
    assert copied["CopySourceVersionId"] == v1 and copied["VersionId"] not in (v1, v2)
    assert body(s3, bucket, "dst") == b"one"
    # Copying a version onto its own key restores it as the newest (no metadata change needed).
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
    assert body(s3, bucket, "src") == b"one"

    assert s3.get_object_tagging(Bucket=bucket, Key="src", VersionId=v1)["TagSet"] == [{"Key": "era", "Value": "one"}]
    s3.put_object_tagging(Bucket=bucket, Key="src", VersionId=v2, Tagging={"TagSet": [{"Key": "era", "Value": "two"}]})
    tagged = s3.get_object_tagging(Bucket=bucket, Key="src", VersionId=v2)
    assert (tagged["TagSet"], tagged["VersionId"]) == ([{"Key": "era", "Value": "two"}], v2)
    s3.delete_object_tagging(Bucket=bucket, Key="src", VersionId=v1)
    assert s3.get_object_tagging(Bucket=bucket, Key="src", VersionId=v1)["TagSet"] == []

    marker = s3.delete_object(Bucket=bucket, Key="dst")["VersionId"]
    with pytest.raises(ClientError) as from_marker:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "dst", "VersionId": marker})
    assert code(from_marker) == "InvalidRequest"

    # DeleteObjects: versions by id, a new marker for a key without one.
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "src", "VersionId": v2}, {"Key": "dst", "VersionId": marker}, {"Key": "src"}]})
    by_key = {(d["Key"], d.get("VersionId")): d for d in result["Deleted"]}
    assert set(by_key) == {("src", v2), ("dst", marker), ("src", None)} and "Errors" not in result
    assert by_key[("dst", marker)]["DeleteMarker"] is True
    assert by_key[("src", None)]["DeleteMarker"] is True and len(by_key[("src", None)]["DeleteMarkerVersionId"]) == 32
    assert body(s3, bucket, "dst") == b"one", "deleting its marker restored dst"
    assert v2 not in [v for _, v, _, _ in history(s3, bucket, "src")]


def test_a_share_link_keeps_serving_the_version_it_was_made_for(server, s3, bucket):
    enable(s3, bucket)
    s3.put_object(Bucket=bucket, Key="report.pdf", Body=b"version one")
    link = mint(server, bucket, "report.pdf", max_uses=2)
    redirect = mint(server, bucket, "report.pdf", redirect=True)
    s3.put_object(Bucket=bucket, Key="report.pdf", Body=b"version two")
    assert requests.get(link["api_url"], timeout=10).content == b"version one"
    shown = api(server, "GET", f"/-/shares/{link['id']}").json()
    assert shown["state"] == "active", shown

    location = requests.get(redirect["api_url"], allow_redirects=False, timeout=10).headers["Location"]
    assert "versionId=" in location
    assert requests.get(location, timeout=10).content == b"version one"

    # Deleting the object stops the link (as before versioning) until the delete is undone.
    again = mint(server, bucket, "report.pdf", max_uses=5)
    marker = s3.delete_object(Bucket=bucket, Key="report.pdf")["VersionId"]
    assert requests.get(link["api_url"], timeout=10).status_code == 403
    assert api(server, "GET", f"/-/shares/{again['id']}").json()["state"] != "active"
    assert api(server, "POST", "/-/shares", {"bucket": bucket, "key": "report.pdf"}).status_code == 404
    s3.delete_object(Bucket=bucket, Key="report.pdf", VersionId=marker)
    assert requests.get(again["api_url"], timeout=10).content == b"version two"

    # Once its version is deleted for good, a link is refused.
    v1 = [v for k, v, latest, _ in history(s3, bucket) if not latest][0]
    s3.delete_object(Bucket=bucket, Key="report.pdf", VersionId=v1)
    assert requests.get(link["api_url"], timeout=10).status_code == 403


def blob_ids(server, bucket):
    """The blob of every version of `bucket`'s objects, current or not."""
    sql = (f"SELECT blob_id FROM objects WHERE bucket = '{bucket}' UNION ALL "
           f"SELECT blob_id FROM object_versions WHERE bucket = '{bucket}' AND NOT delete_marker")
    if server.meta_url:
        return [row["blob_id"] for row in pg_rows(sql.replace("FROM ", f"FROM {server.schema()}."))]
    db = sqlite3.connect(f"file:{server.data_dir / 'meta.db'}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute(sql)]
    finally:
        db.close()


def blob_exists(server, blob_id):
    return (server.data_dir / "blobs" / blob_id[:2] / blob_id).exists()


def wait_gone(server, blob_id, timeout=10):
    deadline = time.monotonic() + timeout
    while blob_exists(server, blob_id):
        assert time.monotonic() < deadline, f"blob {blob_id} was not collected"
        time.sleep(0.1)


def test_a_blob_is_freed_only_when_no_version_names_it(server, s3, bucket):
    enable(s3, bucket)
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=f"v{n}".encode())["VersionId"] for n in range(3)]
    s3.delete_object(Bucket=bucket, Key="k")
    blobs = blob_ids(server, bucket)
    assert len(blobs) == 3
    time.sleep(1.5)  # a collector pass or more
    assert all(blob_exists(server, b) for b in blobs), "overwrites and a delete marker free nothing"
    kept_by = {body(s3, bucket, "k", VersionId=v): v for v in ids}
    s3.delete_object(Bucket=bucket, Key="k", VersionId=kept_by[b"v1"])
    (gone,) = set(blobs) - set(blob_ids(server, bucket))
    wait_gone(server, gone)
    assert all(blob_exists(server, b) for b in blob_ids(server, bucket))
    assert body(s3, bucket, "k", VersionId=kept_by[b"v0"]) == b"v0"


def test_the_aws_cli_lists_versions(server, bucket, tmp_path):
    s3 = server.client()
    enable(s3, bucket)
    s3.put_object(Bucket=bucket, Key="cli", Body=b"1")
    s3.put_object(Bucket=bucket, Key="cli", Body=b"2")
    env = server.cli_env(tmp_path)
    out = subprocess.run(["aws", "--endpoint-url", server.endpoint, "s3api", "list-object-versions",
                          "--bucket", bucket], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert [v["IsLatest"] for v in listed["Versions"]] == [True, False]
    got = subprocess.run(["aws", "--endpoint-url", server.endpoint, "s3api", "get-object", "--bucket", bucket,
                          "--key", "cli", "--version-id", listed["Versions"][1]["VersionId"], str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "out").read_bytes() == b"1"
