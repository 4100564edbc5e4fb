"""Face detection + alignment images/s (gluonfr.detect; gluon-face has no detector).

Detection (YuNet 2023mar through ``cv2.FaceDetectorYN``) + ``norm_crop`` of the most
prominent face, on the real photos (``../shared/data/real-faces``, large photos scaled to
1280 px before detection) and on 640x480 frames; then ``gluonfr-align``'s library function on
a tree of 144 photos of 640x480 with 0 and 2 worker processes (decode, detect, align, JPEG
write and journal, end to end, the workers' start-up included). No baseline column: the
figures are absolute, and 2 workers are compared with 0.
"""
from bench.common import Figure, median, median_ratio, print_table, rounds


def run(quick=False):
    seconds = "0.3" if quick else "3"
    repeats = 1 if quick else 3
    copies = "1" if quick else "24"
    variants = {
        "photos": ("ours", "detect", ["--mode", "photos", "--seconds", seconds]),
        "vga": ("ours", "detect", ["--mode", "vga", "--seconds", seconds]),
        "folder0": ("ours", "detect", ["--mode", "folder", "--workers", 0, "--copies", copies]),
        "folder2": ("ours", "detect", ["--mode", "folder", "--workers", 2, "--copies", copies]),
    }
    runs = rounds(variants, repeats, progress="detect")
    v = {k: [r["images_per_s"] for r in rs] for k, rs in runs.items()}
    figures = [
        Figure("detect", "detect + align, real photos (512..2333 px)", median(v["photos"]),
               unit="img/s", note="6 photos, the long ones scaled to 1280 px",
               runs=v["photos"]),
        Figure("detect", "detect + align, 640x480", median(v["vga"]), unit="img/s",
               runs=v["vga"]),
        Figure("detect", "align_folder 0 workers (640x480, end to end)", median(v["folder0"]),
               unit="img/s", runs=v["folder0"]),
    ]
    r = median_ratio(v["folder2"], v["folder0"])
    figures.append(Figure("detect", "align_folder 2 workers vs 0 workers", median(v["folder2"]),
                          median(v["folder0"]), unit="img/s", ratio=r, target="> 1x",
                          met=r is not None and r > 1,
                          note="baseline column: align_folder with 0 workers"))
    print_table("face detection + alignment (images/s, higher is better)", figures)
    return figures
