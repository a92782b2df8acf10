"""ID numbers at HQ: a keyed hash the database alone cannot reverse, and the key outside it."""

import csv
import hashlib
import hmac
import sqlite3
import stat
from datetime import date, timedelta
from pathlib import Path

import pytest

from devtools.hq.cli import main
from devtools.hq.db import DB_NAME, HqDb
from devtools.hq.importer import import_sheet
from devtools.hq.office import Office
from tests.sync.messages import SITE, holder

AREA, BORN, LAST4 = "360102", "19900101", "123X"
ID_NUMBER = AREA + BORN + LAST4


def brute_force(db_file: Path, area: str, last4: str) -> str | None:
    """What a thief of the database file tries: every birth date of 1940-2010 between the known
    area code and last four digits, hashed with every value the database holds as salt or key,
    against every stored hash and holder id."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        secrets_held = [str(v) for (v,) in conn.execute("SELECT value FROM meta")] + [""]
        people = conn.execute("SELECT holder_id, id_hash FROM people").fetchall()
    finally:
        conn.close()
    targets = {h for _, h in people if h} | {hid[1:] for hid, _ in people}
    day, end = date(1940, 1, 1), date(2010, 12, 31)
    while day <= end:
        candidate = f"{area}{day:%Y%m%d}{last4}".encode()
        for held in secrets_held:
            for guess in (
                hashlib.sha256(held.encode() + candidate).hexdigest(),
                hmac.new(held.encode(), candidate, hashlib.sha256).hexdigest(),
            ):
                if guess in targets or guess[:12] in targets:
                    return candidate.decode()
        day += timedelta(days=1)
    return None


def _store_as_hq_does(db: HqDb, id_number: str) -> str:
    digest = db.id_digest(id_number)
    holder_id = "H" + digest[:12]
    Office(db).upsert_holder(holder(holder_id), {"id_hash": digest, "id_last4": id_number[-4:]})
    return holder_id


def test_the_database_alone_does_not_give_the_id_number_back(tmp_path: Path) -> None:
    db = HqDb.create(tmp_path / "hq", SITE, "ykt/v1", "127.0.0.1:1883")
    holder_id = _store_as_hq_does(db, ID_NUMBER)
    db.close()
    assert brute_force(tmp_path / "hq" / DB_NAME, AREA, LAST4) is None
    # HQ, with its key, finds the same holder for the same ID number.
    again = HqDb(tmp_path / "hq")
    assert "H" + again.id_digest(ID_NUMBER.lower())[:12] == holder_id
    again.close()


def test_the_brute_force_finds_a_hash_salted_in_the_database(tmp_path: Path) -> None:
    # The scheme HQ used before: salted SHA-256, the salt in the meta table.
    db = HqDb.create(tmp_path / "hq", SITE, "ykt/v1", "127.0.0.1:1883")
    salt = "5f3c9a0d1e2b4c6f8a7d9e0b1c2d3e4f"
    with db.tx() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('salt', ?)", (salt,))
    digest = hashlib.sha256((salt + ID_NUMBER).encode()).hexdigest()
    Office(db).upsert_holder(holder("H" + digest[:12]), {"id_hash": digest, "id_last4": LAST4})
    db.close()
    assert brute_force(tmp_path / "hq" / DB_NAME, AREA, LAST4) == ID_NUMBER


def _sheet(path: Path) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["姓名", "身份证号", "办公楼栋"])
        writer.writerow(["王芳", ID_NUMBER, "市府"])
    return path


def test_an_imported_id_number_resists_the_brute_force_and_matches_on_reimport(
    tmp_path: Path,
) -> None:
    office = Office(HqDb.create(tmp_path / "hq", SITE, "ykt/v1", "127.0.0.1:1883"))
    sheet = _sheet(tmp_path / "sheet.csv")
    import_sheet(office, sheet, unit="市政府")
    import_sheet(office, sheet, unit="市政府")
    assert office.db.conn.execute("SELECT count(*) FROM people").fetchone() == (1,)
    office.db.close()
    assert brute_force(tmp_path / "hq" / DB_NAME, AREA, LAST4) is None


def test_init_writes_the_key_0600_beside_the_directory_and_never_into_it(tmp_path: Path) -> None:
    root = tmp_path / "hq"
    assert main(["--dir", str(root), "init", "--site", SITE]) == 0
    key_file = tmp_path / "hq-id.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    db = HqDb(root)
    _store_as_hq_does(db, ID_NUMBER)
    db.close()
    key = key_file.read_text().strip()
    for path in root.iterdir():
        data = path.read_bytes()
        assert key.encode() not in data and bytes.fromhex(key) not in data, path.name


def test_the_key_path_is_configurable(tmp_path: Path) -> None:
    elsewhere = tmp_path / "keys" / "site-id.key"
    root = tmp_path / "hq"
    assert main(["--dir", str(root), "--id-key", str(elsewhere), "init", "--site", SITE]) == 0
    assert elsewhere.is_file() and not (tmp_path / "hq-id.key").exists()
    with_key = HqDb(root, id_key=elsewhere)
    assert len(with_key.id_digest(ID_NUMBER)) == 64
    with_key.close()
    without = HqDb(root)
    with pytest.raises(Exception, match="no ID-number key at"):
        without.id_digest(ID_NUMBER)
    without.close()


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    db = HqDb.create(tmp_path / "hq", SITE, "ykt/v1", "127.0.0.1:1883")
    (tmp_path / "hq-id.key").chmod(0o644)
    with pytest.raises(Exception, match="readable by others"):
        db.id_digest(ID_NUMBER)
    db.close()


def test_import_into_a_site_with_salted_hashes_is_refused_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "hq"
    db = HqDb.create(root, SITE, "ykt/v1", "127.0.0.1:1883")
    with db.tx() as conn:  # a site made before keyed hashes, with people in it
        conn.execute("DELETE FROM meta WHERE key = 'id_hash'")
    Office(db).upsert_holder(holder("H1"), {"id_hash": "ab" * 32, "id_last4": LAST4})
    db.close()
    sheet = _sheet(tmp_path / "sheet.csv")
    assert main(["--dir", str(root), "import", str(sheet), "--unit", "市政府"]) == 1
    err = capsys.readouterr().err
    assert "cannot be re-keyed in place" in err and "new site" in err


def test_a_site_without_id_hashes_starts_keyed(tmp_path: Path) -> None:
    db = HqDb.create(tmp_path / "hq", SITE, "ykt/v1", "127.0.0.1:1883")
    with db.tx() as conn:
        conn.execute("DELETE FROM meta WHERE key = 'id_hash'")
    db.id_digest(ID_NUMBER)
    assert db.meta("id_hash") == "hmac-sha256"
    db.close()
