"""Align a whole tree of raw photos (one sub-folder per identity) into 112x112 crops.

:func:`align_folder` is what ``gluonfr-align SRC DST`` runs. Per photo a worker decodes it,
detects the faces, keeps the most prominent one (largest box), aligns it with ``norm_crop``
and writes ``DST/<identity>/<stem>.jpg`` atomically. The main process appends each result
to ``DST/.align-journal.jsonl`` after the crop is in place, so a run that is interrupted (even
killed) resumes where it stopped: photos in the journal are not processed again, and a crop
written just before the kill is simply rewritten. At the end ``DST/landmarks.json`` (the 5
points of each kept face in the *source* photo's pixels, keyed by the source's relative path,
readable by :func:`gluonfr.data.align.read_landmarks`) and ``DST/report.json`` /
``DST/report.txt`` (photos without a face, unreadable photos, photos with several faces and
which one was kept and why) are written.
"""
import json
import os

import cv2
import numpy as np
from tqdm import tqdm

from ..data._io import DataFormatError
from ..data.image import read_image
from ..data.pack import list_identity_folders
from ..utils.fileio import atomic_open, stale_temporaries
from . import FaceDetector, NoFaceError, detect_and_align, detector_config, detector_from_config

__all__ = ["align_folder", "JOURNAL", "REPORT", "LANDMARKS"]

JOURNAL = ".align-journal.jsonl"
REPORT = "report.json"
LANDMARKS = "landmarks.json"


def _write_jpeg(path, image_bgr, quality):
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot JPEG-encode the crop for {path}")
    with atomic_open(path, "wb") as f:
        f.write(buf.tobytes())


def _align_one(job):
    """Worker: one photo -> its journal record (the crop is on disk when this returns)."""
    src, rel, out, config, size, rule, quality = job
    record = {"source": rel, "output": None}
    try:
        image = read_image(src, "bgr")
    except (OSError, DataFormatError):
        record["status"] = "unreadable"
        return record
    detector = detector_from_config(config)
    try:
        crop, index, faces = detect_and_align(detector, image, src, size, rule)
    except NoFaceError:
        record["status"] = "no_face"
        record["size_wh"] = [image.shape[1], image.shape[0]]
        return record
    _write_jpeg(out, crop, quality)
    kept = faces[index]
    record.update(status="ok", output=os.path.relpath(out, os.path.dirname(os.path.dirname(out))),
                  landmarks5=np.round(kept.landmarks, 2).tolist(),
                  box_xywh=np.round(kept.box, 1).tolist(), score=round(kept.score, 4),
                  faces=len(faces), kept=index,
                  others=[{"box_xywh": np.round(f.box, 1).tolist(), "score": round(f.score, 4)}
                          for k, f in enumerate(faces) if k != index])
    return record


def _read_journal(path):
    done = {}
    if not os.path.exists(path):
        return done
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a killed run may be cut short
            done[record["source"]] = record
    return done


def _remove_stale_temps(folder):
    """Remove the temporaries of atomic writes a killed run left behind."""
    for path in stale_temporaries(folder):
        os.remove(path)


def _plan(src, dst):
    jobs, outputs = [], {}
    for identity, files in list_identity_folders(src):
        _remove_stale_temps(os.path.join(dst, identity))
        for path in files:
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            stem = os.path.splitext(os.path.basename(path))[0]
            out = os.path.join(dst, identity, stem + ".jpg")
            if out in outputs:
                raise ValueError(f"align_folder: {rel} and {outputs[out]} would both be written "
                                 f"to {out}; rename one of them")
            outputs[out] = rel
            jobs.append((path, rel, out))
    if not jobs:
        raise ValueError(f"align_folder: {src!r} holds no images in identity sub-folders "
                         f"(expected {src}/<identity>/<image>.jpg)")
    return jobs


def _why(record, rule):
    kept = record["box_xywh"]
    sizes = ", ".join(f"{o['box_xywh'][2]:.0f}x{o['box_xywh'][3]:.0f} (score {o['score']:.2f})"
                      for o in record["others"])
    what = "largest box" if rule == "largest" else "best score"
    return (f"kept the {what}: {kept[2]:.0f}x{kept[3]:.0f} (score {record['score']:.2f}); "
            f"left {sizes}")


