"""CORS per bucket: Put/Get/DeleteBucketCors with S3's semantics, preflights answered per rule
without authentication, no CORS header unless a rule matches, and presigned PUT and GET from a
page of another origin in headless Chromium."""

import http.server
import threading

import pytest
import requests
from botocore.exceptions import ClientError

from test_bad_input import error_code
from test_identity import allow, client, new_user
from test_landing_page import browser

APP = "https://app.example.test"
RULES = {"CORSRules": [
    {"ID": "app", "AllowedOrigins": [APP], "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["content-*", "x-amz-*"],
     "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
]}


def preflight(server, path, origin, method, headers=None):
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return requests.options(server.endpoint + path, headers=asked, timeout=10)


def cors_headers(resp):
    return {k.lower(): v for k, v in resp.headers.items() if k.lower().startswith("access-control-")}


def test_cors_configuration_is_put_read_and_deleted_as_s3_does(server, s3, bucket):
    with pytest.raises(ClientError) as none:
        s3.get_bucket_cors(Bucket=bucket)
    assert none.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES["CORSRules"]
    for bad, code in [({"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]}, "InvalidRequest"),
                      ({"CORSRules": [{"AllowedOrigins": ["https://*.*.test"], "AllowedMethods": ["GET"]}]},
                       "InvalidRequest"),
                      ({"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "MaxAgeSeconds": -1}]},
                       "InvalidRequest"),
                      ({"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"],
                                       "ExposeHeaders": ["ETag\r\nX-Injected: 1"]}]}, "InvalidRequest")]:
        with pytest.raises(ClientError) as refused:
            s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=bad)
        assert refused.value.response["Error"]["Code"] == code
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES["CORSRules"], "a refused put changes nothing"
    # Who may change it is the policy's to say: s3:PutBucketCORS.
    _, key_id, secret = new_user(server, allow(["s3:GetBucketCORS"], f"arn:aws:s3:::{bucket}"))
    user = client(server, "s3", key_id, secret)
    assert user.get_bucket_cors(Bucket=bucket)["CORSRules"][0]["ID"] == "app"
    with pytest.raises(ClientError) as denied:
        user.delete_bucket_cors(Bucket=bucket)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as gone:
        s3.get_bucket_cors(Bucket=bucket)
    assert gone.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"


def test_preflights_and_answers_carry_cors_headers_only_when_a_rule_matches(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"hello")
    assert cors_headers(preflight(server, f"/{bucket}/a.txt", APP, "PUT")) == {}, "no configuration yet"
    assert error_code(preflight(server, f"/{bucket}/a.txt", APP, "PUT")) == "AccessForbidden"
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)

    ok = preflight(server, f"/{bucket}/a.txt", APP, "PUT", "Content-Type, X-Amz-Date")
    assert ok.status_code == 200, ok.text
    assert cors_headers(ok) == {
        "access-control-allow-origin": APP, "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET, PUT", "access-control-allow-headers": "Content-Type, X-Amz-Date",
        "access-control-max-age": "600"}
    assert "Origin" in ok.headers["Vary"]
    anyone = preflight(server, f"/{bucket}/a.txt", "https://other.test", "GET")
    assert (anyone.status_code, anyone.headers["Access-Control-Allow-Origin"]) == (200, "*")
    for path, origin, method, headers in [
        (f"/{bucket}/a.txt", "https://other.test", "PUT", None),     # PUT only for APP
        (f"/{bucket}/a.txt", APP, "DELETE", None),                  # a method no rule allows
        (f"/{bucket}/a.txt", APP, "PUT", "Authorization"),           # a header no rule allows
        ("/no-such-bucket/a.txt", APP, "GET", None),                 # reads the same as no rule
    ]:
        refused = preflight(server, path, origin, method, headers)
        assert (refused.status_code, error_code(refused)) == (403, "AccessForbidden"), (path, origin, method)
        assert cors_headers(refused) == {}
    missing = requests.options(f"{server.endpoint}/{bucket}/a.txt", headers={"Origin": APP}, timeout=10)
    assert missing.status_code == 400

    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a.txt"})
    got = requests.get(url, headers={"Origin": APP}, timeout=10)
    assert cors_headers(got) == {"access-control-allow-origin": APP, "access-control-allow-credentials": "true",
                                 "access-control-expose-headers": "ETag"}
    assert requests.get(url, headers={"Origin": "https://other.test"}, timeout=10).headers[
        "Access-Control-Allow-Origin"] == "*"
    assert cors_headers(requests.get(url, timeout=10)) == {}, "no Origin, no CORS headers"
    refused = requests.get(f"{server.endpoint}/{bucket}/a.txt", headers={"Origin": APP}, timeout=10)
    assert refused.status_code == 403 and refused.headers["Access-Control-Allow-Origin"] == APP, \
        "a page may read why it was refused"
    put = requests.put(url.replace("a.txt", "b.txt"), headers={"Origin": "https://other.test"}, data=b"x", timeout=10)
    assert cors_headers(put) == {}, "the PUT of an origin no rule allows to PUT"


def test_a_browser_page_of_another_origin_uploads_and_downloads_with_presigned_urls(server, s3, bucket, tmp_path):
    webdriver, options, service = browser()
    (tmp_path / "index.html").write_text("<!doctype html><title>app</title>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{site.server_address[1]}"
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": [origin], "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["*"],
         "ExposeHeaders": ["ETag"]}]})
    # SigV4: a SigV2 URL signs the Content-Type, which the page's fetch sets.
    v4 = server.client(signature_version="s3v4")
    put_url = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "from-browser.txt"})
    get_url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "from-browser.txt"})
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    chrome = webdriver.Chrome(service=service, options=options)
    try:
        chrome.get(origin + "/index.html")
        result = chrome.execute_async_script("""
            const [putUrl, getUrl, done] = arguments;
            (async () => {
              const put = await fetch(putUrl, {method: 'PUT', body: 'written by a page',
                                               headers: {'Content-Type': 'text/plain'}});
              const got = await fetch(getUrl);
              return {put: put.status, etag: put.headers.get('ETag'), status: got.status, body: await got.text()};
            })().then(done, e => done({error: String(e)}));
        """, put_url, get_url)
    finally:
        chrome.quit()
        site.shutdown()
    assert result.get("error") is None, result
    assert (result["put"], result["status"], result["body"]) == (200, 200, "written by a page"), result
    assert result["etag"], "the exposed ETag is readable by the page"
    assert s3.get_object(Bucket=bucket, Key="from-browser.txt")["Body"].read() == b"written by a page"

    # Another origin's page is refused by the browser itself: the preflight fails.
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["https://elsewhere.test"], "AllowedMethods": ["PUT"], "AllowedHeaders": ["*"]}]})
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    chrome = webdriver.Chrome(service=service, options=options)
    try:
        chrome.get(f"http://127.0.0.1:{site.server_address[1]}/index.html")
        refused = chrome.execute_async_script("""
            const [putUrl, done] = arguments;
            fetch(putUrl, {method: 'PUT', body: 'should not land'}).then(r => done('status ' + r.status),
                                                                         e => done('blocked'));
        """, put_url)
    finally:
        chrome.quit()
        site.shutdown()
    assert refused == "blocked"
    assert s3.get_object(Bucket=bucket, Key="from-browser.txt")["Body"].read() == b"written by a page"
