"""S3 wire compatibility, each point as the S3 API reference describes it: DeleteObjects and other
XML bodies checked against Content-MD5 (nothing deleted on a mismatch); unparsable and multi-range
Range headers ignored; 304 answers with the validators; PUTs without a Content-Length refused
alike however signed; ListBuckets paged by MaxBuckets, Prefix and BucketRegion; listing owners;
an empty delimiter; CreateBucket in us-east-1; GetBucketVersioning on unversioned buckets; flexible
checksums (x-amz-checksum-*) verified before a write commits; non-ASCII user metadata as RFC 2047
encoded words; a multipart part uploaded twice at once."""

import base64
import hashlib
import hmac
import http.client
import socket
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY


def signed(server, method, path, body=b"", headers=None):
    """A header-signed request with the root key (the payload hash signed)."""
    headers = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest(), **(headers or {})}
    request = AWSRequest(method=method, url=f"{server.endpoint}{path}", data=body, headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    return requests.request(method, request.url, data=body, headers=dict(request.headers), timeout=10)


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def code(exc):
    return exc.value.response["Error"]["Code"]


def keys(s3, bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_delete_objects_checks_content_md5_and_deletes_nothing_on_a_mismatch(server, s3, bucket):
    for key in ["d1", "d2"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    body = b"<Delete><Object><Key>d1</Key></Object><Object><Key>d2</Key></Object></Delete>"
    wrong = signed(server, "POST", f"/{bucket}?delete", body, {"Content-MD5": md5_b64(body + b" ")})
    assert (wrong.status_code, "<Code>BadDigest</Code>" in wrong.text) == (400, True), wrong.text
    malformed = signed(server, "POST", f"/{bucket}?delete", body, {"Content-MD5": "AAAA"})
    assert (malformed.status_code, "<Code>InvalidDigest</Code>" in malformed.text) == (400, True), malformed.text
    assert keys(s3, bucket) == ["d1", "d2"], "nothing deleted"
    right = signed(server, "POST", f"/{bucket}?delete", body, {"Content-MD5": md5_b64(body)})
    assert right.status_code == 200 and "<Deleted><Key>d1</Key>" in right.text, right.text
    assert keys(s3, bucket) == []
    # boto3 sends its own checksum; the call works as ever.
    s3.put_object(Bucket=bucket, Key="d3", Body=b"x")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d3"}]})
    assert keys(s3, bucket) == []


def test_other_xml_bodies_check_content_md5_too(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    tagging = b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>"
    wrong = signed(server, "PUT", f"/{bucket}/t?tagging", tagging, {"Content-MD5": md5_b64(b"other")})
    assert "<Code>BadDigest</Code>" in wrong.text, wrong.text
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    right = signed(server, "PUT", f"/{bucket}/t?tagging", tagging, {"Content-MD5": md5_b64(tagging)})
    assert right.status_code == 200, right.text
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "a", "Value": "1"}]
    cors = (b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
            b"</CORSRule></CORSConfiguration>")
    wrong = signed(server, "PUT", f"/{bucket}?cors", cors, {"Content-MD5": md5_b64(b"other")})
    assert "<Code>BadDigest</Code>" in wrong.text, wrong.text
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert code(e) == "NoSuchCORSConfiguration"


def test_ranges_s3_would_not_understand_are_ignored(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "r"}, ExpiresIn=60)
    for ignored in ["bytes=abc", "bytes=5-2", "items=0-1", "bytes=0-1,4-5", "bytes="]:
        resp = requests.get(url, headers={"Range": ignored}, timeout=10)
        assert (resp.status_code, resp.content, "Content-Range" in resp.headers) == (200, b"0123456789", False), \
            ignored
    ranged = requests.get(url, headers={"Range": "bytes=2-4"}, timeout=10)
    assert (ranged.status_code, ranged.content, ranged.headers["Content-Range"]) == (206, b"234", "bytes 2-4/10")
    unsatisfiable = requests.get(url, headers={"Range": "bytes=20-30"}, timeout=10)
    assert unsatisfiable.status_code == 416
    head = s3.head_object(Bucket=bucket, Key="r", Range="bytes=2-4")
    assert (head["ResponseMetadata"]["HTTPStatusCode"], head["ContentLength"], head["ContentRange"]) == (
        206, 3, "bytes 2-4/10"), "HEAD answers a range as GET does"


def test_a_304_carries_the_validators_and_no_xml_content_type(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"v1", ContentType="text/plain", CacheControl="max-age=60")
    head = s3.head_object(Bucket=bucket, Key="c")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "c"}, ExpiresIn=60)
    for headers in [{"If-None-Match": put["ETag"]}, {"If-Modified-Since": head["ResponseMetadata"]["HTTPHeaders"]
                                                        ["last-modified"]}]:
        resp = requests.get(url, headers=headers, timeout=10)
        assert resp.status_code == 304 and resp.content == b"", headers
        assert resp.headers["ETag"] == put["ETag"], resp.headers
        assert resp.headers["Last-Modified"] == head["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
        assert resp.headers["Cache-Control"] == "max-age=60"
        assert "Content-Type" not in resp.headers, "a cache would merge it into the object it holds"


def raw_put(server, path, headers):
    """A PUT sent as written: no Content-Length unless given."""
    at = urlsplit(server.endpoint)
    lines = [f"PUT {path} HTTP/1.1", f"Host: {at.netloc}", *[f"{k}: {v}" for k, v in headers.items()], "", ""]
    with socket.create_connection((at.hostname, at.port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode())
        if headers.get("Transfer-Encoding") == "chunked":
            sock.sendall(b"5\r\nhello\r\n0\r\n\r\n")
        return sock.recv(65536).decode(errors="replace")


def test_puts_without_a_content_length_are_refused_alike_however_signed(server, s3, bucket):
    presigned = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60)
    parts = urlsplit(presigned)
    path = f"{parts.path}?{parts.query}"
    for headers in [{}, {"Transfer-Encoding": "chunked"}]:
        answer = raw_put(server, path, headers)
        assert answer.startswith("HTTP/1.1 411") and "<Code>MissingContentLength</Code>" in answer, answer
    request = AWSRequest(method="PUT", url=f"{server.endpoint}/{bucket}/h",
                         headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    signed_headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
    for extra in [{}, {"Transfer-Encoding": "chunked"}]:
        answer = raw_put(server, f"/{bucket}/h", {**signed_headers, **extra})
        assert answer.startswith("HTTP/1.1 411") and "<Code>MissingContentLength</Code>" in answer, answer
    assert keys(s3, bucket) == [], "no empty object was made"
    # curl reading from a pipe sends chunked: refused; from a file it sends the length.
    piped = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", "-", presigned],
                           input=b"streamed", capture_output=True, timeout=30)
    assert piped.stdout == b"411", piped


def test_list_buckets_pages_by_max_buckets_prefix_and_region(server, s3):
    names = [f"lb-page-{n}" for n in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)
    first = s3.list_buckets(Prefix="lb-page-", MaxBuckets=2)
    assert [b["Name"] for b in first["Buckets"]] == names[:2] and first["Prefix"] == "lb-page-"
    assert all(b["BucketRegion"] == REGION for b in first["Buckets"])
    second = s3.list_buckets(Prefix="lb-page-", MaxBuckets=2, ContinuationToken=first["ContinuationToken"])
    third = s3.list_buckets(Prefix="lb-page-", MaxBuckets=2, ContinuationToken=second["ContinuationToken"])
    assert [b["Name"] for b in second["Buckets"] + third["Buckets"]] == names[2:]
    assert "ContinuationToken" not in third, "the last page"
    assert len(s3.list_buckets(Prefix="lb-page-", MaxBuckets=5)["Buckets"]) == 5
    assert "ContinuationToken" not in s3.list_buckets(Prefix="lb-page-", MaxBuckets=5)
    assert s3.list_buckets(Prefix="lb-page-", BucketRegion="eu-west-1")["Buckets"] == []
    for bad in [0, 10001]:  # botocore refuses these itself
        refused = signed(server, "GET", f"/?max-buckets={bad}")
        assert (refused.status_code, "<Code>InvalidArgument</Code>" in refused.text) == (400, True), refused.text
    owner = s3.list_buckets()["Owner"]["ID"]
    assert len(owner) == 64 and ACCESS_KEY not in owner, "a canonical id, not the caller's key"


def test_listing_owners_empty_delimiters_and_encodings(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    owner = s3.list_buckets()["Owner"]["ID"]
    assert [o["Owner"]["ID"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == [owner], "V1: always"
    assert "Owner" not in s3.list_objects_v2(Bucket=bucket)["Contents"][0], "V2: only when asked"
    assert s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"][0]["Owner"]["ID"] == owner
    for listing in [s3.list_objects(Bucket=bucket, Delimiter=""), s3.list_objects_v2(Bucket=bucket, Delimiter="")]:
        assert "Delimiter" not in listing and [o["Key"] for o in listing["Contents"]] == ["a/b"], listing
    # V1 pages: NextMarker only with a delimiter, as S3 (clients page on the last key otherwise).
    s3.put_object(Bucket=bucket, Key="c", Body=b"x")
    page = s3.list_objects(Bucket=bucket, MaxKeys=1)
    assert page["IsTruncated"] and "NextMarker" not in page and page["Contents"][0]["Key"] == "a/b"
    page = s3.list_objects(Bucket=bucket, MaxKeys=1, Delimiter="/")
    assert page["IsTruncated"] and page["NextMarker"] == "a/"
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket, Marker="a/b")["Contents"]] == ["c"]
    bad = signed(server, "GET", f"/{bucket}?list-type=2&encoding-type=base64")
    assert (bad.status_code, "<Code>InvalidArgument</Code>" in bad.text) == (400, True), bad.text


def test_an_unversioned_bucket_answers_get_bucket_versioning_with_no_status(s3, bucket):
    answer = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in answer and answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as e:
        s3.get_bucket_versioning(Bucket=bucket + "-missing")
    assert code(e) == "NoSuchBucket"


def test_a_refusal_of_a_request_awaiting_100_continue_closes_the_connection(server, bucket):
    """boto3 sends PUT bodies after `100 Continue`; refused at once, it never sends them, and the
    connection cannot be read after that: the next request's first bytes would be taken for the
    body (its method read as `UT`, its signature refused). Closing it is what keeps the next
    request whole."""
    at = urlsplit(server.endpoint)
    with socket.create_connection((at.hostname, at.port), timeout=10) as sock:
        sock.sendall(f"PUT /{bucket}/k HTTP/1.1\r\nHost: {at.netloc}\r\nExpect: 100-continue\r\n"
                     "Content-Length: 1\r\n\r\n".encode())
        answer = b""
        while b"</Error>" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        head = answer.split(b"\r\n\r\n", 1)[0].decode().lower()
        assert head.startswith("http/1.1 403") and "connection: close" in head, head
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536) == b"", "closed after the refusal"


def test_flexible_checksums_are_verified_and_a_mismatch_stores_nothing(server, s3, bucket):
    import zlib

    s3.put_object(Bucket=bucket, Key="sum", Body=b"old")
    body = b"checked bytes"
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    right = signed(server, "PUT", f"/{bucket}/sum", body, {"x-amz-checksum-crc32": crc, "Content-Type": "text/plain"})
    assert right.status_code == 200, right.text
    bad = signed(server, "PUT", f"/{bucket}/sum", body + b"!", {"x-amz-checksum-crc32": crc})
    assert (bad.status_code, "<Code>BadDigest</Code>" in bad.text) == (400, True), bad.text
    assert "CRC32 you specified did not match" in bad.text
    assert s3.get_object(Bucket=bucket, Key="sum")["Body"].read() == body, "the refused write changed nothing"
    malformed = signed(server, "PUT", f"/{bucket}/sum", body, {"x-amz-checksum-crc32": "nope"})
    assert (malformed.status_code, "<Code>InvalidRequest</Code>" in malformed.text) == (400, True), malformed.text
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    two = signed(server, "PUT", f"/{bucket}/sum", body, {"x-amz-checksum-crc32": crc, "x-amz-checksum-sha256": sha})
    assert two.status_code == 400, two.text
    # boto3 computes them itself (a header, or an aws-chunked trailer), for PUT and for parts.
    for algorithm in ["CRC32", "SHA1", "SHA256"]:  # (CRC32C needs botocore[crt])
        s3.put_object(Bucket=bucket, Key=f"boto-{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
        assert s3.get_object(Bucket=bucket, Key=f"boto-{algorithm}")["Body"].read() == body
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp-sum", ChecksumAlgorithm="SHA256")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp-sum", UploadId=upload, PartNumber=1, Body=body,
                          ChecksumAlgorithm="SHA256")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp-sum", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="mp-sum")["Body"].read() == body


def raw_signed(server, method, path, body, headers):
    """A header-signed request whose header values are sent as bytes (UTF-8 where the client
    sends non-ASCII, as some SDKs do), signed over those bytes."""
    amz = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    host = urlsplit(server.endpoint).netloc
    payload = hashlib.sha256(body).hexdigest()
    signed_headers = sorted([("host", host.encode()), ("x-amz-content-sha256", payload.encode()),
                             ("x-amz-date", amz.encode()), *headers])
    canonical = b"\n".join([method.encode(), path.encode(), b"",
                            b"".join(k.encode() + b":" + v + b"\n" for k, v in signed_headers),
                            ";".join(k for k, _ in signed_headers).encode(), payload.encode()])
    scope = f"{amz[:8]}/{REGION}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n{hashlib.sha256(canonical).hexdigest()}".encode()
    key = f"AWS4{SECRET_KEY}".encode()
    for part in (amz[:8], REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign, hashlib.sha256).hexdigest()
    conn = http.client.HTTPConnection(host, timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in signed_headers:
        conn.putheader(name, value)
    conn.putheader("Authorization", f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, "
                                    f"SignedHeaders={';'.join(k for k, _ in signed_headers)}, Signature={signature}")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    return resp.status, resp.headers, resp.read()


def test_non_ascii_user_metadata_reads_back_as_rfc_2047_encoded_words(server, s3, bucket):
    status, _, body = raw_signed(server, "PUT", f"/{bucket}/utf8", b"x", [("x-amz-meta-note", "café ☕".encode())])
    assert status == 200, body
    # AWS answers non-ASCII metadata as RFC 2047 encoded words (UTF-8, base64).
    encoded = "=?UTF-8?B?" + base64.b64encode("café ☕".encode()).decode() + "?="
    assert s3.head_object(Bucket=bucket, Key="utf8")["Metadata"] == {"note": encoded}
    status, headers, _ = raw_signed(server, "GET", f"/{bucket}/utf8", b"", [])
    assert (status, headers["x-amz-meta-note"]) == (200, encoded)
    # An encoded word sent in is the same value.
    s3.put_object(Bucket=bucket, Key="word", Body=b"x", Metadata={"note": encoded})
    assert s3.head_object(Bucket=bucket, Key="word")["Metadata"] == {"note": encoded}
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="utf8")
    assert listed["KeyCount"] == 1


def test_a_part_uploaded_twice_keeps_the_upload_that_finished_last(server, s3, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="twice")["UploadId"]
    slow_body, fast_body = b"S" * (5 * 1024 * 1024), b"F" * (5 * 1024 * 1024)
    url = s3.generate_presigned_url("upload_part", ExpiresIn=300, Params={
        "Bucket": bucket, "Key": "twice", "UploadId": upload, "PartNumber": 1})
    target = urlsplit(url)
    # The first upload of part 1 starts, then stalls halfway; a second upload of part 1 starts
    # later and finishes first; then the first one finishes.
    slow = http.client.HTTPConnection(target.netloc, timeout=60)
    slow.putrequest("PUT", f"{target.path}?{target.query}", skip_accept_encoding=True)
    slow.putheader("Content-Length", str(len(slow_body)))
    slow.endheaders()
    slow.send(slow_body[: len(slow_body) // 2])
    fast = requests.put(url, data=fast_body, timeout=60)
    assert fast.status_code == 200
    slow.send(slow_body[len(slow_body) // 2:])
    slow_resp = slow.getresponse()
    assert slow_resp.status == 200
    slow_etag = slow_resp.getheader("ETag")
    assert slow_etag != fast.headers["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="twice", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, slow_etag)]
    # The part that was replaced cannot be completed; the one kept can, whole.
    with pytest.raises(ClientError) as refused:
        s3.complete_multipart_upload(Bucket=bucket, Key="twice", UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": fast.headers["ETag"]}]})
    assert code(refused) == "InvalidPart"
    s3.complete_multipart_upload(Bucket=bucket, Key="twice", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": slow_etag}]})
    assert s3.get_object(Bucket=bucket, Key="twice")["Body"].read() == slow_body
