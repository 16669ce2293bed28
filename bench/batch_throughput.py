#!/usr/bin/env python3
"""Throughput of ``refocus batch`` on twelve-megapixel photos, with 1 and 2 jobs.

    python bench/batch_throughput.py [--photos 20] [--jobs 1,2] [--preset portrait] [--work DIR]

Builds a folder of 4000x3000 JPEGs (quality 92) from the sample photos in
``../shared/data`` (upscaled and cropped, with a little grain so the files are of realistic
size), then runs the real command ``refocus batch FOLDER -o OUT --preset portrait --jobs N``
for each N and prints the wall time, seconds per photo, photos per minute and the peak
memory: the largest sum of resident memory over the command's process and its workers
(sampled every 0.2 s from /proc), and the largest single process.  The load average is
printed too: on a shared machine other work slows the runs down.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
SOURCES = ["portraits/obama_official_portrait.jpg", "historic/Grace_Hopper_1984_USNavy.jpg",
           "portraits/coffee.png", "portraits/astronaut.png", "portraits/rocket.jpg",
           "paintings/great_wave_hokusai.jpg", "portraits/motorcycle_left.png", "historic/Curies_lab_c1904.jpg"]


def make_photos(folder: Path, n: int, width: int = 4000, height: int = 3000):
    import cv2
    import numpy as np
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    srcs = [DATA / s for s in SOURCES if (DATA / s).is_file()]
    if not srcs:
        sys.exit(f"no sample photos in {DATA}")
    for i in range(n):
        img = cv2.imread(str(srcs[i % len(srcs)]), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        s = max(width / w, height / h) * (1.0 + 0.05 * (i // len(srcs)))    # repeats: another crop
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
        y0, x0 = (img.shape[0] - height) // 2, (img.shape[1] - width) // 2
        img = img[y0:y0 + height, x0:x0 + width]
        img = np.clip(img.astype(np.int16) + rng.integers(-3, 4, img.shape, dtype=np.int16), 0, 255)
        cv2.imwrite(str(folder / f"photo_{i:02d}.jpg"), img.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    children: dict = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_once(folder: Path, out: Path, jobs: int, preset: str) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "refocus.cli", "batch", str(folder), "-o", str(out), "--preset", preset,
           "--jobs", str(jobs), "--quiet"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_sum = peak_one = 0
    while p.poll() is None:
        rss = [_rss(q) for q in _tree(p.pid)]
        peak_sum = max(peak_sum, sum(rss))
        peak_one = max([peak_one] + rss)
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    output = p.stdout.read()
    if p.returncode != 0:
        print(output)
        sys.exit(f"refocus batch --jobs {jobs} failed with exit code {p.returncode}")
    n = len(list(out.glob("*.jpg")))
    return {"jobs": jobs, "photos": n, "wall": wall, "peak_sum": peak_sum, "peak_one": peak_one}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--preset", default="portrait")
    ap.add_argument("--work", type=Path, default=None, help="folder for the photos (default: a temp folder)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="refocus_batch_bench_"))
    folder = work / "photos"
    t0 = time.perf_counter()
    make_photos(folder, args.photos)
    print(f"{args.photos} photos of 4000x3000 in {folder} ({time.perf_counter() - t0:.0f} s to make); "
          f"{os.cpu_count()} cores")
    results = []
    for jobs in [int(j) for j in args.jobs.split(",")]:
        r = run_once(folder, work / f"out_j{jobs}", jobs, args.preset)
        results.append(r)
        load = "; load average after: %.1f (1 min), %.1f (5 min)" % os.getloadavg()[:2] \
            if hasattr(os, "getloadavg") else ""
        print(f"--jobs {r['jobs']}: {r['photos']} photos in {r['wall']:.1f} s = {r['wall'] / r['photos']:.2f} s/photo, "
              f"{60 * r['photos'] / r['wall']:.2f} photos/min; peak memory {r['peak_sum'] / 2**30:.2f} GiB "
              f"(all processes), {r['peak_one'] / 2**30:.2f} GiB (largest process){load}", flush=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
