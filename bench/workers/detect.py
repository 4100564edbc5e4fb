"""Worker: face detection + alignment images/s (gluonfr.detect, YuNet via cv2.FaceDetectorYN).

Modes
-----
photos   detect + norm_crop the most prominent face of each real photo (shared/data/real-faces,
         910x1137 .. 1434x2333 and 512x512; the detector scales photos above 1280 px down)
vga      the same on 640x480 images (each real photo's face pasted into a 640x480 frame)
folder   ``align_folder`` on a tree of 640x480 photos with ``--workers`` processes
         (decode + detect + align + JPEG write + journal), timed end to end
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)
from gluonfr.detect import FaceDetector, detect_and_align  # noqa: E402

import _util  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FACES = os.path.join(REPO, "..", "shared", "data", "real-faces")
MODEL = os.path.join(REPO, "..", "shared", "data", "models", "face_detection_yunet_2023mar.onnx")


def photos():
    names = sorted(n for n in os.listdir(FACES) if n.endswith((".jpg", ".png")))
    return [cv2.imread(os.path.join(FACES, n)) for n in names]


def vga_frames():
    """Each photo scaled so its longer side is 480, centred in a 640x480 grey frame."""
    frames = []
    for img in photos():
        s = 480 / max(img.shape[:2])
        small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        frame = np.full((480, 640, 3), 110, np.uint8)
        h, w = small.shape[:2]
        y, x = (480 - h) // 2, (640 - w) // 2
        frame[y:y + h, x:x + w] = small
        frames.append(frame)
    return frames


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("photos", "vga", "folder"), required=True)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--copies", type=int, default=24, help="folder mode: copies of each frame")
    args = p.parse_args()
    detector = FaceDetector(MODEL if os.path.isfile(MODEL) else None)
    out = {"mode": args.mode}
    if args.mode in ("photos", "vga"):
        images = photos() if args.mode == "photos" else vga_frames()

        def step():
            for img in images:
                detect_and_align(detector, img)

        times = _util.timed(step, warmup=1, seconds=args.seconds)
        stats = _util.summarise(times)
        out.update(images_per_s=len(images) / stats["median_s"], timing=stats,
                   sizes=[list(img.shape[1::-1]) for img in images])
    else:
        from gluonfr.detect.folder import align_folder

        work = tempfile.mkdtemp(prefix="bench-align-", dir=".")
        try:
            src = os.path.join(work, "src")
            for k, frame in enumerate(vga_frames()):
                os.makedirs(os.path.join(src, f"id{k}"))
                for c in range(args.copies):
                    cv2.imwrite(os.path.join(src, f"id{k}", f"{c:03d}.jpg"), frame)
            t0 = time.perf_counter()
            report = align_folder(src, os.path.join(work, "dst"), detector,
                                  num_workers=args.workers, progress=False)
            seconds = time.perf_counter() - t0
        finally:
            shutil.rmtree(work, ignore_errors=True)
        out.update(images_per_s=report["total"] / seconds, seconds=seconds,
                   total=report["total"], aligned=report["aligned"], workers=args.workers)
    _util.emit(out)


if __name__ == "__main__":
    main()
