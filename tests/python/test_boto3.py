"""S3 behaviour through boto3: presigned PUT, ranges, multipart, listing, metadata, tagging, copy,
conditional requests, batch delete."""

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from botocore.exceptions import ClientError


def code(exc):
    return exc.value.response["Error"]["Code"]


def test_presigned_put_with_plain_http_then_read_back(s3, bucket):
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "inbox/upload.csv"}, ExpiresIn=300)
    body = b"id,amount\n1,10\n2,20\n"
    resp = requests.put(url, data=body, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key="inbox/upload.csv")["Body"].read() == body


def test_ranged_get(s3, bucket):
    data = bytes(range(256)) * 64
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    part = s3.get_object(Bucket=bucket, Key="r", Range="bytes=100-199")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 100-199/{len(data)}"
    assert part["Body"].read() == data[100:200]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-10")["Body"].read() == data[-10:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=16000-")["Body"].read() == data[16000:]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(data)}-")
    assert code(e) == "InvalidRange"


def test_multipart_upload_with_three_parts(s3, bucket):
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(5 * 1024 * 1024), os.urandom(1234)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin", ContentType="application/x-test",
                                    Metadata={"origin": "boto3"})
    uid = up["UploadId"]
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in listed] == [uid]
    etags = []
    for n, chunk in enumerate(parts, start=1):
        etags.append(s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=uid, PartNumber=n, Body=chunk)["ETag"])
    listed_parts = s3.list_parts(Bucket=bucket, Key="mp.bin", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed_parts] == [(1, len(parts[0])), (2, len(parts[1])), (3, 1234)]

    # Parts out of order are refused, and the upload survives the refusal.
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}]})
    assert code(e) == "InvalidPartOrder"

    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": t} for n, t in enumerate(etags, start=1)]})
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    obj = s3.get_object(Bucket=bucket, Key="mp.bin")
    assert obj["Body"].read() == b"".join(parts)
    assert obj["ContentType"] == "application/x-test"
    assert obj["Metadata"] == {"origin": "boto3"}
    assert obj["PartsCount"] == 3
    # GET and HEAD by part number: each part as uploaded, 206 with its Content-Range.
    offset = 0
    for n, chunk in enumerate(parts, start=1):
        part = s3.get_object(Bucket=bucket, Key="mp.bin", PartNumber=n)
        assert part["Body"].read() == chunk and part["PartsCount"] == 3
        end = offset + len(chunk) - 1
        assert part["ContentRange"] == f"bytes {offset}-{end}/{sum(map(len, parts))}"
        assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
        head = s3.head_object(Bucket=bucket, Key="mp.bin", PartNumber=n)
        assert (head["ContentLength"], head["ResponseMetadata"]["HTTPStatusCode"]) == (len(chunk), 206)
        offset = end + 1
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="mp.bin", PartNumber=4)
    assert (code(e), e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="mp.bin", PartNumber=1, Range="bytes=0-1")
    assert code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="mp.bin", PartNumber=0)
    assert code(e) == "InvalidArgument"
    # An object uploaded whole is its own part 1, and has no other.
    s3.put_object(Bucket=bucket, Key="whole", Body=b"whole")
    whole = s3.get_object(Bucket=bucket, Key="whole", PartNumber=1)
    assert (whole["Body"].read(), whole["ResponseMetadata"]["HTTPStatusCode"]) == (b"whole", 200)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="whole", PartNumber=2)
    assert code(e) == "InvalidPartNumber"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=uid, PartNumber=4, Body=b"late")
    assert code(e) == "NoSuchUpload"


def test_multipart_rules_and_abort(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="small-parts")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="small-parts", UploadId=uid, PartNumber=1, Body=b"too small")["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="small-parts", UploadId=uid, PartNumber=2, Body=b"last")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="small-parts", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert code(e) == "EntityTooSmall"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="small-parts", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]})
    assert code(e) == "InvalidPart"
    s3.abort_multipart_upload(Bucket=bucket, Key="small-parts", UploadId=uid)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="small-parts", UploadId=uid)
    assert code(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="small-parts")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_listing_with_delimiter_and_pagination_over_1500_keys(s3, bucket):
    keys = [f"logs/{d:02d}/{i:04d}.txt" for d in range(3) for i in range(500)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))
    s3.put_object(Bucket=bucket, Key="readme.md", Body=b"top")

    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="logs/"))
    listed = [o["Key"] for p in pages for o in p.get("Contents", [])]
    assert listed == sorted(keys)
    assert len(pages) == 2 and pages[0]["IsTruncated"] and pages[0]["KeyCount"] == 1000

    small_pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix="logs/01/", PaginationConfig={"PageSize": 70}))
    assert sum(p["KeyCount"] for p in small_pages) == 500 and len(small_pages) == 8

    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["logs/"]
    assert [o["Key"] for o in top["Contents"]] == ["readme.md"]
    days = s3.list_objects_v2(Bucket=bucket, Prefix="logs/", Delimiter="/", MaxKeys=2)
    assert [p["Prefix"] for p in days["CommonPrefixes"]] == ["logs/00/", "logs/01/"]
    assert days["IsTruncated"]
    rest = s3.list_objects_v2(Bucket=bucket, Prefix="logs/", Delimiter="/",
                              ContinuationToken=days["NextContinuationToken"])
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["logs/02/"] and not rest["IsTruncated"]

    after = s3.list_objects_v2(Bucket=bucket, StartAfter="logs/02/0497.txt")
    assert [o["Key"] for o in after["Contents"]] == ["logs/02/0498.txt", "logs/02/0499.txt", "readme.md"]

    v1_pages = list(s3.get_paginator("list_objects").paginate(Bucket=bucket, Delimiter="/",
                                                              PaginationConfig={"PageSize": 1}))
    v1 = [p["Prefix"] for page in v1_pages for p in page.get("CommonPrefixes", [])]
    v1 += [o["Key"] for page in v1_pages for o in page.get("Contents", [])]
    assert v1 == ["logs/", "readme.md"]