def align_folder(src, dst, detector=None, num_workers=0, size=112, rule="largest",
                 quality=95, progress=True):
    """Align every photo of ``src/<identity>/`` into ``dst/<identity>/<stem>.jpg``.

    Parameters
    ----------
    src : str
        One sub-folder of raw photos per identity (CASIA-WebFace, VGGFace2, LFW layout).
    dst : str
        Output tree (created). Run again with the same ``dst`` to resume.
    detector : FaceDetector, optional
        Default: ``FaceDetector()``. Workers rebuild it from its settings.
    num_workers : int
        Worker processes (0: this process).
    size : int
        Side of the aligned crops.
    rule : {'largest', 'score'}
        Which face to keep when a photo has several.
    quality : int
        JPEG quality of the crops.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    dict
        The report: ``total``, ``aligned``, ``resumed`` (photos done by an earlier run),
        ``no_face``, ``unreadable`` (lists of source paths), ``several_faces`` (list of
        ``{source, faces, kept, why}``) and the paths of ``landmarks`` and ``report``.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if rule not in ("largest", "score"):
        raise ValueError(f"rule must be 'largest' or 'score', got {rule!r}")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError("align_folder: dst must differ from src")
    detector = FaceDetector() if detector is None else detector
    config = detector_config(detector)
    planned = _plan(src, dst)
    os.makedirs(dst, exist_ok=True)
    journal_path = os.path.join(dst, JOURNAL)
    done = _read_journal(journal_path)
    resumed = sum(rel in done for _, rel, _ in planned)
    todo = [(path, rel, out, config, int(size), rule, int(quality))
            for path, rel, out in planned if rel not in done]
    with open(journal_path, "a", encoding="utf-8") as journal, \
            tqdm(total=len(planned), initial=resumed, desc="aligning", unit="img",
                 disable=not progress) as bar:
        for record in _run(todo, num_workers):
            journal.write(json.dumps(record) + "\n")
            journal.flush()
            done[record["source"]] = record
            bar.update(1)
    records = [done[rel] for _, rel, _ in planned]
    report = {
        "src": os.path.abspath(src), "total": len(records),
        "aligned": sum(r["status"] == "ok" for r in records), "resumed": resumed,
        "no_face": [r["source"] for r in records if r["status"] == "no_face"],
        "unreadable": [r["source"] for r in records if r["status"] == "unreadable"],
        "several_faces": [{"source": r["source"], "faces": r["faces"], "kept": r["output"],
                           "why": _why(r, rule)}
                          for r in records if r["status"] == "ok" and r["faces"] > 1],
    }
    table = {r["source"]: {k: r[k] for k in ("landmarks5", "box_xywh", "score", "output")}
             for r in records if r["status"] == "ok"}
    paths = {"landmarks": os.path.join(dst, LANDMARKS), "report": os.path.join(dst, REPORT),
             "text": os.path.join(dst, "report.txt")}
    with atomic_open(paths["landmarks"], "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1)
    with atomic_open(paths["text"], "w", encoding="utf-8") as f:
        f.write(_report_text(report))
    with atomic_open(paths["report"], "w", encoding="utf-8") as f:  # last: marks a finished run
        json.dump(report, f, indent=1)
    report.update(landmarks=paths["landmarks"], report=paths["report"])
    return report


def _report_text(report):
    lines = [f"{report['aligned']} of {report['total']} photos aligned from {report['src']}",
             f"no face found ({len(report['no_face'])}):"]
    lines += [f"  {p}" for p in report["no_face"]]
    lines.append(f"unreadable ({len(report['unreadable'])}):")
    lines += [f"  {p}" for p in report["unreadable"]]
    lines.append(f"several faces ({len(report['several_faces'])}):")
    lines += [f"  {e['source']}: {e['faces']} faces, {e['why']}" for e in report["several_faces"]]
    return "\n".join(lines) + "\n"


def _worker_init():
    cv2.setNumThreads(1)  # the processes are the parallelism; OpenCV's own threads would fight


def _run(jobs, num_workers):
    if num_workers and num_workers > 0 and len(jobs) > 1:
        import multiprocessing as mp

        # spawn, not fork: a child forked from a process whose OpenCV / MXNet thread pools
        # have run can deadlock on a lock held by a thread that does not exist in the child
        ctx = mp.get_context("spawn")
        with ctx.Pool(num_workers, initializer=_worker_init) as pool:
            yield from pool.imap_unordered(_align_one, jobs, chunksize=4)
    else:
        for job in jobs:
            yield _align_one(job)
