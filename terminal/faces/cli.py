"""``ykt faces calibrate|encode|enrol``, added to ``ykt`` by :func:`add_faces_commands`.

Output goes through :func:`_say` (stdout) and :func:`_warn` (stderr): these talk to people.
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from drivers.camera.images import read_image
from drivers.face.backends import build_encoder
from drivers.face.quality import message_en, message_zh
from drivers.face.settings import (
    MOBILEFACENET_BIN_SHA256,
    MOBILEFACENET_PARAM_SHA256,
    DlibHogSettings,
    EncoderSettings,
    NcnnRecognizerSettings,
    RecognizerKind,
    RefineSettings,
    YuNetSettings,
)
from drivers.face.yunet import YUNET_2023MAR_SHA256
from models.errors import ConfigError, TerminalError
from terminal import config
from terminal.config.faces import CALIBRATED, FacesSection
from terminal.faces.calibrate import (
    Calibration,
    cache_tag,
    calibrate,
    default_cache_dir,
    encode_images,
    identification_threshold,
    list_images,
    read_pairs,
)
from terminal.faces.encode import default_workers, encode_folder
from terminal.faces.enrol import enrol_image
from terminal.faces.robustness import Robustness, assess, format_robustness
from terminal.store import Store
from terminal.store.faces import FaceStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
GALLERY_SIZES = (100, 1_000, 10_000, 100_000)


def _say(text: object) -> None:
    sys.stdout.write(f"{text}\n")


def _warn(text: object) -> None:
    sys.stderr.write(f"{text}\n")
    sys.stderr.flush()


def load_faces_config(path: Path) -> tuple[FacesSection, Path]:
    """The ``[faces]`` section and the database path of a terminal config file."""
    loaded = config.load(path)
    section = getattr(loaded, "faces", None)
    if not isinstance(section, FacesSection):
        raise ConfigError(f"{path}: no [faces] section in this configuration schema")
    return section, loaded.database_path


def _progress(label: str) -> Any:
    def report(done: int, total: int) -> None:
        if done % 250 == 0 or done == total:
            _warn(f"  {label}: {done}/{total} photos")

    return report


def _model_pair(folder: Path) -> tuple[Path, Path]:
    """The ``.param`` and ``.bin`` in ``folder``: MobileFaceNet's names, else the only pair."""
    param, weights = folder / "mobilefacenet.param", folder / "mobilefacenet.bin"
    if param.is_file() and weights.is_file():
        return param, weights
    params, bins = sorted(folder.glob("*.param")), sorted(folder.glob("*.bin"))
    if len(params) == 1 and len(bins) == 1:
        return params[0], bins[0]
    raise ConfigError(f"--model {folder}: expected one .param and one .bin file in it")


def _ncnn_from_args(args: argparse.Namespace) -> NcnnRecognizerSettings:
    if args.model is None:
        raise ConfigError("recognizer ncnn needs --model DIR (the folder of its .param/.bin)")
    param, weights = _model_pair(args.model)
    return NcnnRecognizerSettings(
        param=param,
        param_sha256=args.param_sha256,
        bin=weights,
        bin_sha256=args.bin_sha256,
        flip=args.flip,
    )


def settings_from_args(
    args: argparse.Namespace, backends: tuple[str, ...] | None = None
) -> list[EncoderSettings]:
    """The encoders a command's flags (or ``--config``'s ``[faces]`` section) name."""
    if args.config is not None:
        section, _ = load_faces_config(args.config)
        return [section.encoder_settings()]
    yunet = None
    if args.yunet is not None:
        yunet = YuNetSettings(path=args.yunet, sha256=args.yunet_sha256, score_threshold=0.6)
    # LFW photos are 250 x 250 with faces of about 100 px: one upsampling pass lets HOG find them.
    hog = DlibHogSettings(max_width=640, upsample=1)
    backend = getattr(args, "backend", "onnx")
    wanted = backends or (("onnx", "dlib") if backend == "all" else (backend,))
    if "onnx" in wanted and yunet is None:
        raise ConfigError("backend onnx needs --yunet PATH (face_detection_yunet_2023mar.onnx)")
    recognizer: RecognizerKind = args.recognizer or ("ncnn" if args.model is not None else "dlib")
    ncnn = _ncnn_from_args(args) if recognizer == "ncnn" else None
    refine = None
    if ncnn is not None and args.refine_below > 0:
        refine = RefineSettings(below=args.refine_below)
    return [
        EncoderSettings(
            backend=b,  # type: ignore[arg-type]
            recognizer=recognizer,
            yunet=yunet,
            ncnn=ncnn,
            refine=refine if b == "onnx" else None,
            dlib_hog=hog,
        )
        for b in wanted
    ]


