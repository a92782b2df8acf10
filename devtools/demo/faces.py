"""The faces act of ``ykt demo``: card + face, a lent card, face-only passage, on real photos.

The simulated camera plays real labelled photos (the LFW subset of the shared test data; people
of the demo site are played by them), the encoder is the real one (YuNet + dlib ResNet) and so is
everything after it. The photos and the YuNet model are read from the shared data directory
(``../shared`` beside the checkout, or ``$YKT_DEMO_FACES``) and never copied; without it, the act
is skipped with a note.

Liveness is off in this act: the MiniFASNet export needs torch on the machine, and a photo is by
definition not a live face. A real face-only gate refuses to start without liveness
(docs/faces.md).
"""

import os
import queue
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console

from devtools.demo.site import SITE_TZ, card_number, holder_name, seed
from drivers.camera.sim import SimCameraControl
from drivers.face.yunet import YUNET_2023MAR_SHA256
from models.cards import FaceCredential, Genuineness, PresentedCard, mask_card_number
from models.reasons import Reason, message_en, message_zh
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.config import Config
from terminal.devices import SimControls
from terminal.faces.enrol import enrol_photo
from terminal.flows.door import FlowNotice, Notice, TapOutcome

LFW = Path("faces") / "lfw-dev"
YUNET = Path("models") / "yunet" / "face_detection_yunet_2023mar.onnx"
# Who plays whom: each holder's registration photo, and another photo of the same person that
# the camera shows at the gate (both clear the calibrated 1:N threshold, docs/faces.md).
CAST = {
    "H001": (
        "Donald_Rumsfeld/Donald_Rumsfeld_0002.jpg",
        "Donald_Rumsfeld/Donald_Rumsfeld_0003.jpg",
    ),
    "H002": (
        "Gerhard_Schroeder/Gerhard_Schroeder_0004.jpg",
        "Gerhard_Schroeder/Gerhard_Schroeder_0001.jpg",
    ),
}
STRANGER = "Tony_Blair/Tony_Blair_0003.jpg"  # enrolled nowhere on this site
WAIT_SECONDS = 20.0
STEPS = 5  # numbered steps this act prints, so the next act goes on counting


def shared_data() -> Path | None:
    """The shared test data directory, when it holds what this act needs."""
    configured = os.environ.get("YKT_DEMO_FACES")
    root = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared"
    if (root / LFW).is_dir() and (root / YUNET).is_file():
        return root
    return None


def faces_config(base: Config, shared: Path, state_dir: Path) -> Config:
    data = base.model_dump(mode="json", exclude_none=True)
    data["terminal"]["state_dir"] = str(state_dir)
    data["door"] |= {"face": "always", "face_only": True}
    data["faces"] = {
        "enabled": True,
        "backend": "onnx",
        "recognizer": "dlib",
        "yunet": {"path": str(shared / YUNET), "sha256": YUNET_2023MAR_SHA256},
        "camera": {"driver": "sim"},
        "liveness": {"face_only": False},
        "identify_seconds": 1.5,
    }
    return config_module.parse(data)


