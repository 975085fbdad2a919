"""Files and datasets: streamed uploads, downloads, import_file jobs.

Talks to the automation service directly (bearer tokens from the platform)
for big bodies: the gateway buffers request bodies. A second automation
replica with a small FILES_MAX_BYTES shares the database and storage to
test the 413 path without sending 256 MiB.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import assert_error, free_ports, register_and_login, unique_email


@pytest.fixture(scope="module")
def auto_url(cluster) -> str:
    return f"http://127.0.0.1:{cluster.env['BASALT_AUTOMATION_PORT']}"


@pytest.fixture(scope="module")
def owner(gw):
    return register_and_login(gw, unique_email("files"))


@pytest.fixture(scope="module")
def api(auto_url, owner):
    with httpx.Client(base_url=auto_url, headers=owner.auth,
                      timeout=120.0) as c:
        yield c


def storage_dir(cluster) -> Path:
    return cluster.run_dir / "storage"


def upload(api, name: str, data: bytes, ctype: str = "text/csv"):
    return api.post("/automation/files", params={"name": name},
                    content=data, headers={"Content-Type": ctype})


def wait_job(api, job_id: int, timeout: float = 120) -> dict:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        job = api.get(f"/automation/jobs/{job_id}").json()["job"]
        if job["state"] in ("succeeded", "dead", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def import_file(api, file_id: int, **args) -> dict:
    r = api.post("/automation/jobs", json={
        "type": "import_file", "args": {"file_id": file_id, **args},
        "max_attempts": 1})
    assert r.status_code == 202, r.text
    return wait_job(api, r.json()["job"]["id"])


def test_upload_raw_and_download(api, gw, owner):
    data = b"a,b\n1,2\n" * 1000
    r = upload(api, "raw.csv", data)
    assert r.status_code == 201, r.text
    f = r.json()
    assert f["size"] == len(data)
    assert f["sha256"] == hashlib.sha256(data).hexdigest()
    assert f["name"] == "raw.csv" and f["content_type"] == "text/csv"
    assert set(f) >= {"id", "name", "size", "sha256", "content_type",
                      "created_at"}
    got = api.get(f"/automation/files/{f['id']}/content")
    assert got.status_code == 200 and got.content == data
    meta = api.get(f"/automation/files/{f['id']}").json()
    assert meta["sha256"] == f["sha256"]
    # through the gateway too (small body)
    r = gw.post("/automation/files", params={"name": "gw.txt"},
                content=b"hello", headers=owner.auth)
    assert r.status_code == 201, r.text
    listed = api.get("/automation/files").json()["files"]
    assert {f["id"], r.json()["id"]} <= {x["id"] for x in listed}
    # another user sees nothing of it
    other = register_and_login(gw, unique_email("files-other"))
    r = gw.get(f"/automation/files/{f['id']}", headers=other.auth)
    assert_error(r, 404, "not_found")


def test_upload_multipart(api):
    data = os.urandom(300_000)
    r = api.post("/automation/files",
                 files={"file": ("blob.bin", data, "application/x-thing")},
                 data={"note": "ignored"})
    assert r.status_code == 201, r.text
    f = r.json()
    assert f["name"] == "blob.bin" and f["size"] == len(data)
    assert f["content_type"] == "application/x-thing"
    assert f["sha256"] == hashlib.sha256(data).hexdigest()
    assert api.get(f"/automation/files/{f['id']}/content").content == data


def test_upload_validation(api):
    r = api.post("/automation/files", content=b"x")
    assert_error(r, 422, "validation_failed")
    r = api.post("/automation/files", content=b"x",
                 headers={"Authorization": "Bearer nope"})
    assert_error(r, 401)


@pytest.fixture(scope="module")
def small_replica(cluster, tmp_path_factory):
    """A second automation replica with FILES_MAX_BYTES = 1 MiB."""
    (port,) = free_ports(1)
    env = {k: v for k, v in os.environ.items()}
    pw = (cluster.run_dir / "secrets" / "db_password").read_text().strip()
    env.update(
        HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="warn", WORKERS="1",
        DATABASE_URL=(f"postgresql://basalt:{pw}@127.0.0.1:"
                      f"{cluster.env['BASALT_PG_PORT']}/basalt"),
        REDIS_URL=f"redis://127.0.0.1:{cluster.env['BASALT_REDIS_PORT']}/0",
        JWT_PUBLIC_KEY_FILE=str(cluster.run_dir / "keys" / "jwt_public.pem"),
        STORAGE_DIR=str(storage_dir(cluster)), FILES_MAX_BYTES="1048576",
        MIGRATIONS_DIR=str(Path(__file__).resolve().parents[2]
                           / "services/automation/migrations"))
    log = tmp_path_factory.mktemp("replica") / "automation.log"
    binary = Path(cluster.env["BASALT_BIN_DIR"]) / "automation"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(binary)], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        until = time.monotonic() + 60
        while time.monotonic() < until:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        assert "ERROR: AddressSanitizer" not in log.read_text(errors="replace")


def count_files(api) -> int:
    return len(api.get("/automation/files?limit=100").json()["files"])


def test_over_max_is_413_and_leaves_nothing(small_replica, owner, cluster,
                                            api):
    before = count_files(api)
    tmp = storage_dir(cluster) / "tmp"
    objects = sorted(os.listdir(storage_dir(cluster) / "objects"))
    with httpx.Client(base_url=small_replica, headers=owner.auth,
                      timeout=60) as c:
        # Content-Length announces too much: 413 before any byte is stored
        r = c.post("/automation/files", params={"name": "big.bin"},
                   content=b"x" * (2 << 20))
        assert_error(r, 413, "payload_too_large")

        # chunked: the limit is found while streaming
        def gen():
            for _ in range(24):
                yield b"y" * 65536

        r = c.post("/automation/files", params={"name": "big2.bin"},
                   content=gen())
        assert_error(r, 413, "payload_too_large")
        # within the limit works on this replica
        r = c.post("/automation/files", params={"name": "ok.bin"},
                   content=b"z" * 1000)
        assert r.status_code == 201, r.text
    assert count_files(api) == before + 1
    assert os.listdir(tmp) == []
    after = sorted(os.listdir(storage_dir(cluster) / "objects"))
    assert len(after) == len(objects) + 1


def write_people(path: Path, n: int) -> None:
    rnd = random.Random(7)
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write("\ufeff")
        w = csv.writer(f)
        w.writerow(["id", "Full Name", "age", "score", "active", "joined",
                    "seen_at", "note"])
        for i in range(1, n + 1):
            note = "" if i % 10 == 0 else ("line1\nline2, \"q\"" if i % 7 == 0
                                           else "café ☕")
            w.writerow([i, f"Person {i}", 18 + i % 60,
                        f"{rnd.random() * 100:.3f}",
                        "true" if i % 2 else "false",
                        f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
                        f"2024-05-01T12:{i % 60:02d}:00Z", note])


def columns(ds: dict) -> dict:
    return {c["name"]: c for c in ds["columns"]}


def test_import_csv_edge_cases(api):
    text = ("\ufeffname,qty,price,ok,day\n"
            "\"Smith, J\",1,1.5,yes,2024-01-02\n"
            "\"multi\nline\",2,,no,2024-02-29\n"
            "Zoë,3,2.25,yes\n"
            "x,4,3,no,2024-03-01,\n").encode()
    f = upload(api, "edge.csv", text).json()
    job = import_file(api, f["id"])
    assert job["state"] == "succeeded", job
    ds_id = job["result"]["dataset_id"]
    ds = api.get(f"/automation/datasets/{ds_id}").json()
    assert ds["state"] == "ready" and ds["row_count"] == 4
    cols = columns(ds)
    assert [c["name"] for c in ds["columns"]] == ["name", "qty", "price",
                                                   "ok", "day"]
    assert cols["qty"]["type"] == "integer"
    assert cols["price"]["type"] == "float"
    assert cols["ok"]["type"] == "boolean"
    assert cols["day"]["type"] == "date"
    assert cols["name"]["type"] == "string"
    assert cols["qty"]["stats"]["min"] == 1 and cols["qty"]["stats"][
        "max"] == 4 and cols["qty"]["stats"]["mean"] == 2.5
    assert cols["price"]["stats"]["nulls"] == 1
    assert cols["day"]["stats"]["nulls"] == 1
    rows = api.get(f"/automation/datasets/{ds_id}/rows").json()["rows"]
    assert rows[0]["name"] == "Smith, J"
    assert rows[1]["name"] == "multi\nline"
    assert rows[2]["name"] == "Zoë" and rows[2]["day"] is None


def test_import_million_rows(api, tmp_path):
    n = 1_000_000
    path = tmp_path / "people.csv"
    write_people(path, n)
    with path.open("rb") as fh:
        r = api.post("/automation/files", params={"name": "people.csv"},
                     content=fh, headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    f = r.json()
    assert f["size"] == path.stat().st_size
    job = import_file(api, f["id"])
    assert job["state"] == "succeeded", job
    assert job["progress"] == 100 or job["result"]["rows"] == n
    ds = api.get(f"/automation/datasets/{job['result']['dataset_id']}").json()
    assert ds["row_count"] == n and ds["bad_rows"] == 0
    cols = columns(ds)
    assert list(cols) == ["id", "full_name", "age", "score", "active",
                          "joined", "seen_at", "note"]
    assert cols["full_name"]["source_name"] == "Full Name"
    types = {k: v["type"] for k, v in cols.items()}
    assert types == {"id": "integer", "full_name": "string", "age": "integer",
                     "score": "float", "active": "boolean", "joined": "date",
                     "seen_at": "timestamp", "note": "string"}
    st = cols["id"]["stats"]
    assert (st["count"], st["nulls"], st["min"], st["max"]) == (n, 0, 1, n)
    assert st["mean"] == pytest.approx((n + 1) / 2)
    assert abs(st["distinct"] - n) < n * 0.03
    assert cols["age"]["stats"]["distinct"] == 60
    assert cols["active"]["stats"]["mean"] == pytest.approx(0.5)
    assert cols["note"]["stats"]["nulls"] == n // 10
    rows = api.get(f"/automation/datasets/{ds['id']}/rows",
                   params={"filter": ["age:gt:76", "id:lte:100"],
                           "limit": 5}).json()
    assert [x["age"] for x in rows["rows"]] == [77] * len(rows["rows"])
    assert (rows["rows"] and rows["next_cursor"] is None) or len(
        rows["rows"]) == 5
    bad = api.get(f"/automation/datasets/{ds['id']}/rows",
                  params={"filter": "age:gt:old"})
    assert_error(bad, 422, "validation_failed")
    bad = api.get(f"/automation/datasets/{ds['id']}/rows",
                  params={"filter": "nope:eq:1"})
    assert_error(bad, 422, "validation_failed")


def test_import_json_and_ndjson(api):
    arr = b'[{"a": 1, "b": "x"},\n {"a": 2.5, "c": true},\n {"b": null}]'
    job = import_file(api, upload(api, "a.json", arr).json()["id"])
    assert job["state"] == "succeeded", job
    ds = api.get(f"/automation/datasets/{job['result']['dataset_id']}").json()
    assert [(c["name"], c["type"]) for c in ds["columns"]] == [
        ("a", "float"), ("b", "string"), ("c", "boolean")]
    assert ds["row_count"] == 3
    nd = b'{"n": 1}\n{"n": 2}\n\n{"n": 3, "t": "2024-01-01T00:00:00Z"}\n'
    job = import_file(api, upload(api, "a.ndjson", nd).json()["id"])
    assert job["state"] == "succeeded", job
    ds = api.get(f"/automation/datasets/{job['result']['dataset_id']}").json()
    assert columns(ds)["n"]["type"] == "integer"
    assert columns(ds)["t"]["type"] == "timestamp"


def test_malformed_fails_with_line_numbers(api):
    text = b"a,b\n1,2\n3,4,5\n\xff\xfe,1\n6,7\n"
    job = import_file(api, upload(api, "bad.csv", text).json()["id"])
    assert job["state"] == "dead", job
    assert "line 3" in job["last_error"] and "line 4" in job["last_error"]
    ds_id = int(job["last_error"].split()[1].rstrip(":"))
    ds = api.get(f"/automation/datasets/{ds_id}").json()
    assert ds["state"] == "failed"
    assert [e["line"] for e in ds["errors"]] == [3, 4]
    # within a generous threshold the same file imports, skipping them
    job = import_file(api, upload(api, "bad2.csv", text).json()["id"],
                      max_error_rate=0.5)
    assert job["state"] == "succeeded", job
    assert job["result"]["rows"] == 2 and job["result"]["bad_rows"] == 2
    # an unterminated quote is fatal, with its line
    job = import_file(api, upload(api, "q.csv",
                                  b"a,b\n1,2\n3,\"open\n4,5\n").json()["id"])
    assert job["state"] == "dead" and "line 3" in job["last_error"], job
