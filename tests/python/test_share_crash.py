"""kill -9 during a storm of redemptions: after restart, every download that began had its use
durably consumed first (none granted twice), and no use was consumed beyond the requests that
were in flight when the server died (none lost to anything else)."""

import sqlite3
import threading
import time

import requests

from test_shares import api, mint

CLIENTS = 24


def test_kill9_during_a_redemption_storm(fresh_server):
    srv = fresh_server
    s3 = srv.client()
    s3.create_bucket(Bucket="storm")
    s3.put_object(Bucket="storm", Key="f", Body=b"z" * 65536)
    for round_ in range(3):
        link = mint(srv, "storm", "f", max_uses=100_000)
        began = []
        lock = threading.Lock()

        def client():
            session = requests.Session()
            while True:
                try:
                    resp = session.get(link["api_url"], timeout=10, stream=True)
                except requests.RequestException:
                    return
                if resp.status_code == 200:
                    with lock:
                        began.append(1)
                try:
                    resp.content
                except requests.RequestException:
                    return

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(0.8)
        srv.kill9()
        for t in threads:
            t.join(timeout=30)
        srv.start()
        share = api(srv, "GET", f"/-/shares/{link['id']}").json()
        consumed = 100_000 - share["uses_left"]
        assert len(began) > 50, f"round {round_}: the storm did not get going"
        assert len(began) <= consumed <= len(began) + CLIENTS, (round_, len(began), consumed)
        db = sqlite3.connect(f"file:{srv.data_dir / 'meta.db'}?mode=ro", uri=True)
        (grants,) = db.execute("SELECT count(*) FROM share_grants WHERE share_id = ?", (link["id"],)).fetchone()
        db.close()
        assert grants == consumed, "every consumed use has its grant, committed together"
