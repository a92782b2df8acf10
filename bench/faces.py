"""Face benchmarks: pipeline per frame per backend, 1:N search, gallery memory, calibration.

    .venv/bin/python bench/faces.py            # 60 frames per backend, 1,000 searches, calibration
    .venv/bin/python bench/faces.py --quick    # 12 frames, 200 searches, cached calibration only

Needs ../shared (lfw-dev photos and the YuNet model) beside the project.

1. *pipeline*: detect + quality gate + template on 640 x 480 frames (lfw-dev photos at their own
   pixel size on a grey frame), per backend: ``onnx`` (YuNet + dlib ResNet), ``dlib`` (HOG on
   the frame shrunk to 320 px + dlib ResNet) and, when MobileFaceNet is in ../shared, ``ncnn``
   (YuNet + landmark refinement + MobileFaceNet on ncnn) and ``ncnn-flip`` (the same plus the
   mirrored crop). Ratio dlib ÷ each, same run. Detection alone, the embedding alone (refine +
   align + network, on the face already found) and alignment + network without the refinement
   are reported too. LFW faces are small (eyes about 45 px apart), so the refinement runs on
   every frame: the worst case for ``ncnn``.
2. *1:N search* over 100,000 templates (seeded random unit vectors, 128 values: search time does
   not depend on what the vectors encode): ``Gallery.identify`` against face_recognition's own
   ``compare_faces`` + ``face_distance`` on the same gallery as one float64 array (the form its
   examples use, and its fastest), same run.
   The same over 1,000,000 float16 templates, with float32 on the same vectors as its baseline.
3. *memory*: RSS growth of a fresh process building the 100,000-template gallery (float32 and
   float16) and the 1,000,000-template float16 one.
4. *calibration*: TAR at FAR 1e-3/1e-4/1e-5 per backend on lfw-dev (terminal/faces/calibrate.py;
   encodings are cached outside the project, so a second run takes seconds).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, percentiles, progress, write_result

from drivers.camera.images import place, read_image
from drivers.face.backends import build_encoder
from drivers.face.dlib_backend import import_face_recognition
from drivers.face.interface import Encoder
from drivers.face.pipeline import read_face
from drivers.face.quality import primary
from drivers.face.settings import (
    MOBILEFACENET_BIN_SHA256,
    MOBILEFACENET_PARAM_SHA256,
    DlibHogSettings,
    EncoderSettings,
    NcnnRecognizerSettings,
    QualitySettings,
    RefineSettings,
    YuNetSettings,
)
from drivers.face.yunet import YUNET_2023MAR_SHA256, YuNetRefiner
from models.matcher import Gallery, Template
from terminal.faces.calibrate import (
    cache_path,
    cache_tag,
    calibrate,
    default_cache_dir,
    list_images,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"
LFW = SHARED / "faces" / "lfw-dev"
YUNET = SHARED / "models" / "yunet" / "face_detection_yunet_2023mar.onnx"
MOBILEFACENET = SHARED / "models" / "mobilefacenet"
GALLERY = 100_000
# A whole city's card holders: beyond what face-only passage allows (faces.max_gallery), measured
# so that the cost of the search and of the matrix is known, not guessed. float16 only: float32
# would need 512 MB.
LARGE_GALLERY = 1_000_000
DIM = 128


def encoders(*, calibration: bool = False) -> dict[str, Encoder]:
    yunet = YuNetSettings(path=YUNET, sha256=YUNET_2023MAR_SHA256, score_threshold=0.6)
    # At the gate HOG runs on the frame shrunk to 320 px; for 250 px LFW photos one upsampling
    # pass is needed to find their ~100 px faces (what `ykt faces calibrate` uses).
    hog = DlibHogSettings(max_width=640 if calibration else 320, upsample=1)
    built = {
        "onnx": build_encoder(EncoderSettings("onnx", "dlib", yunet=yunet)),
        "dlib": build_encoder(EncoderSettings("dlib", dlib_hog=hog)),
    }
    param, weights = MOBILEFACENET / "mobilefacenet.param", MOBILEFACENET / "mobilefacenet.bin"
    if param.is_file() and weights.is_file():
        ncnn = NcnnRecognizerSettings(
            param=param,
            param_sha256=MOBILEFACENET_PARAM_SHA256,
            bin=weights,
            bin_sha256=MOBILEFACENET_BIN_SHA256,
        )
        for name, flip in (("ncnn", False), ("ncnn-flip", True)):
            settings = EncoderSettings(
                "onnx",
                "ncnn",
                yunet=yunet,
                ncnn=ncnn.model_copy(update={"flip": flip}),
                refine=RefineSettings(),
            )
            built[name] = build_encoder(settings)
    else:
        progress(f"MobileFaceNet not found at {MOBILEFACENET}: ncnn backend not measured")
    return built


def bench_pipeline(frames: int) -> dict[str, Any]:
    names = list_images(LFW)[:: max(1, len(list_images(LFW)) // frames)][:frames]
    images = [place(read_image(LFW / n), 640, 480) for n in names]
    gate = QualitySettings()
    out: dict[str, Any] = {"frames": len(images), "frame": "640x480"}
    for name, encoder in encoders().items():
        progress(f"pipeline {name}: {len(images)} frames")
        read_face(encoder, images[0], gate)  # warm-up: first call allocates
        total, detect, embed, network, embedded = [], [], [], [], 0
        for image in images:
            started = time.perf_counter_ns()
            faces = encoder.detect(image)
            detect.append(time.perf_counter_ns() - started)
            face = primary(faces, image)
            if face is not None:
                started = time.perf_counter_ns()
                encoder.embed(image, face)
                embed.append(time.perf_counter_ns() - started)
                started = time.perf_counter_ns()
                encoder.recognizer.embed(image, face)
                network.append(time.perf_counter_ns() - started)
            started = time.perf_counter_ns()
            embedded += read_face(encoder, image, gate).ok
            total.append(time.perf_counter_ns() - started)
        out[name] = {
            "model": encoder.model_id,
            "pipeline": percentiles(total),
            "detect": percentiles(detect),
            "embed": percentiles(embed),
            "align_and_network": percentiles(network),
            "frames_with_template": embedded,
        }
    backends = [name for name in out if isinstance(out[name], dict)]
    for name in backends:
        if name != "dlib":
            for part in ("pipeline", "detect", "embed"):
                out[f"ratio_dlib_over_{name}_{part}_p50"] = round(
                    out["dlib"][part]["p50_ms"] / out[name][part]["p50_ms"], 2
                )
    return out


def _vectors(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(count, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def bench_search_large(searches: int) -> dict[str, Any]:
    """1:N over :data:`LARGE_GALLERY` float16 templates, with float32 on the same vectors as
    the baseline of the same run (the float16 store converts blocks on every search)."""
    known = _vectors(LARGE_GALLERY, 3)
    probes = _vectors(searches, 4)
    out: dict[str, Any] = {"gallery": LARGE_GALLERY, "searches": searches, "dim": DIM}
    for store in ("float16", "float32"):
        progress(f"1:N search, {LARGE_GALLERY:,} templates, {store}")
        gallery = Gallery("bench", DIM, store=store)  # type: ignore[arg-type]
        for i in range(LARGE_GALLERY):
            gallery.add(f"h{i}", Template("bench", known[i]))
        samples = []
        for p in probes:
            t = time.perf_counter_ns()
            gallery.identify(Template("bench", p), threshold=0.5, margin=0.03)
            samples.append(time.perf_counter_ns() - t)
        out[store] = percentiles(samples) | {"matrix_mb": round(gallery.nbytes / 2**20, 1)}
        del gallery
    out["ratio_float16_over_float32_p50"] = round(
        out["float16"]["p50_ms"] / out["float32"]["p50_ms"], 1
    )
    return out


def bench_search(searches: int) -> dict[str, Any]:
    started = time.monotonic()
    known = _vectors(GALLERY, 1)
    probes = _vectors(searches, 2)
    generation_s = time.monotonic() - started
    out: dict[str, Any] = {"gallery": GALLERY, "searches": searches, "dim": DIM}
    for store in ("float32", "float16"):
        progress(f"1:N search, {GALLERY:,} templates, {store}")
        gallery = Gallery("bench", DIM, store=store)  # type: ignore[arg-type]
        t0 = time.monotonic()
        for i in range(GALLERY):
            gallery.add(f"h{i}", Template("bench", known[i]))
        build_s = time.monotonic() - t0
        samples = []
        for p in probes:
            probe = Template("bench", p)
            t = time.perf_counter_ns()
            gallery.identify(probe, threshold=0.951, margin=0.03)
            samples.append(time.perf_counter_ns() - t)
        out[f"ours_{store}"] = percentiles(samples) | {"build_s": round(build_s, 2)}
    face_recognition = import_face_recognition()
    as_array = known.astype(np.float64)  # what face_encodings() returns
    samples = []
    progress("1:N baseline: face_recognition.compare_faces + face_distance")
    for p in probes[: max(50, searches // 4)]:
        probe = p.astype(np.float64)
        t = time.perf_counter_ns()
        matches = face_recognition.compare_faces(as_array, probe, tolerance=0.6)
        distances = face_recognition.face_distance(as_array, probe)
        best = int(np.argmin(distances))
        _ = matches[best]
        samples.append(time.perf_counter_ns() - t)
    out["face_recognition"] = percentiles(samples)
    out["ratio_p99"] = round(out["face_recognition"]["p99_ms"] / out["ours_float32"]["p99_ms"], 1)
    out["ratio_p50"] = round(out["face_recognition"]["p50_ms"] / out["ours_float32"]["p50_ms"], 1)
    out["generation_s"] = round(generation_s, 2)
    return out


_RSS_PROBE = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from models.matcher import Gallery, Template
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
before = rss()
rng = np.random.default_rng(1)
g = Gallery('bench', {dim}, store={store!r})
for i in range({n}):
    v = rng.normal(size={dim}).astype(np.float32)
    g.add(f'h{{i:06d}}', Template.of('bench', v))
print(before, rss(), g.nbytes)
"""


