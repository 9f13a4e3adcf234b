"""Bad input to every subcommand: one `error:` line on stderr, a non-zero exit, no traceback — and the exact
message listed in docs/errors.md (one table row per case, checked here so the page cannot go stale).

Each case runs in-process in a fresh workspace (cwd) holding `data/tiny-32` (a 32px dataset), `runs/00000-tiny-32`
(a run trained 2 steps), `ckpt.pt` (a copy of its latest.pt) and whatever the case's setup adds. Hidden base
options keep the runs tiny and on the CPU; the docs show only the case's own arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bad_input_helpers import SETUPS, argv, bad_data, check_documented, doc_rows, normalise, skip_reason
from bad_input_helpers import workspace  # noqa: F401  (a fixture)
from conftest import assert_one_line_error, run_sagan
from faults_helpers import RUN


@dataclass(frozen=True)
class Case:
    id: str
    command: str  # "train", "prepare lsun", ...
    args: str  # the case's own arguments (shlex), shown in the docs
    fragment: str  # what the message must be about
    setup: tuple[str, ...] = ()
    base: bool = True
    code: int = 2
    xfail: str | None = None
    needs: str | None = None  # "no-cuda" | "no-mps" | "no-tensorboard"
    exact: bool = True  # False: the docs must match up to the first " (" (the rest is a library's words)


def C(id, command, args, fragment, *setup, **kw):
    return Case(id, command, args, fragment, tuple(setup), **kw)


CKPT_KINDS = [  # (name, setup, fragment): a file given where a sagan checkpoint is expected
    ("directory", "somedir", "dir", "got a directory"),
    ("text", "notes.txt", "text", "it is a text file"),
    ("png", "image.png", "png", "it is a PNG image"),
    ("empty", "empty.pt", "empty", "it is an empty file"),
    ("npy", "array.npy", "npy", "it is a NumPy array file"),
    ("json", f"{RUN}/config.json", None, "it is a JSON file"),
    ("raw-pickle", "pickle.pkl", "raw-pickle", "a raw Python pickle"),
    ("truncated", "truncated.pt", "truncated", "truncated or corrupt"),
    ("foreign", "foreign.pt", "foreign", "no 'sagan-checkpoint' marker"),
    ("newer", "newer.pt", "newer", "written by a newer sagan"),
    ("incomplete", "incomplete.pt", "incomplete", "incomplete sagan checkpoint"),
    ("payload", "payload.pt", "payload", "refused to load, it holds pickled objects"),
]


def _ckpt_cases(prefix, command, extra, only=None):
    # torch words its weights_only refusal differently from version to version: the docs show ours
    return [C(f"{prefix}-checkpoint-{name}", command, f"{path} {extra}".strip(), frag, *([s] if s else []),
              exact=name != "payload")
            for name, path, s, frag in CKPT_KINDS if only is None or name in only]


CASES = [
    # ---------------------------------------------------------------- train
    C("train-steps-zero", "train", "--steps 0", "'--steps'"),
    C("train-steps-not-a-number", "train", "--steps abc", "'--steps'"),
    C("train-batch-zero", "train", "--batch 0", "'--batch'"),
    C("train-batch-larger-than-dataset", "train", "--batch 65", "larger than the dataset"),
    C("train-imsize-unsupported", "train", "--imsize 48", "--imsize must be one of"),
    C("train-imsize-not-a-number", "train", "--imsize abc", "'--imsize'"),
    C("train-z-dim-zero", "train", "--z-dim 0", "'--z-dim'"),
    C("train-g-conv-dim-zero", "train", "--g-conv-dim 0", "'--g-conv-dim'"),
    C("train-log-every-zero", "train", "--log-every 0", "'--log-every'"),
    C("train-ckpt-every-zero", "train", "--ckpt-every 0", "'--ckpt-every'"),
    C("train-keep-ckpts-zero", "train", "--keep-ckpts 0", "'--keep-ckpts'"),
    C("train-num-samples-zero", "train", "--num-samples 0", "'--num-samples'"),
    C("train-eval-every-negative", "train", "--eval-every -1", "'--eval-every'"),
    C("train-eval-metrics-unknown", "train", "--eval-every 2 --eval-metrics swd,bogus", "unknown metric bogus"),
    C("train-eval-num-too-small", "train", "--eval-num 1", "'--eval-num'"),
    C("train-seed-negative", "train", "--seed -1", "'--seed'"),
    C("train-ema-start-negative", "train", "--ema-start -1", "'--ema-start'"),
    C("train-lr-negative", "train", "--lr-d -1", "--lr-d must be > 0"),
    C("train-lr-zero", "train", "--lr-g 0", "--lr-g must be > 0"),
    C("train-lr-nan", "train", "--lr-g nan", "--lr-g must be > 0"),
    C("train-lr-infinite", "train", "--lr-g inf", "--lr-g must be finite"),
    C("train-lr-not-a-number", "train", "--lr-g fast", "'--lr-g'"),
    C("train-beta1-negative", "train", "--beta1 -0.5", "--beta1 must be in [0, 1)"),
    C("train-beta2-too-large", "train", "--beta2 1.5", "--beta2 must be in [0, 1)"),
    C("train-ema-decay-one", "train", "--ema-decay 1", "--ema-decay must be in (0, 1)"),
    C("train-loss-unknown", "train", "--loss bogus", "--loss 'bogus' is not one of"),
    C("train-gp-weight-negative", "train", "--loss wgan-gp --gp-weight -1", "--gp-weight must be finite and >= 0"),
    C("train-gp-weight-without-penalty", "train", "--gp-weight 5", "--loss hinge has none"),
    C("train-n-dis-zero", "train", "--n-dis 0", "'--n-dis'"),
    C("train-diffaug-unknown", "train", "--diffaug color,blur", "--diffaug policy 'blur' is not one of: color, translation, cutout"),
    C("train-lr-decay-zero", "train", "--lr-decay 0", "--lr-decay must be in (0, 1]"),
    C("train-lr-decay-above-one", "train", "--lr-decay 1.5", "--lr-decay must be in (0, 1]"),
    C("train-lr-decay-every-zero", "train", "--lr-decay-every 0", "'--lr-decay-every'"),
    C("train-attention-unknown", "train", "--attention fancy", "'--attention'"),
    C("train-arch-resnet-imsize-unsupported", "train", "--arch resnet --imsize 512", "--arch resnet does not support imsize 512"),
    C("train-init-unknown", "train", "--init lecun", "'--init'"),
    C("train-fake-labels-unknown", "train", "--fake-labels balanced", "'--fake-labels'"),
    C("train-g-attn-no-such-map", "train", "--g-attn 64", "--g-attn 64"),
    C("train-g-attn-malformed", "train", "--g-attn x,y", "--g-attn"),
    C("train-d-attn-no-such-map", "train", "--d-attn 3", "--d-attn 3"),
    C("train-device-unknown", "train", "--device tpu", "--device 'tpu'"),
    C("train-device-malformed", "train", "--device cuda:x", "--device 'cuda:x'"),
    C("train-device-no-cuda", "train", "--device cuda", "CUDA is not available", needs="no-cuda"),
    C("train-device-no-such-gpu", "train", "--device cuda:3", "--device cuda:3", needs="no-cuda"),
    C("train-device-no-mps", "train", "--device mps", "MPS", needs="no-mps"),
    C("train-unknown-option", "train", "--bogus", "--bogus"),
    C("train-extra-argument", "train", "extra", "extra"),
    C("train-nproc-zero", "train", "--nproc 0", "'--nproc'"),
    C("train-nproc-batch-indivisible", "train", "--nproc 3", "divide evenly over 3 processes"),
    C("train-nproc-with-one-device", "train", "--nproc 2 --device cuda:0", "each process takes its own device"),
    C("train-dist-timeout-too-short", "train", "--dist-timeout 1", "'--dist-timeout'"),
    C("train-tensorboard-missing", "train", "--tensorboard", "pip install tensorboard", needs="no-tensorboard"),
    C("train-runs-is-a-file", "train", "--runs afile", "exists and is not a directory", "afile"),
    C("train-runs-unwritable", "train", "--runs afile/runs", "cannot create a run directory there", "afile"),
    C("train-data-missing", "train", "--data nowhere", "dataset directory not found"),
    C("train-data-is-a-file", "train", "--data notes.txt", "got a file", "text"),
    C("train-data-empty-directory", "train", "--data somedir", "no meta.json", "dir"),
    C("train-data-prepare-unfinished", "train", "--data bad", "no meta.json", "bad-data:unfinished"),
    C("train-data-corrupt-meta", "train", "--data bad", "not a sagan dataset description", "bad-data:corrupt-meta"),
    C("train-data-incomplete", "train", "--data bad", "incomplete dataset", "bad-data:incomplete"),
    C("train-data-truncated-images", "train", "--data bad", "corrupt or truncated", "bad-data:truncated-images",
      exact=False),
    C("train-data-no-images", "train", "--data bad", "has no images.npy", "bad-data:no-images"),
    C("train-data-pickled-images", "train", "--data bad", "pickled Python objects", "bad-data:pickled-images"),
    C("train-data-wrong-dtype", "train", "--data bad", "expected uint8", "bad-data:wrong-dtype"),
    C("train-data-wrong-size", "train", "--data bad", "--imsize is 32", "bad-data:wrong-size"),
    C("train-data-count-mismatch", "train", "--data bad", "does not match meta.json", "bad-data:count-mismatch"),
    C("train-data-labels-mismatch", "train", "--data bad", "holds 15 labels but images.npy 16", "bad-data:labels-mismatch"),
    C("train-data-labels-out-of-range", "train", "--data bad", "holds class id 2, outside 0..1",
      "bad-data:labels-out-of-range"),
    C("train-no-dataset-anywhere", "train", "--imsize 64 --device cpu", "sagan prepare synthetic --imsize 64", base=False),
    C("train-preset-unknown", "train", "--preset imagenet64", "no such preset"),
    C("train-preset-and-resume", "train", "--preset imagenet128 --resume latest", "give one of them"),
    C("train-preset-and-config", "train", "--preset imagenet128 --config runs/00000-tiny-32", "conflict"),
    C("train-config-missing", "train", "--config nope.json", "--config nope.json: no such file"),
    C("train-config-not-json", "train", "--config notes.txt", "it is a text file, not JSON", "text"),
    C("train-config-not-a-run-config", "train", "--config data/tiny-32/meta.json", "no 'model' and 'train' sections"),
    C("train-config-unknown-key", "train", "--config future.json", "no option for train.warmup_steps", "future-config"),
    C("train-config-and-resume", "train", f"--config {RUN}/config.json --resume ckpt.pt", "give one of them"),
    C("train-init-from-missing", "train", "--init-from nope.pt", "--init-from nope.pt: no such checkpoint file"),
    C("train-init-from-not-a-checkpoint", "train", "--init-from notes.txt", "it is a text file", "text"),
    C("train-init-from-exported-generator", "train", "--init-from G.pt", "is an exported generator", "exported-pt"),
    C("train-init-from-other-architecture", "train", "--init-from ckpt.pt --arch resnet", "--arch resnet differs"),
    C("train-init-from-other-width", "train", "--init-from ckpt.pt --g-conv-dim 32", "--g-conv-dim 32 differs"),
    C("train-init-from-other-image-size", "train", "--init-from ckpt.pt --data big", "holds 64px images", "big-data"),
    C("train-init-from-and-resume", "train", "--init-from ckpt.pt --resume ckpt.pt", "give one of them"),
    C("train-keep-optim-without-init-from", "train", "--keep-optim", "give --init-from CKPT too"),
    C("train-resume-missing", "train", "--resume nope.pt", "no such checkpoint"),
    C("train-resume-latest-without-runs", "train", "--resume latest --runs elsewhere", "no checkpoint found under elsewhere/"),
    *[C(f"train-resume-{c.id.split('-checkpoint-')[1]}", "train", "--resume " + c.args, c.fragment, *c.setup,
        exact=c.exact) for c in _ckpt_cases("x", "train", "")],
    C("train-resume-weights-only", "train", "--resume g-only.pt --steps 9", "holds no training state", "g-only"),
    C("train-resume-batch-differs", "train", "--resume ckpt.pt --batch 4 --steps 9", "--batch 4 differs"),
    C("train-resume-n-dis-differs", "train", "--resume ckpt.pt --n-dis 2 --steps 9", "--n-dis 2 differs"),
    C("train-resume-model-differs", "train", "--resume ckpt.pt --g-conv-dim 32 --steps 9", "--g-conv-dim 32 differs"),
    C("train-resume-already-finished", "train", "--resume ckpt.pt", "already at step 2"),
    C("train-resume-with-name", "train", "--resume ckpt.pt --steps 9 --name other", "--name names a new run"),
    C("train-resume-other-dataset", "train", "--resume ckpt.pt --steps 9 --data data/other-32",
      "not the one this run was trained on", "other-data"),
    # ---------------------------------------------------------------- sample
    C("sample-checkpoint-missing", "sample", "missing.pt", "checkpoint not found: missing.pt"),
    C("sample-no-run", "sample", "", "no checkpoint found under runs/", "no-runs"),
    *_ckpt_cases("sample", "sample", ""),
    C("sample-checkpoint-weights-mismatch", "sample", "mismatch.pt", "do not match its model config", "mismatch",
      exact=False),
    C("sample-checkpoint-without-ema", "sample", "noema.pt", "pass --no-ema", "noema"),
    C("sample-out-and-outdir", "sample", "ckpt.pt --out a.png --outdir b", "--out and --outdir conflict"),
    C("sample-interpolate-with-outdir", "sample", "ckpt.pt --interpolate 4 --outdir b", "--interpolate writes one sheet"),
    C("sample-interpolate-one-step", "sample", "ckpt.pt --interpolate 1", "'--interpolate'"),
    C("sample-interpolate-one-seed", "sample", "ckpt.pt --interpolate 4 --seeds 3", "at least two seeds"),
    C("sample-num-and-seeds", "sample", "ckpt.pt -n 10 --seeds 0-3", "--num and --seeds conflict"),
    C("sample-seed-and-seeds", "sample", "ckpt.pt --seed 4 --seeds 0-3", "--seed and --seeds conflict"),
    C("sample-seed-negative", "sample", "ckpt.pt --seed -1", "'--seed'"),
    C("sample-interpolate-with-nrow", "sample", "ckpt.pt --interpolate 4 --nrow 2", "--nrow has no effect with --interpolate"),
    C("sample-seeds-backwards", "sample", "ckpt.pt --seeds 9-1", "runs backwards"),
    C("sample-seeds-malformed", "sample", "ckpt.pt --seeds a", "--seeds 'a'"),
    C("sample-seeds-negative", "sample", "ckpt.pt --seeds -1", "--seeds '-1'"),
    C("sample-seeds-empty", "sample", "ckpt.pt --seeds ''", "--seeds ''"),
    C("sample-seeds-too-many", "sample", "ckpt.pt --seeds 0-200000", "more than 100000 seeds"),
    C("sample-num-zero", "sample", "ckpt.pt --num 0", "'--num'"),
    C("sample-class-out-of-range", "sample", "cond.pt --class 3", "class ids run 0-2", "cond"),
    C("sample-class-unknown-name", "sample", "cond.pt --class cat", "no class of that name", "cond"),
    C("sample-class-unconditional", "sample", "ckpt.pt --class 0", "unconditional"),
    C("sample-classes-with-nrow", "sample", "cond.pt --class 0-2 --nrow 3", "one grid row per class", "cond"),
    C("sample-num-too-large", "sample", "ckpt.pt -n 100001", "'--num'"),
    C("sample-nrow-zero", "sample", "ckpt.pt --nrow 0", "'--nrow'"),
    C("sample-batch-zero", "sample", "ckpt.pt --batch 0", "'--batch'"),
    C("sample-truncation-zero", "sample", "ckpt.pt --truncation 0", "'--truncation'"),
    C("sample-truncation-not-a-number", "sample", "ckpt.pt --truncation abc", "'--truncation'"),
    C("sample-device-unknown", "sample", "ckpt.pt --device tpu", "--device 'tpu'"),
    C("sample-device-no-cuda", "sample", "ckpt.pt --device cuda", "CUDA is not available", needs="no-cuda"),
    C("sample-out-not-png", "sample", "ckpt.pt --out grid.jpg", "give a file name ending in .png"),
    C("sample-out-unwritable", "sample", "ckpt.pt --out afile/grid.png", "afile/grid.png: cannot write it", "afile"),
    C("sample-out-is-a-directory", "sample", "ckpt.pt --out somedir.png", "somedir.png: cannot write it", "dir-png"),
    C("sample-outdir-is-a-file", "sample", "ckpt.pt --outdir afile", "exists and is not a directory", "afile"),
    C("sample-outdir-unwritable", "sample", "ckpt.pt --outdir afile/imgs", "cannot create the folder", "afile"),
    C("sample-extra-argument", "sample", "ckpt.pt extra", "extra"),
    C("sample-out-animation-without-interpolate", "sample", "ckpt.pt --out grid.gif", "only with --interpolate"),
    C("sample-interpolate-out-not-an-image", "sample", "ckpt.pt --interpolate 4 --out walk.mp4", "ending in .png, .gif or .webp"),
    C("sample-interpolate-out-unwritable", "sample", "ckpt.pt --interpolate 3 --out afile/w.gif", "afile/w.gif: cannot write it",
      "afile"),
    C("sample-fps-without-animation", "sample", "ckpt.pt --interpolate 4 --fps 5", "--fps sets the speed of an animation"),
    C("sample-fps-zero", "sample", "ckpt.pt --interpolate 4 --out w.gif --fps 0", "'--fps'"),
    C("sample-scale-zero", "sample", "ckpt.pt --scale 0", "'--scale'"),
    C("sample-scale-too-large", "sample", "ckpt.pt --scale 17", "'--scale'"),
    C("sample-scale-output-too-big", "sample", "ckpt.pt --scale 16 -n 3000", "would take 2.2 GiB of memory"),
    # ---------------------------------------------------------------- attn-map
    C("attn-map-query-missing", "attn-map", "ckpt.pt", "'--query'"),
    C("attn-map-query-malformed", "attn-map", "ckpt.pt --query 1", "--query '1'"),
    C("attn-map-query-negative", "attn-map", "ckpt.pt --query -1,1", "--query '-1,1'"),
    C("attn-map-query-outside", "attn-map", "ckpt.pt --query 100,1", "outside the 32x32 generated image"),
    C("attn-map-class-out-of-range", "attn-map", "cond.pt --query 1,1 --class 5", "class ids run 0-2", "cond"),
    C("attn-map-class-several", "attn-map", "cond.pt --query 1,1 --class 0,1", "in one class", "cond"),
    C("attn-map-class-unconditional", "attn-map", "ckpt.pt --query 1,1 --class disc", "unconditional"),
    C("attn-map-seed-and-seeds", "attn-map", "ckpt.pt --query 1,1 --seed 1 --seeds 1-2", "--seed and --seeds conflict"),
    C("attn-map-seed-negative", "attn-map", "ckpt.pt --query 1,1 --seed -1", "'--seed'"),
    C("attn-map-seeds-too-many", "attn-map", "ckpt.pt --query 1,1 --seeds 0-64", "at most 64"),
    C("attn-map-layers-unknown", "attn-map", "ckpt.pt --query 1,1 --layers g99", "no attention layer named 'g99'"),
    C("attn-map-layers-empty", "attn-map", "ckpt.pt --query 1,1 --layers ''", "--layers ''"),
    C("attn-map-layers-none-in-d", "attn-map", "no-d-attn.pt --query 1,1 --layers d", "discriminator has no attention", "no-d-attn"),
    C("attn-map-out-not-png", "attn-map", "ckpt.pt --query 1,1 --out a.jpg", "ending in .png"),
    C("attn-map-out-unwritable", "attn-map", "ckpt.pt --query 1,1 --out afile/a.png", "cannot write it", "afile"),
    C("attn-map-save-maps-unwritable", "attn-map", "ckpt.pt --query 1,1 --save-maps afile/m.npz", "--save-maps afile/m.npz",
      "afile"),
    C("attn-map-save-maps-is-a-directory", "attn-map", "ckpt.pt --query 1,1 --save-maps somedir", "Is a directory", "dir"),
    C("attn-map-save-maps-not-npz", "attn-map", "ckpt.pt --query 1,1 --save-maps maps.txt", "ending in .npz"),
    C("attn-map-device-unknown", "attn-map", "ckpt.pt --query 1,1 --device tpu", "--device 'tpu'"),
    C("attn-map-checkpoint-missing", "attn-map", "missing.pt --query 1,1", "checkpoint not found"),
    *_ckpt_cases("attn-map", "attn-map", "--query 1,1", only=("png", "truncated", "foreign", "payload")),
    C("attn-map-checkpoint-without-ema", "attn-map", "noema.pt --query 1,1", "pass --no-ema", "noema"),
    C("attn-map-html-not-html", "attn-map", "ckpt.pt --html page.txt", "ending in .html"),
    C("attn-map-html-unwritable", "attn-map", "ckpt.pt --html afile/p.html", "--html afile/p.html: cannot write it", "afile"),
    C("attn-map-html-out-without-query", "attn-map", "ckpt.pt --html p.html --out a.png", "--out writes the figure"),
    C("attn-map-html-save-maps-without-query", "attn-map", "ckpt.pt --html p.html --save-maps m.npz", "--save-maps writes"),
    C("attn-map-html-query-outside", "attn-map", "ckpt.pt --html p.html --query 40,1", "outside the 32x32 generated image"),
    C("attn-map-html-layers-unknown", "attn-map", "ckpt.pt --html p.html --layers g99", "no attention layer named 'g99'"),
    # ---------------------------------------------------------------- plot
    C("plot-no-run", "plot", "--runs elsewhere", "no run found under elsewhere/"),
    C("plot-run-missing", "plot", "nowhere", "RUN nowhere: no such run directory"),
    C("plot-run-not-a-run", "plot", "somedir", "not a run directory", "dir"),
    C("plot-run-a-file", "plot", "notes.txt", "not a run directory", "text"),
    C("plot-run-without-records", "plot", "fresh", "holds no training record yet", "fresh-run"),
    C("plot-out-not-png", "plot", "--out c.jpg", "ending in .png"),
    C("plot-out-unwritable", "plot", "--out afile/c.png", "afile/c.png: cannot write it", "afile"),
    C("plot-x-unknown", "plot", "--x epoch", "'--x'"),
    C("plot-timelapse-not-an-animation", "plot", "--timelapse grow.mp4", "ending in .gif or .webp"),
    C("plot-timelapse-unwritable", "plot", "--timelapse afile/g.gif", "--timelapse afile/g.gif: cannot write it", "afile"),
    C("plot-timelapse-several-runs", "plot", "runs/00000-tiny-32 fresh --timelapse g.gif", "of one run", "fresh-run"),
    C("plot-timelapse-no-sample-grids", "plot", "fresh --timelapse g.gif", "has no sample grids yet", "fresh-run"),
    C("plot-x-with-timelapse-only", "plot", "--timelapse g.gif --x images", "--x sets the axis of the curves"),
    C("plot-scale-without-timelapse", "plot", "--scale 2", "--scale applies to the timelapse"),
    C("plot-fps-without-timelapse", "plot", "--fps 2", "--fps applies to the timelapse"),
    C("plot-frames-without-timelapse", "plot", "--frames 10", "--frames applies to the timelapse"),
    C("plot-frames-one", "plot", "--timelapse g.gif --frames 1", "'--frames'"),
    C("plot-scale-zero", "plot", "--timelapse g.gif --scale 0", "'--scale'"),
    # ---------------------------------------------------------------- info
    C("info-checkpoint-missing", "info", "missing.pt", "checkpoint not found: missing.pt"),
    C("info-no-run", "info", "", "no checkpoint found under runs/", "no-runs"),
    *_ckpt_cases("info", "info", "", only=("directory", "text", "empty", "truncated", "foreign", "newer", "payload")),
    C("info-safetensors-torn", "info", "torn.safetensors", "not a readable safetensors file", "torn-safetensors"),
    C("info-safetensors-foreign", "info", "model.safetensors", "not a sagan generator", "foreign-safetensors"),
    # ---------------------------------------------------------------- export
    C("export-out-exists", "export", "ckpt.pt --out G.safetensors", "exists; pass --force", "g-file"),
    C("export-out-wrong-ending", "export", "ckpt.pt --out G.onnx", "ending in .safetensors"),
    C("export-out-unwritable", "export", "ckpt.pt --out afile/G.safetensors", "cannot write it", "afile"),
    C("export-checkpoint-missing", "export", "missing.pt", "checkpoint not found"),
    C("export-checkpoint-without-ema", "export", "noema.pt", "pass --no-ema", "noema"),
    C("export-foreign-safetensors", "export", "model.safetensors --out G2.safetensors", "not a sagan generator", "foreign-safetensors"),
    *_ckpt_cases("export", "export", "", only=("text", "truncated", "foreign", "payload")),
    C("sample-exported-generator-torn", "sample", "torn.safetensors", "not a readable safetensors file", "torn-safetensors"),
    # ---------------------------------------------------------------- prepare
    C("synthetic-count-zero", "prepare synthetic", "--count 0", "'--count'"),
    C("synthetic-count-not-a-number", "prepare synthetic", "--count abc", "'--count'"),
    C("synthetic-imsize-unsupported", "prepare synthetic", "--imsize 48", "--imsize must be one of"),
    C("synthetic-imsize-too-large", "prepare synthetic", "--imsize 1024", "--imsize must be one of"),
    C("synthetic-imsize-not-a-number", "prepare synthetic", "--imsize abc", "'--imsize'"),
    C("synthetic-seed-negative", "prepare synthetic", "--seed -1", "'--seed'"),
    C("synthetic-workers-zero", "prepare synthetic", "--workers 0", "'--workers'"),
    C("synthetic-max-images-zero", "prepare synthetic", "--max-images 0", "'--max-images'"),
    C("synthetic-no-crop-option", "prepare synthetic", "--crop center", "--crop"),
    C("synthetic-no-min-size-option", "prepare synthetic", "--min-size 8", "--min-size"),
    C("synthetic-out-is-a-file", "prepare synthetic", "--count 10 --out afile", "exists and is not a directory", "afile"),
    C("synthetic-out-unwritable", "prepare synthetic", "--count 10 --out afile/ds", "cannot write the dataset in afile/ds", "afile"),
    C("synthetic-out-foreign-directory", "prepare synthetic", "--count 10 --out mine", "holds no sagan dataset", "foreign-dir"),
    C("synthetic-out-made-differently", "prepare synthetic", "--count 10 --out data/tiny-32", "made differently"),
    C("synthetic-classes-too-many", "prepare synthetic", "--classes 13", "'--classes'"),
    C("synthetic-classes-one", "prepare synthetic", "--classes 1", "'--classes'"),
    C("folder-argument-missing", "prepare folder", "", "'DIR'"),
    C("folder-not-found", "prepare folder", "nowhere", "folder not found"),
    C("folder-is-a-file", "prepare folder", "notes.txt", "is not a directory", "text"),
    C("folder-without-images", "prepare folder", "somedir", "no images", "dir"),
    C("folder-crop-unknown", "prepare folder", "somedir --crop diag", "'--crop'", "dir"),
    C("folder-resample-unknown", "prepare folder", "somedir --resample nearest", "'--resample'", "dir"),
    C("folder-imsize-not-a-number", "prepare folder", "somedir --imsize big", "'--imsize'", "dir"),
    C("folder-min-size-negative", "prepare folder", "somedir --min-size -1", "'--min-size'", "dir"),
    C("folder-every-image-too-small", "prepare folder", "tiny", "short side under --min-size 32", "tiny-images"),
    C("folder-labels-unknown", "prepare folder", "somedir --labels names", "'--labels'", "dir"),
    C("folder-labels-top-level-images", "prepare folder", "classes --labels subdirs", "2 images at its top level",
      "class-folders-top"),
    C("folder-labels-one-class", "prepare folder", "oneclass --labels subdirs", "at least 2 class subfolders",
      "one-class-folder"),
    C("lsun-category-missing", "prepare lsun", "", "'category'"),
    C("lsun-category-unknown", "prepare lsun", "cathedral", "'cathedral'"),
    C("lsun-split-unknown", "prepare lsun", "church_outdoor --split test", "'--split'"),
    C("lsun-no-source", "prepare lsun", "church_outdoor", "--lmdb DIR"),
    C("lsun-lmdb-missing", "prepare lsun", "church_outdoor --lmdb nowhere", "no such file or directory"),
    C("lsun-lmdb-is-a-file", "prepare lsun", "church_outdoor --lmdb notes.txt", "expected the unpacked", "text"),
    C("lsun-lmdb-without-data-mdb", "prepare lsun", "church_outdoor --lmdb somedir", "no data.mdb inside", "dir"),
    C("lsun-lmdb-not-lmdb", "prepare lsun", "church_outdoor --lmdb garbage", "not a readable lmdb database", "garbage-lmdb",
      exact=False),
    C("lsun-lmdb-other-category", "prepare lsun", "church_outdoor --lmdb bridge_train_lmdb", "holds LSUN bridge train", "bridge-lmdb"),
    C("lsun-sources-conflict", "prepare lsun", "church_outdoor --lmdb somedir --download", "--lmdb and --download conflict",
      "dir"),
    C("lsun-zip-missing", "prepare lsun", "church_outdoor --zip nope.zip", "no such file"),
    C("lsun-zip-is-a-directory", "prepare lsun", "church_outdoor --zip somedir", "not a file", "dir"),
    C("lsun-zip-not-a-zip", "prepare lsun", "church_outdoor --zip notes.txt", "not a readable zip archive", "text"),
    C("lsun-zip-without-data-mdb", "prepare lsun", "church_outdoor --zip nodata.zip", "expected one data.mdb", "nodata-zip"),
    C("lsun-zip-other-category", "prepare lsun", "church_outdoor --zip bridge_train_lmdb.zip", "holds LSUN bridge", "bridge-zip"),
    C("lsun-zip-unsafe-member", "prepare lsun", "church_outdoor --zip evil.zip", "refusing to unpack", "evil-zip"),
    C("lsun-imsize-too-small", "prepare lsun", "church_outdoor --imsize 16", "--imsize must be one of"),
    C("lsun-min-size-not-a-number", "prepare lsun", "church_outdoor --min-size big", "'--min-size'"),
    C("lsun-category-twice", "prepare lsun", "bridge bridge", "given twice"),
    C("lsun-lmdb-count-mismatch", "prepare lsun", "bridge tower --lmdb a --lmdb b --lmdb c", "3 --lmdb for 2 categories"),
    C("cifar10-split-unknown", "prepare cifar10", "--split val", "'--split'"),
    C("cifar10-no-source", "prepare cifar10", "", "no source for CIFAR-10"),
    C("cifar10-archive-missing", "prepare cifar10", "--archive nope.tar.gz", "no such file"),
    C("cifar10-archive-not-tar", "prepare cifar10", "--archive notes.txt", "not a readable tar archive", "text",
      exact=False),
    C("cifar10-archive-pickle", "prepare cifar10", "--archive cifar-10-python.tar.gz", "never unpickles", "cifar-pickle"),
    C("cifar10-sources-conflict", "prepare cifar10", "--archive notes.txt --download", "--archive and --download conflict",
      "text"),
    # ---------------------------------------------------------------- evaluate (the checkpoint it is given)
    C("evaluate-checkpoint-missing", "evaluate", "missing.pt", "checkpoint not found"),
    C("evaluate-checkpoint-and-samples", "evaluate", "ckpt.pt --samples somedir", "CKPT and --samples conflict", "dir"),
    C("evaluate-real-stats-and-data", "evaluate", "--real-stats s.npz --data data/tiny-32", "--real-stats and --data conflict"),
    C("evaluate-fid-sqrtm-without-fid", "evaluate", "--is --fid-sqrtm", "--fid-sqrtm applies to FID"),
    C("evaluate-real-stats-and-num-real", "evaluate", "--real-stats s.npz --num-real 5", "--num-real has no effect"),
    C("evaluate-download-and-weights-file", "evaluate", "--download-weights", "conflict"),
    C("evaluate-num-too-small", "evaluate", "--num 1", "'--num'"),
    C("evaluate-num-not-a-number", "evaluate", "-n many", "'--num'"),
    C("evaluate-num-real-too-small", "evaluate", "--num-real 1", "'--num-real'"),
    C("evaluate-batch-zero", "evaluate", "--batch 0", "'--batch'"),
    C("evaluate-seed-negative", "evaluate", "--seed -1", "'--seed'"),
    C("evaluate-device-unknown", "evaluate", "--device tpu", "--device 'tpu'"),
    C("evaluate-samples-missing", "evaluate", "--samples nowhere", "--samples nowhere: no such directory"),
    C("evaluate-samples-without-images", "evaluate", "--samples somedir", "no images", "dir"),
    C("evaluate-samples-none-readable", "evaluate", "--samples junk", "none of its 2 image files", "junk-images",
      exact=False),
    C("evaluate-samples-fewer-readable-than-num", "evaluate", "--samples mixed --num 3", "holds only 2 readable images",
      "mixed-images", exact=False),
    C("evaluate-samples-without-real-data", "evaluate", "--samples data/tiny-32", "no real data"),
    C("evaluate-samples-and-no-ema", "evaluate", "--samples data/tiny-32 --data data/tiny-32 --no-ema", "--ema/--no-ema"),
    C("evaluate-samples-and-seed", "evaluate", "--samples data/tiny-32 --data data/tiny-32 --seed 3", "--seed applies"),
    C("evaluate-data-missing", "evaluate", "--data nowhere", "dataset directory not found"),
    C("evaluate-num-real-more-than-the-data", "evaluate", "--num-real 100000", "--num-real 100000"),
    C("evaluate-is-too-few-images", "evaluate", "--is --num 5", "needs at least 10 generated images"),
    C("evaluate-pr-too-few-images", "evaluate", "--pr --num 3", "at least 4"),
    C("evaluate-swd-and-real-stats", "evaluate", "--swd --real-stats s.npz", "--real-stats holds Inception statistics"),
    C("evaluate-swd-too-few-real-images", "evaluate", "--swd --num-real 3", "needs at least 4 real images"),
    C("evaluate-swd-samples-other-size", "evaluate", "--swd --samples tiny --data data/tiny-32",
      "SWD compares images of one size", "tiny-images"),
    C("evaluate-swd-images-too-small", "evaluate", "--swd --samples small --data small", "at least 16 px",
      "small-data"),
    C("evaluate-runs-without-runs", "evaluate", "--runs elsewhere", "no checkpoint found under elsewhere"),
    C("evaluate-real-stats-missing", "evaluate", "--real-stats missing.npz", "--real-stats missing.npz: no such file"),
    C("evaluate-real-stats-not-npz", "evaluate", "--real-stats notes.txt", "not an .npz statistics file", "text"),
    C("evaluate-weights-missing", "evaluate", "--inception-weights missing.pth", "--inception-weights missing.pth: no such file"),
    C("evaluate-weights-an-image", "evaluate", "--inception-weights image.png", "it is a PNG image", "png"),
    C("evaluate-data-other-size", "evaluate", "ckpt.pt --data bad --num 2", "generates 32px images but", "bad-data:wrong-size"),
    C("evaluate-class-out-of-range", "evaluate", "cond.pt --swd --class 3", "class ids run 0-2", "cond"),
    C("evaluate-class-unknown-name", "evaluate", "cond.pt --swd --class cat", "no class of that name", "cond"),
    C("evaluate-class-unconditional", "evaluate", "ckpt.pt --swd --class 0", "unconditional"),
    C("evaluate-class-several", "evaluate", "cond.pt --swd --class 0,1", "one class at a time", "cond"),
    C("evaluate-per-class-unconditional", "evaluate", "ckpt.pt --swd --per-class", "unconditional"),
    C("evaluate-per-class-without-labels", "evaluate", "cond.pt --swd --per-class", "needs labelled real images", "cond"),
    C("evaluate-per-class-and-class", "evaluate", "cond.pt --swd --per-class --class 1", "conflict", "cond"),
    C("evaluate-class-with-samples", "evaluate", "--samples somedir --swd --class 1", "no effect with --samples", "dir"),
    *_ckpt_cases("evaluate", "evaluate", "", only=("png", "truncated", "foreign", "payload")),
]


def _params():
    out = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]


@pytest.mark.parametrize("case", _params())
def test_bad_input(cli, workspace, case):
    reason = skip_reason(case)
    if reason:
        pytest.skip(reason)
    for name in case.setup:
        if name.startswith("bad-data:"):
            bad_data(workspace, name.split(":", 1)[1])
        else:
            SETUPS[name](workspace)
    before = sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*"))
    r = cli(*argv(case))
    assert_one_line_error(r, case.fragment)
    assert r.code == case.code, r.stderr
    after = sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*"))
    assert after == before, f"files appeared or vanished: {sorted(set(after) ^ set(before))}"
    assert not (workspace / "PWNED").exists()
    message = normalise(r.stderr.strip()[len("error: "):], workspace)
    check_documented(case, message)


def test_every_documented_case_is_in_the_matrix():
    ids = {c.id for c in CASES}
    stale = [i for i in doc_rows() if i not in ids]
    assert not stale, f"docs/errors.md lists cases the matrix no longer has: {stale}"


def test_errors_are_one_line_in_a_real_subprocess(tmp_path):
    """The in-process matrix above, confirmed once through the real entry point (stderr, exit status)."""
    r = run_sagan("train", "--imsize", "32", "--device", "cpu", "--data", tmp_path / "nowhere", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    r = run_sagan("sample", "--num", "-3", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
