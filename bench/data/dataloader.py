"""PyTorch's DataLoader peer of the image-ingest benchmark (bench/data/run.sh), the baseline
of Ray Data's published comparison: an IterableDataset sharded per worker opens each JPEG
with PIL, crops 224 x 224 at random and flips it at random (torchvision's RandomCrop and
RandomHorizontalFlip), and the DataLoader stacks batches of 256 uint8 images [256, 224, 224,
3] (with `normalize`: float32, ImageNet's mean and std); the consumer touches every byte.

    /usr/bin/python3 bench/data/dataloader.py DIR [MAX_WORKERS [normalize]]

Each num_workers from 1 to MAX_WORKERS (default 4) runs in a process of its own (so that its
peak RSS is its own); every run goes to stderr and the best, by images/s, to stdout as the
JSON line run.sh collects. Peak RSS is the driver's plus its largest worker's (getrusage
gives the largest child, not their sum); cpu_s is the run's CPU time, user and system, the
driver's and its workers' (not the imports')."""
import json
import os
import resource
import subprocess
import sys
import time

CROP = 224
BATCH = 256
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def one_run(folder, workers, normalize):
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info
    from torchvision import transforms

    def cpu():  # this process's and its waited-for children's (the workers'), user and system
        me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                    resource.RUSAGE_CHILDREN))
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    cpu0 = cpu()
    start = time.monotonic()  # from the listing on, as the other peers' reads list their files
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                   if f.lower().endswith((".jpg", ".jpeg")))
    crop_flip = transforms.Compose([transforms.RandomCrop(CROP),
                                    transforms.RandomHorizontalFlip()])
    mean = torch.tensor(MEAN).view(1, 1, 3) * 255
    std = torch.tensor(STD).view(1, 1, 3) * 255

    class Jpegs(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            mine = files if info is None else files[info.id::info.num_workers]
            for path in mine:
                with Image.open(path) as im:
                    img = crop_flip(im.convert("RGB"))
                t = torch.from_numpy(np.array(img, dtype=np.uint8))  # [224, 224, 3]
                yield (t.float() - mean) / std if normalize else t

    loader = DataLoader(Jpegs(), batch_size=BATCH, num_workers=workers)
    first = None
    images = 0
    checksum = 0
    for batch in loader:
        if first is None:
            first = time.monotonic() - start
        images += batch.shape[0]
        # every byte read: floats summed by torch, bytes by numpy (Debian's torch sums
        # a uint8 tensor 80 times slower: 0.9 s a batch, more than the batch's decode)
        checksum += (int(batch.numpy().sum(dtype=np.uint64)) if batch.dtype == torch.uint8
                     else int(batch.sum().item()))
    secs = time.monotonic() - start
    del loader  # its workers stop and are waited for: their CPU time counts
    cpu_s = cpu() - cpu0
    per_image = CROP * CROP * 3 * (4 if normalize else 1)
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss +
           resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return {"peer": "PyTorch DataLoader%s (%d workers)" % (", float32" if normalize else "",
                                                           workers),
            "images": images, "seconds": round(secs, 3),
            "images_per_s": round(images / secs, 1),
            "mb_per_s": round(images * per_image / secs / 1e6, 1),
            "first_batch_s": round(first or 0.0, 3), "peak_rss_mb": round(rss, 1),
            "cpu_s": round(cpu_s, 3), "checksum": checksum}


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--one":
        folder, workers, normalize = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
        print(json.dumps(one_run(folder, workers, normalize)))
        return 0
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    folder = sys.argv[1]
    most = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    normalize = len(sys.argv) > 3 and sys.argv[3] == "normalize"
    best = None
    for workers in range(1, most + 1):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", folder,
                              str(workers), "1" if normalize else "0"],
                             capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        sys.stderr.write("dataloader: %s: %.1f images/s, first batch %.3f s, %.1f MB\n" % (
            r["peer"], r["images_per_s"], r["first_batch_s"], r["peak_rss_mb"]))
        if best is None or r["images_per_s"] > best["images_per_s"]:
            best = r
    best["peer"] = best["peer"].replace("(", "(best of 1-%d: " % most)
    print(json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
