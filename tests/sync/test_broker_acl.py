"""The shipped broker config (config/mosquitto/): mTLS plus the per-terminal ACL, for real."""

import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devtools.hq.cli import main as hq_main
from sync.settings import TlsFiles
from tests.sync.broker import Broker, free_port, wait_for
from tests.sync.certs import ScratchCa
from tests.sync.messages import SITE, TID, card_number
from tests.sync.sites import Site, restarted

pytestmark = pytest.mark.integration
SHIPPED = Path(__file__).resolve().parents[2] / "config" / "mosquitto"
HQ_CN = f"hq-{SITE}"


@pytest.fixture
def ca(tmp_path: Path) -> ScratchCa:
    (tmp_path / "pki").mkdir()
    return ScratchCa(tmp_path / "pki")


@pytest.fixture
def tls_broker(tmp_path: Path, ca: ScratchCa) -> Iterator[Broker]:
    directory = tmp_path / "broker"
    directory.mkdir()
    cert, key = ca.issue("localhost", server=True)
    acl = (SHIPPED / "ykt.acl").read_text().replace("@SITE@", SITE).replace("@HQ@", HQ_CN)
    (directory / "ykt.acl").write_text(acl)
    port = free_port()
    conf = (SHIPPED / "mosquitto.conf").read_text()
    replacements = {
        r"^persistence true$": "persistence false",
        r"^persistence_location .*$": "",
        r"^listener 8883$": f"listener {port} 127.0.0.1",
        r"^cafile .*$": f"cafile {ca.ca_file}",
        r"^certfile .*$": f"certfile {cert}",
        r"^keyfile .*$": f"keyfile {key}",
        r"^acl_file .*$": f"acl_file {directory / 'ykt.acl'}",
    }
    for pattern, value in replacements.items():
        conf, count = re.subn(pattern, value, conf, flags=re.MULTILINE)
        assert count == 1, pattern
    broker = Broker(directory, extra=conf, port=port)
    broker.start()
    yield broker
    broker.stop()


def _client(broker: Broker, ca: ScratchCa, common_name: str, client_id: str) -> mqtt.Client:
    cert, key = ca.issue(common_name)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.tls_set(str(ca.ca_file), str(cert), str(key), cert_reqs=ssl.CERT_REQUIRED)
    client.connect("127.0.0.1", broker.port)
    return client


def _pump(*clients: mqtt.Client, seconds: float = 0.5) -> None:
    for _ in range(int(seconds / 0.05)):
        for client in clients:
            client.loop(timeout=0.05 / len(clients))


def test_a_terminal_cannot_act_as_another_or_read_its_commands(
    tls_broker: Broker, ca: ScratchCa
) -> None:
    hq = _client(tls_broker, ca, HQ_CN, "hq")
    intruder = _client(tls_broker, ca, "gate-02", "gate-01")  # even claiming B's client id
    got_hq: list[str] = []
    got_intruder: list[str] = []
    hq.on_message = lambda c, u, m: got_hq.append(m.topic)
    intruder.on_message = lambda c, u, m: got_intruder.append(m.topic)
    hq.subscribe(f"ykt/v1/{SITE}/+/tx", qos=1)
    intruder.subscribe(f"ykt/v1/{SITE}/gate-01/cmd", qos=1)
    intruder.subscribe(f"ykt/v1/{SITE}/gate-02/cmd", qos=1)
    _pump(hq, intruder)
    intruder.publish(f"ykt/v1/{SITE}/gate-01/tx", b"{}", qos=1)  # as another terminal
    intruder.publish(f"ykt/v1/{SITE}/gate-02/tx", b"{}", qos=1)  # as itself: allowed
    hq.publish(f"ykt/v1/{SITE}/gate-01/cmd", b"{}", qos=1)
    hq.publish(f"ykt/v1/{SITE}/gate-02/cmd", b"{}", qos=1)
    intruder.publish(f"ykt/v1/{SITE}/deny", b"{}", qos=1)  # HQ's broadcasts are read-only
    _pump(hq, intruder, seconds=1.0)
    assert got_hq == [f"ykt/v1/{SITE}/gate-02/tx"]
    assert got_intruder == [f"ykt/v1/{SITE}/gate-02/cmd"]
    hq.disconnect()
    intruder.disconnect()


def _session(broker: Broker, ca: ScratchCa, common_name: str, client_id: str) -> mqtt.Client:
    """A client with a persistent session (as terminals and HQ connect), its loop running."""
    cert, key = ca.issue(common_name)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.tls_set(str(ca.ca_file), str(cert), str(key), cert_reqs=ssl.CERT_REQUIRED)
    properties = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=properties)
    client.loop_start()
    assert wait_for(client.is_connected, 5)
    return client