class FacesAct:
    def __init__(self, console: Console, app: App, shared: Path, first: int) -> None:
        self.console = console
        self.app = app
        self.lfw = shared / LFW
        self.number = first
        assert app.door_flow is not None and app.sim.camera is not None
        self.flow = app.door_flow
        self.camera = app.sim.camera
        self.told: queue.Queue[TapOutcome | FlowNotice] = queue.Queue()
        self.flow.listeners.append(self.told.put)

    def step(self, story: str) -> None:
        self.console.print(f"\n[bold]{self.number:2}. {story}[/]")
        self.number += 1

    def say(self, text: str) -> None:
        self.console.print(f"      {text}")

    def show(self, relative: str | None) -> None:
        if relative is None:
            self.camera.clear()
        else:
            self.camera.show_files([self.lfw / relative])

    def enrol(self) -> bool:
        self.step("Enrolment from the registration photos HQ sends")
        parts = self.app.face_parts
        assert parts is not None
        for holder_id, (registration, _) in CAST.items():
            result = enrol_photo(
                parts.encoder,
                (self.lfw / registration).read_bytes(),
                self.app.config.faces.quality.for_enrolment(),
            )
            if result.template is None:
                self.say(f"[red]{holder_name(holder_id)}: photo rejected ({result.rejection})[/]")
                return False
            parts.faces.put_template(
                holder_id, result.template, source="device", at=self.app.clock.now()
            )
            parts.verifier.refresh(holder_id)
            self.say(
                f"{holder_name(holder_id)}: template of model {result.template.model} stored, "
                "the photo itself is not kept"
            )
        return True

    def tap(self, card: int, face: str | None) -> TapOutcome | None:
        self.show(face)
        credential = PresentedCard(card_number(card), Genuineness.GENUINE, issue_seq=1)
        self.app.sim.reader.present(credential)
        self.app.sim.reader.remove()
        self.app.loop.run_until_idle()
        return self._outcome()

    def _outcome(self) -> TapOutcome | None:
        while True:
            try:
                told = self.told.get_nowait()
            except queue.Empty:
                return None
            if isinstance(told, TapOutcome):
                return told

    def describe(self, outcome: TapOutcome | None) -> bool:
        if outcome is None:
            self.say("[red]no decision[/]")
            return False
        decision = outcome.decision
        verdict = "[green]ALLOW[/]" if decision.allowed else "[red]DENY [/]"
        by = (
            "by face alone"
            if isinstance(outcome.credential, FaceCredential)
            else f"card {mask_card_number(decision.card_number or '')}"
        )
        when = outcome.at.strftime("%H:%M")
        self.console.print(f"      {when}  {verdict} {holder_name(decision.holder_id)}, {by}")
        detail = f"  [dim]({decision.detail})[/]" if decision.detail else ""
        self.say(
            f"reason [bold]{decision.reason}[/]: {message_zh(decision.reason)} / "
            f"{message_en(decision.reason)}{detail}"
        )
        record = self.app.store.records(outcome.committed.seq)[0]
        score = record.get("face_score")
        self.say(
            f"journal #{outcome.committed.seq}: credential {record['credential']}"
            + ("" if score is None else f", face score {score / 1000:.3f}")
        )
        if decision.alert is not None:
            self.say(f"[bold red]security event:[/] {decision.alert}")
        return True

    def card_and_face(self) -> bool:
        self.step("Card + face: 张伟 taps his card and looks at the camera")
        outcome = self.tap(1, CAST["H001"][1])
        return self.describe(outcome) and outcome is not None and outcome.decision.allowed

    def lending(self) -> bool:
        self.step("A lent card: 李娜's card, but 张伟 is at the camera")
        stills = len(self.app.face_parts.faces.stills()) if self.app.face_parts else 0
        outcome = self.tap(2, CAST["H001"][1])
        if not self.describe(outcome) or outcome is None or outcome.decision.allowed:
            return False
        kept = (len(self.app.face_parts.faces.stills()) if self.app.face_parts else 0) - stills
        self.say(f"{kept} still kept as evidence (deleted after the retention period)")
        return kept == 1

    def _poll_until(
        self, wanted: type, seconds: float = WAIT_SECONDS
    ) -> TapOutcome | FlowNotice | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.app.loop.turn(0.05)
            try:
                told = self.told.get_nowait()
            except queue.Empty:
                continue
            if isinstance(told, wanted) and not (
                isinstance(told, FlowNotice) and told.notice is Notice.HELD
            ):
                return told
        return None

    def face_only(self) -> bool:
        self.step("Face only: 李娜 walks up without her card")
        watch = self.app.face_watch
        assert watch is not None
        self.show(CAST["H002"][1])
        outcome = self._poll_until(TapOutcome)
        if not isinstance(outcome, TapOutcome) or not self.describe(outcome):
            return False
        before = self.app.store.counts()["journal"]
        self._poll_until(TapOutcome, 2.0)
        again = self.app.store.counts()["journal"] - before
        self.say(
            "she stays in front of the camera for two seconds: "
            + ("not counted again" if again == 0 else f"[red]{again} more records[/]")
        )
        return outcome.decision.allowed and again == 0

    def stranger(self) -> bool:
        self.step("A stranger looks into the camera")
        before = self.app.store.counts()["journal"]
        self.show(STRANGER)
        told = self._poll_until(FlowNotice)
        if not isinstance(told, FlowNotice):
            self.say("[red]nothing told[/]")
            return False
        self.say(
            f"[yellow]{told.notice}[/] ({told.detail}): {message_zh(Reason.FACE_UNKNOWN)} / "
            f"{message_en(Reason.FACE_UNKNOWN)} — the gate stays shut and nothing is journalled"
        )
        return self.app.store.counts()["journal"] == before

    def play(self) -> bool:
        ok = self.enrol() and self.card_and_face() and self.lending()
        if not ok:
            return False
        watch = self.app.face_watch
        assert watch is not None
        self.show(None)
        watch.start()
        try:
            return self.face_only() and self.stranger()
        finally:
            watch.stop()


def main(console: Console, base: Config, state_dir: Path, first: int) -> bool:
    """Run the act; ``True`` when it succeeded or could not run for want of the shared data."""
    console.print(
        "\n[bold]Faces[/] — east-gate with card + face and face-only passage, real photos on a "
        "simulated camera"
    )
    shared = shared_data()
    if shared is None:
        console.print(
            "  [yellow]the shared face photos and YuNet model were not found (../shared beside "
            "the checkout, or set YKT_DEMO_FACES): act skipped[/]"
        )
        return True
    config = faces_config(base, shared, state_dir / "faces")
    (state_dir / "faces").mkdir(parents=True, exist_ok=True)
    # Monday morning: inside everyone's access hours, so the faces decide.
    clock = SetClock(datetime(2026, 11, 23, 9, 30, tzinfo=SITE_TZ))
    # Driven step by step from here (threaded=False), so each step's outcome is known at once.
    app = App(
        config, clock=clock, sim=SimControls(camera=SimCameraControl(640, 480)), threaded=False
    )
    try:
        seed(app.store)
        ok = FacesAct(console, app, shared, first).play()
        broken = app.store.verify_journal()
        stills = len(app.face_parts.faces.stills()) if app.face_parts else 0
        console.print(
            f"\n[bold]Faces journal:[/] {app.store.counts()['journal']} records, {stills} "
            f"evidence still, chain {'verified' if broken is None else 'BROKEN'}"
        )
        return ok and broken is None
    finally:
        app.close()