def bench_memory() -> dict[str, Any]:
    out: dict[str, Any] = {"gallery": GALLERY, "large_gallery": LARGE_GALLERY}
    for store, n in (("float32", GALLERY), ("float16", GALLERY), ("float16_large", LARGE_GALLERY)):
        kind = store.removesuffix("_large")
        progress(f"RSS of a {n:,}-template gallery ({kind})")
        code = _RSS_PROBE.format(root=str(ROOT), dim=DIM, store=kind, n=n)
        text = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout  # fmt: skip
        before, after, matrix = (int(x) for x in text.split())
        out[store] = {
            "rss_before_mb": round(before / 2**20, 1),
            "rss_after_mb": round(after / 2**20, 1),
            "growth_mb": round((after - before) / 2**20, 1),
            "matrix_mb": round(matrix / 2**20, 1),
        }
    return out


def bench_calibration(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, encoder in encoders(calibration=True).items():
        cache = default_cache_dir()
        refiner = encoder.refiner
        tag = cache_tag(LFW.name, refiner.settings if isinstance(refiner, YuNetRefiner) else None)
        if quick and not cache_path(cache, encoder, list_images(LFW), tag).is_file():
            out[name] = "skipped in --quick: no cached encodings (run once without --quick)"
            continue
        progress(f"calibration {name} on lfw-dev (cached after the first run)")
        result = calibrate(encoder, LFW, cache_dir=cache, cache_tag=tag)
        out[name] = result.as_dict()
    return out


def table(result: dict[str, Any]) -> str:
    lines = []
    pipe = result["pipeline"]
    lines.append(f"pipeline per 640x480 frame ({pipe['frames']} frames), ms p50 / p99:")
    names = [name for name in pipe if isinstance(pipe[name], dict)]
    for name in names:
        p, d, e = pipe[name]["pipeline"], pipe[name]["detect"], pipe[name]["embed"]
        n = pipe[name]["align_and_network"]
        lines.append(f"  {name:9s} total {p['p50_ms']:7.1f} / {p['p99_ms']:7.1f}   "
                     f"detect {d['p50_ms']:6.1f} / {d['p99_ms']:6.1f}   "
                     f"embed {e['p50_ms']:6.1f} / {e['p99_ms']:6.1f}   "
                     f"align+network {n['p50_ms']:6.1f} / {n['p99_ms']:6.1f}")  # fmt: skip
    for name in names:
        if name != "dlib":
            ratios = ", ".join(f"{part} {pipe[f'ratio_dlib_over_{name}_{part}_p50']}x"
                               for part in ("pipeline", "detect", "embed"))  # fmt: skip
            lines.append(f"  ratio dlib ÷ {name} (p50): {ratios}")
    s = result["search"]
    lines.append(f"1:N over {s['gallery']:,} templates, ms p50 / p99:")
    for key in ("ours_float32", "ours_float16", "face_recognition"):
        lines.append(f"  {key:17s} {s[key]['p50_ms']:8.2f} / {s[key]['p99_ms']:8.2f}")
    lines.append(f"  ratio face_recognition ÷ ours (float32): p99 {s['ratio_p99']}x, "
                 f"p50 {s['ratio_p50']}x")  # fmt: skip
    large = result["search_large"]
    lines.append(f"1:N over {large['gallery']:,} templates, ms p50 / p99:")
    for key in ("float16", "float32"):
        lines.append(f"  {key:17s} {large[key]['p50_ms']:8.2f} / {large[key]['p99_ms']:8.2f}"
                     f"  (matrix {large[key]['matrix_mb']} MB)")  # fmt: skip
    lines.append(f"  ratio float16 ÷ float32 (p50): {large['ratio_float16_over_float32_p50']}x")
    m = result["memory"]
    for store in ("float32", "float16", "float16_large"):
        r = m[store]
        n = m["large_gallery"] if store.endswith("_large") else m["gallery"]
        lines.append(f"RSS growth, {n:,} templates {store.removesuffix('_large')}: "
                     f"{r['growth_mb']} MB (matrix {r['matrix_mb']} MB, process "
                     f"{r['rss_after_mb']} MB)")  # fmt: skip
    for name, cal in result["calibration"].items():
        if isinstance(cal, str):
            lines.append(f"calibration {name}: {cal}")
            continue
        points = ", ".join(f"FAR {p['far_target']:.0e}: TAR {p['tar']:.1%} @ {p['threshold']}"
                           for p in cal["points"])  # fmt: skip
        lines.append(f"calibration {name} ({cal['model_id']}): {points}; EER {cal['eer']:.2%}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, < 1 minute")
    args = parser.parse_args()
    if not (LFW / "pairs.tsv").is_file() or not YUNET.is_file():
        print(f"needs the shared test data at {SHARED.resolve()} (lfw-dev, yunet)")
        return 2
    result: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    result["pipeline"] = bench_pipeline(12 if args.quick else 60)
    result["search"] = bench_search(200 if args.quick else 1000)
    result["search_large"] = bench_search_large(50 if args.quick else 200)
    result["memory"] = bench_memory()
    result["calibration"] = bench_calibration(args.quick)
    print(table(result))
    print(f"written {write_result('faces', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
