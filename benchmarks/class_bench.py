"""Does a class-conditional G draw each class? Per-class checks of a checkpoint on a labelled dataset.

For a conditional checkpoint trained on a labelled prepared dataset (e.g. `sagan prepare synthetic
--classes 3`: red discs, green squares, blue triangles), per class c:

* **class agreement** (colour): the share of G(z, c) that a small CNN trained on the *real* labelled
  images assigns to class c (the "GAN-test" accuracy of Shmelkov, Schmid & Alahari, ECCV 2018);
* **shape agreement**: the same with a second CNN that sees only grey images, the plain mean of the three
  channels. The synthetic classes' colours are hues of equal saturation and value a third of the hue
  circle apart (red, green, blue), whose channel means are equal, so this CNN can tell the classes apart
  only by the outline of their shapes;
* the **mirror error** of the class's images (metrics/mirror.py; the data's is 0).

Both classifiers are trained here, on a fixed split of the real images (seeded, a few epochs on the CPU),
and their accuracy on the held-out real images is reported beside the generated images' agreement: it is
the ceiling the generator is measured against. The images come from the EMA generator with standing
statistics, as `sagan sample` and `sagan evaluate` draw them (seeds 0..N-1 for every class).

    python benchmarks/class_bench.py RUN/checkpoints/latest.pt --data data/synthetic-32-c3
    python benchmarks/class_bench.py CKPT --data DIR --json docs/perf/class-synthetic3-cpu.json

Not a test: nothing is asserted (tests/test_benchmarks.py runs it on a tiny model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ckpt", type=Path)
    p.add_argument("--data", type=Path, required=True, help="the labelled prepared dataset it was trained on")
    p.add_argument("--num", type=int, default=512, help="generated images per class")
    p.add_argument("--epochs", type=int, default=8, help="classifier training epochs")
    p.add_argument("--holdout", type=float, default=0.2, help="share of the real images held out to test the classifiers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--from-json", type=Path, default=None, help="render saved results instead of measuring")
    return p.parse_args(argv)


def grey(x):
    """uint8 B×3×H×W → float B×1×H×W, the channels' mean on [0, 1] (not luminance: its weights would tell
    a red shape from a blue one)."""
    return x.float().mean(1, keepdim=True) / 255.0


def colour(x):
    return x.float() / 255.0


def classifier(channels: int, classes: int):
    from torch import nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(channels, 16), *block(16, 32), *block(32, 64), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(64, classes))


def train_classifier(view, images, labels, classes: int, epochs: int, seed: int):
    """A CNN on ``view(images)`` → labels (Adam, batch 64, seeded); returned in eval mode."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    net = classifier(view(images[:1]).shape[1], classes)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for i in range(0, len(images), 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(net(view(images[idx])), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def predict(net, view, images):
    import torch

    with torch.no_grad():
        return torch.cat([net(view(images[i : i + 256])).argmax(1) for i in range(0, len(images), 256)])


def generate(G, cfg, klass: int, num: int):
    """uint8 B×3×H×W images of class ``klass`` from ``G``, seeds 0..num-1, through `sagan evaluate`'s own source
    (image i is what `sagan sample --class K --seeds i` draws)."""
    import torch

    from sagan_cli.metrics.sources import GeneratorSource

    src = GeneratorSource(G, cfg.z_dim, range(num), torch.device("cpu"), cfg.imsize, cfg.num_classes, klass)
    return torch.cat(list(src.batches(128)))


def run(args) -> dict:
    import numpy as np
    import torch

    from bench_measure import environment
    from sagan_cli.data.dataset import open_dataset
    from sagan_cli.inspect.classes import class_names
    from sagan_cli.metrics.mirror import mirror_errors
    from sagan_cli.models.load import load_generator, model_config
    from sagan_cli.train.checkpoint import load_checkpoint

    state = load_checkpoint(args.ckpt)
    cfg = model_config(state)
    ds = open_dataset(args.data, cfg.imsize)
    if ds.labels is None or not cfg.num_classes:
        raise SystemExit("class_bench needs a conditional checkpoint and the labelled dataset it was trained on")
    if len(ds.classes) != cfg.num_classes:
        raise SystemExit(f"the checkpoint has {cfg.num_classes} classes, {args.data} has {len(ds.classes)}")
    images, labels = torch.from_numpy(np.array(ds.images)), torch.from_numpy(np.array(ds.labels))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))
    cut = int(len(images) * (1 - args.holdout))
    train, test = order[:cut], order[cut:]
    views = {"colour": colour, "shape": grey}
    nets = {k: train_classifier(v, images[train], labels[train], cfg.num_classes, args.epochs, args.seed)
            for k, v in views.items()}
    real_acc = {k: float((predict(nets[k], views[k], images[test]) == labels[test]).float().mean()) for k in views}
    names = class_names(state, cfg.num_classes)
    G, _ = load_generator(state, True, torch.device("cpu"), standing=True)  # the EMA G, as `sample` draws it
    rows = []
    for c in range(cfg.num_classes):
        fake = generate(G, cfg, c, args.num)
        real_c = images[test][labels[test] == c]
        row = {"class": c, "name": names[c], "num": args.num,
               "mirror_error": round(float(mirror_errors(fake).mean()), 5),
               "mirror_error_real": round(float(mirror_errors(real_c).mean()), 5) if len(real_c) else None}
        for k in views:
            row[f"{k}_agreement"] = round(float((predict(nets[k], views[k], fake) == c).float().mean()), 4)
            row[f"{k}_real"] = (round(float((predict(nets[k], views[k], real_c) == c).float().mean()), 4)
                                if len(real_c) else None)
        rows.append(row)
    return {"environment": environment(torch.device("cpu")),
            "settings": {"ckpt": str(args.ckpt), "step": int(state.get("step", 0)), "data": str(args.data),
                         "num": args.num, "epochs": args.epochs, "holdout": args.holdout, "seed": args.seed,
                         "train_images": len(train), "test_images": len(test)},
            "classifier_accuracy_real": {k: round(v, 4) for k, v in real_acc.items()}, "classes": rows}


def markdown(res: dict) -> str:
    s, acc = res["settings"], res["classifier_accuracy_real"]
    lines = [f"Checkpoint at step {s['step']}; {s['num']} generated images per class (EMA G, standing statistics); "
             f"classifiers trained on {s['train_images']} real images, tested on {s['test_images']} held out: "
             f"accuracy {acc['colour']:.4f} (colour), {acc['shape']:.4f} (shape, grey images).", "",
             "| class | class agreement (colour) | shape agreement (grey) | mirror error | real: colour / shape / mirror |",
             "|---|---|---|---|---|"]
    for r in res["classes"]:
        lines.append(f"| {r['class']} {r['name']} | {r['colour_agreement']:.4f} | {r['shape_agreement']:.4f} | "
                     f"{r['mirror_error']:.4f} | {r['colour_real']:.4f} / {r['shape_real']:.4f} / "
                     f"{r['mirror_error_real']:.4f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from bench_measure import save_and_print

    args = parse_args(argv)
    return save_and_print(json.loads(args.from_json.read_text()) if args.from_json else run(args), args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
