"""MFA Delete on both metadata backends: turning it on or off, changing versioning while it is on,
and deleting a version for good need `x-amz-mfa: SERIAL CODE` from the MFA device it was turned
on with, held by the caller (each code taken once), over HTTPS or from loopback; a plain delete
(a marker) needs none; lifecycle rules and MFA Delete exclude each other."""

import subprocess
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import BIN, Server, audit_rows, new_pg_schema, pg_schema_url, psql
from test_identity import client, enable_virtual_device, new_user, totp


class Codes:
    """Fresh TOTP codes of one device: each step once, waiting for the next step when needed."""

    def __init__(self, serial, seed, enabled_at):
        self.serial, self.seed, self.last = serial, seed, int(enabled_at) // 30

    def next(self):
        step = max(self.last + 1, int(time.time()) // 30 - 1)
        while step > int(time.time()) // 30 + 1:
            time.sleep(1)
        self.last = step
        return f"{self.serial} {totp(self.seed, step * 30)}"


@pytest.fixture
def admin(server):
    """A user allowed everything on S3, with an MFA device: (client, codes)."""
    name, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    serial, seed, at = enable_virtual_device(server, name, at=time.time() - 60)
    return client(server, "s3", key_id, secret), Codes(serial, seed, at - 30)


def code(call):
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"]


def versioned_bucket(s3):
    bucket = f"mfa-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def test_mfa_delete_guards_versions_and_versioning(server, admin):
    s3, codes = admin
    bucket = versioned_bucket(s3)
    enable = {"Status": "Enabled", "MFADelete": "Enabled"}
    assert code(lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=enable)) == "AccessDenied"
    assert code(lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=enable,
                                                 MFA=f"{codes.serial} 000000")) == "AccessDenied"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=enable, MFA=codes.next())
    assert s3.get_bucket_versioning(Bucket=bucket)["MFADelete"] == "Enabled"

    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    # Without a code, or with a wrong one, no version is deleted for good.
    assert code(lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId=first)) == "AccessDenied"
    assert code(lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId=first,
                                         MFA=f"{codes.serial} 123456")) == "AccessDenied"
    assert code(lambda: s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": first}]})) \
        == "AccessDenied"
    versions = [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]]
    assert sorted(versions) == sorted([first, second])
    # A plain delete leaves a marker, as without MFA Delete.
    marker = s3.delete_object(Bucket=bucket, Key="k")
    assert marker["DeleteMarker"]
    # With a code, the version goes; the same code again is refused.
    used = codes.next()
    s3.delete_object(Bucket=bucket, Key="k", VersionId=first, MFA=used)
    assert code(lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId=second, MFA=used)) == "AccessDenied"
    deleted = s3.delete_objects(Bucket=bucket, MFA=codes.next(), Delete={"Objects": [
        {"Key": "k", "VersionId": second}, {"Key": "k", "VersionId": marker["VersionId"]}]})
    assert sorted(d["VersionId"] for d in deleted["Deleted"]) == sorted([second, marker["VersionId"]])
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)

    # Versioning cannot change without a code while MFA Delete is on; turning it off takes one.
    suspend = {"Status": "Suspended"}
    assert code(lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=suspend)) == "AccessDenied"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, MFA=codes.next(),
                             VersioningConfiguration={"Status": "Enabled", "MFADelete": "Disabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["MFADelete"] == "Disabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=suspend)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_only_the_device_it_was_turned_on_with_counts(server, s3, admin):
    admin_s3, codes = admin
    bucket = versioned_bucket(admin_s3)
    enable = {"Status": "Enabled", "MFADelete": "Enabled"}
    # The root user has no MFA device: another user's code does not stand for it.
    assert code(lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=enable,
                                                 MFA=codes.next())) == "AccessDenied"
    name, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    other = client(server, "s3", key_id, secret)
    assert code(lambda: other.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=enable,
                                                    MFA=codes.next())) == "AccessDenied"
    assert admin_s3.get_bucket_versioning(Bucket=bucket)["MFADelete"] == "Disabled"
    assert code(lambda: admin_s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=enable,
                                                       MFA="no-code-here")) == "InvalidArgument"
    admin_s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=enable, MFA=codes.next())
    version = admin_s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    # Another user with s3:* and a device of its own (one stolen keys could enrol) cannot pass.
    other_serial, other_seed, at = enable_virtual_device(server, name, at=time.time() - 60)
    other_codes = Codes(other_serial, other_seed, at - 30)
    assert code(lambda: other.delete_object(Bucket=bucket, Key="k", VersionId=version,
                                            MFA=other_codes.next())) == "AccessDenied"
    assert code(lambda: other.put_bucket_versioning(Bucket=bucket, MFA=other_codes.next(), VersioningConfiguration={
        "Status": "Enabled", "MFADelete": "Disabled"})) == "AccessDenied"
    assert admin_s3.get_bucket_versioning(Bucket=bucket)["MFADelete"] == "Enabled"
    assert admin_s3.get_object(Bucket=bucket, Key="k", VersionId=version)["Body"].read() == b"kept"