def test_another_certificate_cannot_take_a_client_id_over(
    tls_broker: Broker, ca: ScratchCa
) -> None:
    hq = _session(tls_broker, ca, HQ_CN, HQ_CN)
    gate = _session(tls_broker, ca, "gate-01", "gate-01")
    got: list[bytes] = []
    gate.on_message = lambda c, u, m: got.append(m.payload)
    gate.subscribe(f"ykt/v1/{SITE}/gate-01/cmd", qos=1)
    time.sleep(0.3)
    intruders = [
        _session(tls_broker, ca, "gate-02", "gate-01"),  # a terminal as another terminal
        _session(tls_broker, ca, "gate-02", HQ_CN),  # a terminal as HQ
    ]
    time.sleep(0.5)
    hq.publish(f"ykt/v1/{SITE}/gate-01/cmd", b"open", qos=1).wait_for_publish(5)
    assert wait_for(lambda: got == [b"open"], 5)  # the queued command reached its terminal
    assert gate.is_connected() and hq.is_connected()  # neither was kicked off
    for client in (hq, gate, *intruders):
        client.loop_stop()
        client.disconnect()


def test_hq_may_consume_through_a_shared_subscription(tls_broker: Broker, ca: ScratchCa) -> None:
    hq = _client(tls_broker, ca, HQ_CN, "hq-1")
    terminal = _client(tls_broker, ca, TID, TID)
    got: list[str] = []
    hq.on_message = lambda c, u, m: got.append(m.topic)
    hq.subscribe(f"$share/hq/ykt/v1/{SITE}/+/tx", qos=1)
    _pump(hq, terminal)
    terminal.publish(f"ykt/v1/{SITE}/{TID}/tx", b"{}", qos=1)
    _pump(hq, terminal, seconds=1.0)
    assert got == [f"ykt/v1/{SITE}/{TID}/tx"]
    hq.disconnect()
    terminal.disconnect()


def test_a_client_without_a_certificate_is_refused(tls_broker: Broker, ca: ScratchCa) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="anon")
    client.tls_set(str(ca.ca_file), cert_reqs=ssl.CERT_REQUIRED)

    def connects() -> bool:
        try:
            client.connect("127.0.0.1", tls_broker.port)
            for _ in range(20):
                client.loop(timeout=0.05)
                if client.is_connected():
                    return True
        except (ssl.SSLError, OSError):
            return False
        return False

    assert not connects()


def test_terminal_and_hq_sync_over_mtls(tmp_path: Path, tls_broker: Broker, ca: ScratchCa) -> None:
    hq_cert, hq_key = ca.issue(HQ_CN)
    site = Site(tmp_path, tls_broker, tls=TlsFiles(ca.ca_file, hq_cert, hq_key))
    cert, key = ca.issue(TID)
    site.terminal.stop()
    site.terminal = restarted(site.terminal, tls=TlsFiles(ca.ca_file, cert, key))
    try:
        site.start_hq()
        site.terminal.start()
        assert site.synced()
        site.office.set_status(card_number(1), "lost")
        assert wait_for(lambda: site.terminal.status(1) == "lost", 3)
        site.terminal.commit_payments(10)
        assert wait_for(lambda: len(site.hq_tx()) == 10, 10)
    finally:
        site.close()


def test_the_office_cli_has_an_identity_of_its_own(
    tmp_path: Path, tls_broker: Broker, ca: ScratchCa, capsys: pytest.CaptureFixture[str]
) -> None:
    hq_cert, hq_key = ca.issue(HQ_CN)
    site = Site(tmp_path, tls_broker, tls=TlsFiles(ca.ca_file, hq_cert, hq_key))
    cert, key = ca.issue(TID)
    site.terminal.stop()
    site.terminal = restarted(site.terminal, tls=TlsFiles(ca.ca_file, cert, key))
    cli_cert, cli_key = ca.issue(f"{HQ_CN}-cli")
    broker = ["--broker", f"127.0.0.1:{tls_broker.port}", "--tls-ca", str(ca.ca_file)]
    try:
        server = site.start_hq()
        site.terminal.start()
        assert site.synced()
        own = [*broker, "--tls-cert", str(cli_cert), "--tls-key", str(cli_key)]
        hq_dir = ["--dir", str(site.hq_root)]
        assert hq_main([*hq_dir, "cmd", *own, TID, "status", "--wait", "5"]) == 0
        serves = [*broker, "--tls-cert", str(hq_cert), "--tls-key", str(hq_key)]
        assert hq_main([*hq_dir, "cmd", *serves, TID, "status", "--wait", "1"]) == 1
        assert "one-shot commands need their own" in " ".join(capsys.readouterr().err.split())
        assert server.link.connected.is_set()  # serve was never disconnected
        site.terminal.commit_payments(3)
        assert wait_for(lambda: len(site.hq_tx()) == 3, 10)
    finally:
        site.close()
