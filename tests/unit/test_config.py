import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devtools.demo.door import demo_config
from models.errors import ConfigError
from models.settings import models_in
from terminal import config
from terminal.cli import main
from terminal.config import doc as configdoc

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config").glob("*.toml"))

MINIMAL = """
[terminal]
id = "gate-01"
site = "centre"
[door]
id = "east-gate"
[reader]
driver = "sim"
[gate]
driver = "sim"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    return str(caught.value)


def test_examples_are_valid() -> None:
    assert {p.name for p in EXAMPLES} == {"gate.toml", "canteen.toml", "shop.toml", "demo.toml"}
    for path in EXAMPLES:
        if path.name != "demo.toml":
            continue  # the others need their key file on the target machine; checked below
        config.load(path)


@pytest.mark.parametrize("name", ["gate.toml", "canteen.toml", "shop.toml"])
def test_examples_take_their_key_file_from_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as caught:
        config.load(ROOT / "config" / name)
    message = str(caught.value)
    assert (
        "reader.key_store.key_file: credential 'card-keys' needs $CREDENTIALS_DIRECTORY" in message
    )
    (tmp_path / "card-keys").write_text("")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert config.load(ROOT / "config" / name).reader.driver == "pcsc"


def test_demo_example_is_what_the_demo_runs(tmp_path: Path) -> None:
    shipped = config.load(ROOT / "config" / "demo.toml")
    assert demo_config(shipped.terminal.state_dir) == shipped


def test_minimal_config_gets_safe_defaults(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, MINIMAL))
    assert loaded.terminal.timezone == "Asia/Shanghai"
    assert loaded.database_path == Path("/var/lib/ykt-terminal/terminal.db")
    assert loaded.door.direction == "none"
    assert loaded.log.format == "auto"


def test_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    message = errors_of(tmp_path, MINIMAL.replace('id = "east-gate"', 'id = "e"\nopen_secs = 3'))
    assert "door.open_secs: unknown key" in message


def test_unknown_section_is_named(tmp_path: Path) -> None:
    assert "doors: unknown key" in errors_of(tmp_path, MINIMAL + "\n[doors]\nid = 'x'\n")


def test_wrong_type_says_what_it_got(tmp_path: Path) -> None:
    message = errors_of(
        tmp_path, MINIMAL.replace('id = "east-gate"', 'id = "e"\nopen_seconds = "long"')
    )
    assert "door.open_seconds" in message and "'long'" in message


def test_every_error_is_listed(tmp_path: Path) -> None:
    text = MINIMAL.replace('site = "centre"', 'site = "centre"\ntimezone = "Mars/Olympus"')
    text = text.replace('driver = "sim"\n[gate]', 'driver = "sim"\nscrip = "x"\n[gate]')
    message = errors_of(tmp_path, text)
    assert "terminal.timezone: unknown time zone 'Mars/Olympus'" in message
    assert "reader.scrip: unknown key" in message


def test_missing_required_key(tmp_path: Path) -> None:
    assert "terminal.id: required key is missing" in errors_of(
        tmp_path, MINIMAL.replace('id = "gate-01"\n', "")
    )


def test_unknown_driver(tmp_path: Path) -> None:
    message = errors_of(
        tmp_path, MINIMAL.replace('[reader]\ndriver = "sim"', '[reader]\ndriver = "nfc"')
    )
    assert "reader" in message and "nfc" in message


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    assert "line 3" in errors_of(tmp_path, '[terminal]\nid = "x"\nsite = \n')


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        config.load(tmp_path / "absent.toml")


PCSC = """
[reader]
driver = "pcsc"
reader_pattern = "Virtual PCD"
[reader.key_store]
type = "software"
key_file = "{ref}"
[cards]
issuers = ["5943484e00000001"]
"""


def pcsc_config(ref: str) -> str:
    return MINIMAL.replace('[reader]\ndriver = "sim"', PCSC.format(ref=ref))


def test_a_pcsc_reader_in_cpu_mode_needs_the_sites_issuer(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text("")
    keys.chmod(stat.S_IRUSR | stat.S_IWUSR)
    text = pcsc_config(f"file:{keys}")
    loaded = config.load(write(tmp_path, text))
    assert loaded.cards.site_cards().issuers == {"5943484E00000001"}  # upper-cased
    message = errors_of(tmp_path, text.replace('issuers = ["5943484e00000001"]', ""))
    assert "cards.issuers is required with a PC/SC reader in cpu mode" in message
    assert "(got {" not in message  # a rule across sections: no dump of the whole file


@pytest.mark.parametrize(
    ("cards", "problem"),
    [
        ('issuers = ["5943"]', "cards.issuers.0: an issuer id is 8 bytes of hex"),
        ('issuers = ["zz43484E00000001"]', "cards.issuers.0: an issuer id is 8 bytes of hex"),
        ('classes = { 300 = "gold" }', "cards.classes: class codes are one byte"),
        ('classes = { x = "gold" }', "cards.classes.x"),
    ],
)
def test_bad_card_settings_name_the_key(tmp_path: Path, cards: str, problem: str) -> None:
    assert problem in errors_of(tmp_path, MINIMAL + f"\n[cards]\n{cards}\n")


def test_class_codes_default_to_the_profiles_and_may_be_the_sites_own(tmp_path: Path) -> None:
    default = config.load(write(tmp_path, MINIMAL)).cards.site_cards()
    assert default.class_name(1) == "gold" and default.class_name(9) is None
    own = MINIMAL + '\n[cards]\nclasses = { 1 = "leader", 7 = "visitor" }\n'
    cards = config.load(write(tmp_path, own)).cards.site_cards()
    assert (cards.class_name(7), cards.class_name(2)) == ("visitor", None)


def test_missing_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    message = errors_of(tmp_path, pcsc_config(f"file:{tmp_path}/keys.toml"))
    assert f"reader.key_store.key_file: secret file {tmp_path}/keys.toml does not exist" in message


def test_inline_secret_is_refused(tmp_path: Path) -> None:
    message = errors_of(tmp_path, pcsc_config("00112233445566778899aabbccddeeff"))
    assert "reader.key_store.key_file: a secret is a reference" in message


def test_secret_by_file_reference(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text("")
    keys.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert config.load(write(tmp_path, pcsc_config(f"file:{keys}"))).reader.driver == "pcsc"


def test_secret_by_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "card-keys").write_text("")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert "CREDENTIALS_DIRECTORY" in errors_of(tmp_path, pcsc_config("credential:card-keys"))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert config.load(write(tmp_path, pcsc_config("credential:card-keys")))


def test_cpu_mode_needs_a_key_store(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        '[reader]\ndriver = "sim"', '[reader]\ndriver = "pcsc"\nreader_pattern = "x"'
    )
    assert "key_store is required" in errors_of(tmp_path, text)


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=5,
    )
)
def test_any_data_is_accepted_or_refused_with_a_config_error(data: dict[str, object]) -> None:
    try:
        config.parse(data)
    except ConfigError as exc:
        assert str(exc)


def test_generated_docs_are_current() -> None:
    docs = ROOT / "docs"
    assert (docs / configdoc.SCHEMA_FILE).read_text() == configdoc.json_schema(), (
        "docs/config.schema.json is stale: ykt config schema > docs/config.schema.json"
    )
    assert (docs / configdoc.REFERENCE_FILE).read_text() == configdoc.reference(), (
        "docs/config.md is stale: ykt config reference > docs/config.md"
    )


def test_every_field_is_described() -> None:
    def walk(model: type) -> None:
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            assert info.description, f"{model.__name__}.{name} has no description"
            for inner in models_in(info.annotation):
                walk(inner)

    walk(config.Config)


def test_check_command_prints_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(write(tmp_path, MINIMAL))]) == 0
    assert capsys.readouterr().out == "ok\n"


def test_check_command_exit_code_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "\n[bogus]\n")
    result = subprocess.run(
        [sys.executable, "-m", "terminal", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert "bogus: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


POS = """
[terminal]
id = "pos-01"
site = "centre"
[reader]
driver = "sim"
[pos]
merchant = "canteen-1"
service = "meal"
[keypad]
driver = "sim"
[display]
driver = "sim"
"""


def test_pos_terminal_config(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, POS))
    assert loaded.pos is not None and loaded.door is None
    assert loaded.pos.duplicate_window_seconds == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (POS + '\n[door]\nid = "d"\n[gate]\ndriver = "sim"\n', "exactly one"),
        (POS.replace('[pos]\nmerchant = "canteen-1"\nservice = "meal"\n', ""), "exactly one"),
        (POS.replace('[display]\ndriver = "sim"\n', ""), "needs [keypad] and [display]"),
        (MINIMAL.replace('[gate]\ndriver = "sim"\n', ""), "needs a [gate]"),
        (POS.replace('service = "meal"', 'service = "laundry"'), "pos.service"),
        (MINIMAL.replace('id = "east-gate"', 'id = "east-gate"\nface_only = true'), "face_only"),
        # Face-only without liveness models: a printed photo could open it, so it is refused.
        (
            MINIMAL.replace('id = "east-gate"', 'id = "east-gate"\nface_only = true')
            + '[faces]\nenabled = true\nbackend = "dlib"\n',
            "needs liveness",
        ),
        (POS.replace('service = "meal"', 'service = "meal"\nface_pay = true'), "pos.face_pay"),
    ],
)
def test_role_sections_must_fit_together(tmp_path: Path, text: str, message: str) -> None:
    assert message in errors_of(tmp_path, text)
