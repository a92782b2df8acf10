"""HQ's keys change under a running site: the offline root key signs, terminals follow."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.hq import keyadmin
from devtools.hq.cli import main as hq_main
from devtools.hq.db import HqDb
from models.errors import SyncError
from tests.sync.broker import Broker, wait_for
from tests.sync.messages import SITE, card_number, holder
from tests.sync.sites import Site, restarted

pytestmark = pytest.mark.integration


@pytest.fixture
def site(tmp_path: Path, broker: Broker) -> Iterator[Site]:
    built = Site(tmp_path, broker, root_key=True)
    yield built
    built.close()


def test_a_terminal_that_missed_a_rotation_catches_up_with_the_new_key(site: Site) -> None:
    old = site.db.signer().kid
    site.start_hq()
    site.terminal.start()
    assert site.synced()
    engine = site.terminal.service.engine
    assert wait_for(lambda: engine.keyring.version == 1, 5)
    site.terminal.stop()

    keyset = keyadmin.rotate(site.db, site.root_key, revoke=[old])
    new = site.db.signer().kid
    assert [k.kid for k in keyset.keys] == [new] != [old]
    site.office.upsert_holder(holder("H9"))
    site.office.issue_card("H9", card_number(9))
    assert site.published()

    site.terminal = restarted(site.terminal).start()
    assert site.synced(15), site.terminal.port.marks()
    assert site.terminal.status(9) == "active"
    assert site.terminal.service.engine.keyring.kids() == [new]


def test_the_running_terminal_follows_a_rotation_at_once(site: Site) -> None:
    server = site.start_hq()
    site.terminal.start()
    assert site.synced()
    engine = site.terminal.service.engine
    keyadmin.rotate(site.db, site.root_key)
    new = site.db.signer().kid
    # HQ notices the new keyset on its next round; a change it sends in the same round is still
    # signed by the old key, which the new set keeps.
    assert wait_for(lambda: server.signer.kid == new, 5)
    assert wait_for(lambda: engine.keyring.version == 2, 5)
    assert len(engine.keyring.kids()) == 2
    site.office.set_status(card_number(2), "lost")  # signed by the new key
    assert wait_for(lambda: site.terminal.status(2) == "lost", 5)
    assert not engine.rejected, engine.rejected


def test_key_commands_refuse_what_would_lock_terminals_out(tmp_path: Path) -> None:
    root = tmp_path / "site"
    assert hq_main(["--dir", str(root), "init", "--site", SITE]) == 0
    db = HqDb(root)
    signing = db.signer().kid
    with pytest.raises(SyncError, match="signs HQ's messages now"):
        keyadmin.revoke(db, root / keyadmin.ROOT_KEY_NAME, [signing])
    stranger = tmp_path / "other.key"
    other = HqDb.create(tmp_path / "other", SITE, "ykt/v1", "127.0.0.1:1883")
    keyadmin.make_root(other, stranger)
    with pytest.raises(SyncError, match="not this site's root key"):
        keyadmin.rotate(db, stranger)
    with pytest.raises(SyncError, match="already has a root key"):
        keyadmin.make_root(db, tmp_path / "again.key")
    assert hq_main(["--dir", str(root), "keys", "rotate", "--root-key", str(stranger)]) == 1
    assert hq_main(["--dir", str(root), "keys", "show"]) == 0
    assert keyadmin.current_keyset(db).version == 1  # type: ignore[union-attr]
