"""Redemptions of tokens that match no link are refused without a durable write each: they are
counted in memory and written to the audit trail as one `share.unknown_tokens` event per flush
interval (and at shutdown), with the count and the busiest source addresses."""

import secrets
import sqlite3
import subprocess

import pytest
import requests

from conftest import PG_URL, Server

ATTEMPTS = 40


def audit_rows(srv):
    """(event, source_ip, reason) of every row in audit_events."""
    query = "SELECT event, COALESCE(source_ip, ''), COALESCE(reason, '') FROM audit_events"
    if srv.meta_url:
        out = subprocess.run(["psql", PG_URL, "-tAF", "|", "-c", f"SET search_path TO {srv.schema()}; {query}"],
                             capture_output=True, text=True, check=True).stdout
        return [tuple(line.split("|")) for line in out.splitlines() if "|" in line]
    with sqlite3.connect(f"file:{srv.data_dir / 'meta.db'}?mode=ro", uri=True) as db:
        return [tuple(row) for row in db.execute(query)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_unknown_tokens_are_counted_not_written_one_by_one(backend, tmp_path, request):
    meta_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    srv = Server(tmp_path / "data", meta_url=meta_url).start()
    try:
        for _ in range(ATTEMPTS):
            token = secrets.token_urlsafe(32)
            assert requests.get(f"{srv.endpoint}/-/access-object?nonce={token}", timeout=10).status_code == 403
            assert requests.put(f"{srv.endpoint}/-/access-object?nonce={token}", data=b"x", timeout=10).status_code == 403
        # Nothing per attempt is stored while the server runs...
        assert [row for row in audit_rows(srv) if row[0] != "share.created"] == []
    finally:
        assert srv.stop() == 0
    # ...and one aggregate event at shutdown.
    rows = audit_rows(srv)
    assert rows == [("share.unknown_tokens", "127.0.0.1", f"count={2 * ATTEMPTS} top=127.0.0.1:{2 * ATTEMPTS}")]