def add_recognizer_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that choose an encoder without a terminal config (``calibrate``, ``encode``)."""
    parser.add_argument("--config", type=Path, help="use the [faces] section of this config")
    parser.add_argument(
        "--recognizer",
        choices=("ncnn", "dlib", "sface", "onnx"),
        help="default: ncnn when --model is given, else dlib",
    )
    parser.add_argument("--yunet", type=Path, help="YuNet model file (backend onnx)")
    parser.add_argument(
        "--yunet-sha256", default=YUNET_2023MAR_SHA256, help="sha256 of the YuNet file"
    )
    parser.add_argument(
        "--model", type=Path, help="folder with the ncnn recognizer's .param and .bin"
    )
    parser.add_argument(
        "--param-sha256", default=MOBILEFACENET_PARAM_SHA256, help="sha256 of the .param"
    )
    parser.add_argument("--bin-sha256", default=MOBILEFACENET_BIN_SHA256, help="sha256 of the .bin")
    parser.add_argument(
        "--flip", action="store_true", help="ncnn: add the mirrored crop's embedding"
    )
    parser.add_argument(
        "--refine-below",
        type=float,
        default=RefineSettings().below,
        help="ncnn: refine landmarks of faces with eyes closer than this many px (0: never)",
    )


def format_calibration(result: Calibration, fpir: float) -> str:
    lines = [
        f"backend {result.backend}, model {result.model_id}: {result.images} photos "
        f"({result.failed} without a face), {result.genuine_pairs} genuine pairs, "
        f"{result.impostor_pairs:,} impostor pairs; EER {result.eer:.2%}; "
        f"median {result.encode_ms_median:.0f} ms per photo",
        "  FAR target   threshold   FAR measured   false accepts   TAR     pairs.tsv FA",
    ]
    for p in result.points:
        lines.append(
            f"  {p.far_target:<12.0e} {p.threshold:<11.4f} {p.far:<14.2e} {p.false_accepts:<15d} "
            f"{p.tar:<7.2%} {p.pairs_tsv_false_accepts}"
        )
    lines.append(f"  1:N at FPIR {fpir:g} (FAR per comparison ≈ FPIR / N):")
    for size in GALLERY_SIZES:
        point = identification_threshold(result.points, size, fpir)
        if point is None:
            lines.append(f"    N={size:>7,}: beyond the calibrated range: not supported")
        else:
            lines.append(
                f"    N={size:>7,}: threshold {point.threshold:.4f} (FAR {point.far_target:.0e}),"
                f" TAR {point.tar:.2%}"
            )
    return "\n".join(lines)


def _calibrate(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        _warn(exc)
        return EXIT_USAGE
    results = []
    for item in settings:
        encoder = build_encoder(item)
        _warn(f"calibrating {encoder.name} ({encoder.model_id})")
        names = list_images(args.data)
        encoded = encode_images(
            encoder,
            args.data,
            names,
            cache_dir=None if args.no_cache else default_cache_dir(),
            cache_tag=cache_tag(args.data.name, item.refine),
            progress=_progress(encoder.name),
        )
        result = calibrate(encoder, args.data, encoded=encoded)
        results.append(result)
        _say(format_calibration(result, args.fpir))
        if args.robustness:
            _say(format_robustness(_robustness(args, encoder.model_id, result, names, encoded)))
    if args.json is not None:
        args.json.write_text(
            json.dumps([r.as_dict() for r in results], indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    return EXIT_OK


def _robustness(
    args: argparse.Namespace,
    model_id: str,
    result: Calibration,
    names: list[str],
    encoded: tuple[Any, Any, Any],
) -> Robustness:
    # Open set at the strictest calibrated point and at the model's default 1:N threshold.
    thresholds = [result.points[-1].threshold]
    if model_id in CALIBRATED:
        thresholds.append(CALIBRATED[model_id][1])
    vectors, valid, _ = encoded
    return assess(
        vectors,
        valid,
        names,
        read_pairs(args.data / "pairs.tsv"),
        fars=[p.far_target for p in result.points],
        thresholds=sorted(set(thresholds)),
        margin=FacesSection().identify_margin,
        fpir=args.fpir,
    )


def _encode(args: argparse.Namespace) -> int:
    try:
        (settings,) = settings_from_args(args, backends=(args.backend,))
        gate = None
        if args.gate:
            section = FacesSection() if args.config is None else load_faces_config(args.config)[0]
            gate = section.quality.for_enrolment()
    except ConfigError as exc:
        _warn(exc)
        return EXIT_USAGE
    if not args.data.is_dir():
        _warn(f"--data {args.data}: not a folder")
        return EXIT_USAGE
    # The bar goes to stderr, so stdout stays the summary alone.
    console = Console(stderr=True)
    with Progress(
        TextColumn("encoding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,
    ) as bar:
        task = bar.add_task("photos", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = encode_folder(
            settings, args.data, gate=gate, workers=args.workers, progress=advance
        )
    result.save(args.out)
    _say(
        f"{len(result.names)} photos, {len(result.names) - len(result.rejected)} templates of "
        f"model {result.model_id}, {len(result.rejected)} rejected, {result.seconds:g} s "
        f"-> {args.out}"
    )
    for name, reason in result.rejected[:20]:
        _say(f"  rejected {name}: {reason}")
    if len(result.rejected) > 20:
        _say(f"  ... and {len(result.rejected) - 20} more (key 'rejected' in the file)")
    return EXIT_OK


def _enrol(args: argparse.Namespace) -> int:
    try:
        section, database = load_faces_config(args.config)
    except ConfigError as exc:
        _warn(exc)
        return EXIT_USAGE
    if not section.enabled:
        # The daemon would delete it at its next start: no face data where faces are off.
        _warn(f"{args.config}: [faces] enabled = false, so this terminal keeps no templates")
        return EXIT_USAGE
    encoder = build_encoder(section.encoder_settings())
    result = enrol_image(encoder, read_image(args.photo), section.quality.for_enrolment())
    if result.template is None or result.rejection is not None:
        reason = result.rejection
        text = f"{message_zh(reason)} / {message_en(reason)}" if reason else "rejected"
        _warn(f"photo rejected: {text}")
        return EXIT_FAILED
    store = Store.open(database)
    try:
        FaceStore(store).put_template(
            args.holder,
            result.template,
            source="device",
            at=datetime.now(UTC),
            quality=None if result.quality is None else round(result.quality.rank, 4),
        )
    finally:
        store.close()
    _say(f"enrolled with model {result.template.model}")
    return EXIT_OK


def add_faces_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``faces calibrate`` and ``faces enrol`` to the ``ykt`` parser's subcommands."""
    faces = commands.add_parser("faces", help="face templates: calibrate thresholds, enrol photos")
    sub = faces.add_subparsers(dest="faces_command", required=True, metavar="SUBCOMMAND")

    cal = sub.add_parser(
        "calibrate", help="TAR at FAR 1e-3/1e-4/1e-5 per backend on labelled photos"
    )
    cal.add_argument("--data", type=Path, required=True, help="folder with pairs.tsv and photos")
    cal.add_argument("--backend", choices=("onnx", "dlib", "all"), default="all")
    add_recognizer_arguments(cal)
    cal.add_argument("--fpir", type=float, default=0.01, help="1:N false-positive target")
    cal.add_argument("--json", type=Path, help="also write the results as JSON here")
    cal.add_argument("--no-cache", action="store_true", help="re-encode every photo")
    cal.add_argument(
        "--robustness",
        action="store_true",
        help="also: split-half shift, open-set FPIR/TPIR and capacity from the impostor tail",
    )
    cal.set_defaults(handler=_calibrate)

    enc = sub.add_parser(
        "encode", help="templates of every JPEG under a folder into one .npz (all cores)"
    )
    enc.add_argument("--data", type=Path, required=True, help="folder of JPEG photos (any depth)")
    enc.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    enc.add_argument("--backend", choices=("onnx", "dlib"), default="onnx")
    add_recognizer_arguments(enc)
    enc.add_argument(
        "--gate",
        action="store_true",
        help="judge photos as registration photos (one face, enrolment quality gate)",
    )
    enc.add_argument(
        "--workers", type=int, default=default_workers(), help="processes (default: every core)"
    )
    enc.set_defaults(handler=_encode)

    enrol = sub.add_parser("enrol", help="compute and store a holder's template from a photo")
    enrol.add_argument("--config", type=Path, required=True, help="terminal config file")
    enrol.add_argument("--holder", required=True, help="holder id")
    enrol.add_argument("photo", type=Path, help="registration photo (JPEG or PNG)")
    enrol.set_defaults(handler=_enrol)


def run(argv: list[str]) -> int:
    """Run a ``faces`` command without the rest of ``ykt`` (tests, before it is wired)."""
    parser = argparse.ArgumentParser(prog="ykt")
    add_faces_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except TerminalError as exc:
        _warn(f"ykt: {exc}")
        return EXIT_FAILED
    return result
