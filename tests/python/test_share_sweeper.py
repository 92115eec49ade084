"""Spent links (used up, expired, revoked) are purged once their retention has passed; their
audit events are kept."""

import sqlite3
import time

import requests

from conftest import Server
from test_shares import api, mint


def test_spent_links_are_purged_and_audit_events_kept(tmp_path):
    srv = Server(tmp_path / "data", config={"share_retention_secs": 1, "share_resume_grace_secs": 1}).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="sweep")
        s3.put_object(Bucket="sweep", Key="f", Body=b"x")
        spent = mint(srv, "sweep", "f")
        revoked = mint(srv, "sweep", "f")
        live = mint(srv, "sweep", "f", expires_in=3600)
        assert requests.get(spent["api_url"], timeout=10).status_code == 200
        assert api(srv, "DELETE", f"/-/shares/{revoked['id']}").status_code == 204

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            listed = {s["id"] for s in api(srv, "GET", "/-/shares?state=all").json()["shares"]}
            if listed == {live["id"]}:
                break
            time.sleep(0.5)
        assert listed == {live["id"]}
        db = sqlite3.connect(f"file:{srv.data_dir / 'meta.db'}?mode=ro", uri=True)
        events = db.execute("SELECT event FROM audit_events WHERE share_id = ? ORDER BY seq", (spent["id"],)).fetchall()
        assert [e for (e,) in events] == ["share.created", "share.redeemed"]
    finally:
        srv.kill9()