def test_a_device_deleted_and_created_again_under_its_serial_is_another(server):
    """MFA Delete is bound to the device itself: one deleted and enrolled again under the same
    serial (which keys with the usual manage-your-own-MFA rights could do, no code needed) has a
    new seed the attacker knows, but it is not the device MFA Delete was turned on with."""
    name, key_id, secret = new_user(server, {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    iam = client(server, "iam")
    device_name = f"{name}-phone"

    def enrol():
        device = iam.create_virtual_mfa_device(VirtualMFADeviceName=device_name)["VirtualMFADevice"]
        seed, at = device["Base32StringSeed"].decode(), time.time() - 60
        iam.enable_mfa_device(UserName=name, SerialNumber=device["SerialNumber"],
                              AuthenticationCode1=totp(seed, at - 30), AuthenticationCode2=totp(seed, at))
        return Codes(device["SerialNumber"], seed, at - 30)

    codes = enrol()
    s3 = client(server, "s3", key_id, secret)
    bucket = versioned_bucket(s3)
    s3.put_bucket_versioning(Bucket=bucket, MFA=codes.next(),
                             VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"})
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    iam.deactivate_mfa_device(UserName=name, SerialNumber=codes.serial)
    iam.delete_virtual_mfa_device(SerialNumber=codes.serial)
    again = enrol()
    assert again.serial == codes.serial
    assert code(lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId=version, MFA=again.next())) == "AccessDenied"
    assert code(lambda: s3.put_bucket_versioning(Bucket=bucket, MFA=again.next(), VersioningConfiguration={
        "Status": "Enabled", "MFADelete": "Disabled"})) == "AccessDenied"
    assert s3.get_bucket_versioning(Bucket=bucket)["MFADelete"] == "Enabled"
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=version)["Body"].read() == b"kept"


def test_lifecycle_and_mfa_delete_exclude_each_other(server, admin):
    s3, codes = admin
    bucket = versioned_bucket(s3)
    rules = {"Rules": [{"ID": "old", "Status": "Enabled", "Filter": {"Prefix": ""},
                        "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules)
    enable = {"Status": "Enabled", "MFADelete": "Enabled"}
    assert code(lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=enable,
                                                 MFA=codes.next())) == "InvalidBucketState"
    s3.delete_bucket_lifecycle(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=enable, MFA=codes.next())
    assert code(lambda: s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration=rules)) == "InvalidBucketState"


def test_a_suspended_bucket_guards_its_null_version_against_deletion_by_id(server, admin):
    s3, codes = admin
    bucket = f"mfa-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"null version")
    s3.put_bucket_versioning(Bucket=bucket, MFA=codes.next(), VersioningConfiguration={
        "Status": "Suspended", "MFADelete": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket) | {"ResponseMetadata": None} == {
        "Status": "Suspended", "MFADelete": "Enabled", "ResponseMetadata": None}
    assert code(lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId="null")) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"null version"
    s3.delete_object(Bucket=bucket, Key="k", VersionId="null", MFA=codes.next())
    assert code(lambda: s3.head_object(Bucket=bucket, Key="k")) == "404"


def test_codes_travel_over_https_only(tmp_path):
    """From a client that is neither on loopback nor on TLS (here: named by a trusted proxy), a
    code is refused before it is even checked."""
    srv = Server(tmp_path / "data", config={"trusted_proxies": ["127.0.0.1/32"]}).start()
    try:
        name, key_id, secret = new_user(srv, {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
        serial, seed, at = enable_virtual_device(srv, name, at=time.time() - 60)
        codes = Codes(serial, seed, at - 30)
        s3 = client(srv, "s3", key_id, secret)
        bucket = versioned_bucket(s3)
        s3.meta.events.register("before-send.s3.PutBucketVersioning",
                                lambda request, **_: request.headers.__setitem__("X-Forwarded-For", "203.0.113.7"))
        enable = {"Status": "Enabled", "MFADelete": "Enabled"}
        assert code(lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=enable,
                                                     MFA=codes.next())) == "InvalidRequest"
        assert s3.get_bucket_versioning(Bucket=bucket)["MFADelete"] == "Disabled"
    finally:
        srv.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_operator_lifts_mfa_delete_whose_device_is_lost(tmp_path, backend):
    """`latchkey mfa-delete off` reads the store directly (SQLite: the server stopped; PostgreSQL:
    beside it), needs no S3 credentials, and leaves its trace in the audit trail."""
    schema = new_pg_schema() if backend == "postgres" else None
    meta_url = pg_schema_url(schema) if schema else None
    srv = Server(tmp_path / "data", meta_url=meta_url).start()
    try:
        name, key_id, secret = new_user(srv, {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
        serial, seed, at = enable_virtual_device(srv, name, at=time.time() - 60)
        s3 = client(srv, "s3", key_id, secret)
        bucket = versioned_bucket(s3)
        s3.put_bucket_versioning(Bucket=bucket, MFA=Codes(serial, seed, at - 30).next(),
                                 VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"})
        version = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
        if backend == "sqlite":
            assert srv.stop() == 0
        store = ["--data-dir", str(srv.data_dir)] + (["--meta-url", meta_url] if meta_url else [])
        missing = subprocess.run([BIN, "mfa-delete", "off", "--bucket", "no-such-bucket", *store],
                                 capture_output=True, text=True, timeout=60)
        assert missing.returncode != 0 and "no bucket" in missing.stderr
        out = subprocess.run([BIN, "mfa-delete", "off", "--bucket", bucket, *store],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"bound to {serial}" in out.stdout
        if backend == "sqlite":
            srv.start()
        assert s3.get_bucket_versioning(Bucket=bucket)["MFADelete"] == "Disabled"
        s3.delete_object(Bucket=bucket, Key="k", VersionId=version)
        lifted = audit_rows(srv, "mfa_delete.lifted")
        assert len(lifted) == 1 and serial in lifted[0]["reason"] and bucket in lifted[0]["reason"]
    finally:
        srv.stop()
        if schema:
            psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_code_spent_on_one_replica_is_refused_on_the_other(replicas):
    first, second = replicas
    name, key_id, secret = new_user(first, {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    serial, seed, at = enable_virtual_device(first, name, at=time.time() - 60)
    codes = Codes(serial, seed, at - 30)
    on_first, on_second = client(first, "s3", key_id, secret), client(second, "s3", key_id, secret)
    bucket = versioned_bucket(on_first)
    on_first.put_bucket_versioning(Bucket=bucket, MFA=codes.next(),
                                   VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"})
    assert on_second.get_bucket_versioning(Bucket=bucket)["MFADelete"] == "Enabled"
    kept = on_first.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    gone = on_first.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    used = codes.next()
    on_first.delete_object(Bucket=bucket, Key="k", VersionId=gone, MFA=used)
    assert code(lambda: on_second.delete_object(Bucket=bucket, Key="k", VersionId=kept, MFA=used)) == "AccessDenied"
    assert on_second.get_object(Bucket=bucket, Key="k", VersionId=kept)["Body"].read() == b"one"