def test_unusual_keys_round_trip_through_listing(s3, bucket):
    keys = ["a b+c.txt", "percent%20.txt", "ünï/cødé.txt", "../escape.txt", "dir//double", "tab\there"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    # botocore asks for encoding-type=url on its own and decodes the answer.
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode())
    # Asked for explicitly, the encoded form comes back as S3 sends it.
    raw = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, EncodingType="url")["Contents"]]
    assert "a%20b%2Bc.txt" in raw and "tab%09here" in raw
    for k in keys:
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == k.encode()


def test_metadata_headers_and_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="m", Body=b"{}", ContentType="application/json", CacheControl="no-store",
                  ContentDisposition='attachment; filename="m.json"', Metadata={"Owner": "finance", "x": "1"})
    head = s3.head_object(Bucket=bucket, Key="m")
    assert head["ContentType"] == "application/json"
    assert head["CacheControl"] == "no-store"
    assert head["ContentDisposition"] == 'attachment; filename="m.json"'
    assert head["Metadata"] == {"owner": "finance", "x": "1"}
    assert head["ContentLength"] == 2
    over = s3.get_object(Bucket=bucket, Key="m", ResponseContentType="text/plain",
                         ResponseContentDisposition="inline")
    assert over["ContentType"] == "text/plain" and over["ContentDisposition"] == "inline"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="big-meta", Body=b"", Metadata={"k": "v" * 2100})
    assert code(e) == "MetadataTooLarge"


def test_conditional_requests(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"v1")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"v1"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0123"')
    assert code(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=modified)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    past = time.time() - 3600
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == b"v1"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert code(e) == "PreconditionFailed"


def test_tagging(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="team=blue&class=secret%20stuff")
    tags = s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("class", "secret stuff"), ("team", "blue")]
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 2
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "only", "Value": "one"}]
    s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "k" * 129, "Value": "v"}]})
    assert code(e) == "InvalidTag"
    with pytest.raises(ClientError) as e:
        s3.get_object_tagging(Bucket=bucket, Key="missing")
    assert code(e) == "NoSuchKey"


def test_copy_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", ContentType="text/plain", Metadata={"a": "1"},
                  Tagging="t=1")
    s3.copy_object(Bucket=bucket, Key="same-meta", CopySource={"Bucket": bucket, "Key": "src"})
    copied = s3.get_object(Bucket=bucket, Key="same-meta")
    assert copied["Body"].read() == b"copy me"
    assert copied["Metadata"] == {"a": "1"} and copied["ContentType"] == "text/plain"
    s3.copy_object(Bucket=bucket, Key="new-meta", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/csv")
    replaced = s3.head_object(Bucket=bucket, Key="new-meta")
    assert replaced["Metadata"] == {"b": "2"} and replaced["ContentType"] == "text/csv"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch='"no"')
    assert code(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "absent"})
    assert code(e) == "NoSuchKey"


def test_delete_objects_and_buckets(s3, bucket):
    for k in ["a", "b", "c"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"1")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert code(e) == "BucketNotEmpty"
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "never"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["a", "b", "never"]
    s3.delete_object(Bucket=bucket, Key="c")
    s3.delete_object(Bucket=bucket, Key="c")  # deleting a missing key is not an error in S3
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=bucket)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert code(e) == "NoSuchBucket"


def test_buckets(s3):
    s3.create_bucket(Bucket="listed-bucket")
    s3.put_object(Bucket="listed-bucket", Key="kept", Body=b"x")
    # In us-east-1, creating a bucket you own again succeeds and changes nothing, as on AWS.
    s3.create_bucket(Bucket="listed-bucket")
    assert s3.get_object(Bucket="listed-bucket", Key="kept")["Body"].read() == b"x"
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="listed-bucket", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert code(e) == "InvalidLocationConstraint", "us-east-1 is named by giving no constraint"
    assert "listed-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_bucket_location(Bucket="listed-bucket")["LocationConstraint"] is None
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert code(e) == "IllegalLocationConstraintException"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket-here", Key="k")
    assert code(e) == "NoSuchBucket"


def test_presigned_head_and_delete(s3, bucket):
    s3.put_object(Bucket=bucket, Key="doomed", Body=b"12345")
    head_url = s3.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "doomed"}, ExpiresIn=60)
    head = requests.head(head_url, timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == "5"
    # A URL signed for HEAD does not authorise a GET of the same object.
    assert requests.get(head_url, timeout=10).status_code == 403
    delete_url = s3.generate_presigned_url("delete_object", Params={"Bucket": bucket, "Key": "doomed"}, ExpiresIn=60)
    assert requests.delete(delete_url, timeout=10).status_code == 204
    assert requests.head(head_url, timeout=10).status_code == 404
