"""--mirror and DiffAugment (--diffaug): each policy's maths and gradient, seeding, the mirror, bit-exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY
from sagan_cli.train.augment import POLICIES, Augment, brightness, contrast, cutout, parse, saturation, translation
from sagan_cli.train.config import TrainConfig
from sagan_cli.train.distributed import DistContext, SINGLE
from sagan_cli.util.errors import SaganError

SMALL = [*TINY, "--g-conv-dim", "8", "--d-conv-dim", "8"]
CPU = torch.device("cpu")


def rand_of(seed: int):
    gen = torch.Generator().manual_seed(seed)
    return lambda n: (lambda *shape: torch.rand(n, *shape, generator=gen))


def images(n=16, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("name", list(POLICIES))
def test_each_policy_keeps_the_shape_and_lets_the_gradient_reach_its_input(name):
    x = images().requires_grad_(True)
    out = POLICIES[name](x, rand_of(1)(len(x)))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert not torch.equal(out, x)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # channels_last in, channels_last works too (the trainer's memory format)
    y = POLICIES[name](x.detach().contiguous(memory_format=torch.channels_last), rand_of(1)(len(x)))
    assert torch.allclose(y, out.detach(), atol=1e-6)  # means summed in another order: not bit-equal


def test_color_is_brightness_saturation_contrast_in_their_ranges():
    n, r = 256, rand_of(2)
    flat = torch.full((n, 3, 8, 8), 0.25)  # one value: saturation and contrast leave it, brightness shifts it
    shift = brightness(flat, r(n)) - flat
    assert torch.equal(shift, shift[:, :1, :1, :1].expand_as(shift))
    assert shift.min() >= -0.5 and shift.max() < 0.5 and shift.std() > 0.2  # uniform on [-0.5, 0.5): std 0.29
    shift = POLICIES["color"](flat, r(n)) - flat  # color on one value: the brightness shift alone
    assert torch.allclose(shift, shift[:, :1, :1, :1].expand_as(shift)) and shift.abs().max() <= 0.5
    gray = torch.rand(n, 1, 8, 8).expand(n, 3, 8, 8)  # channels equal: no saturation to change
    assert torch.allclose(saturation(gray, r(n)), gray, atol=1e-6)
    x = images(n)
    x = x - x.mean(dim=(1, 2, 3), keepdim=True)  # zero mean: contrast is a factor in [0.5, 1.5) per image
    factor = (contrast(x, r(n)).flatten(1) / x.flatten(1)).median(dim=1).values
    assert factor.min() >= 0.5 - 1e-5 and factor.max() < 1.5 + 1e-5 and factor.max() - factor.min() > 0.8
    sat = saturation(x, r(n)) - x.mean(dim=1, keepdim=True)
    ratio = (sat.flatten(1) / (x - x.mean(dim=1, keepdim=True)).flatten(1)).median(dim=1).values
    assert ratio.min() >= -1e-5 and ratio.max() < 2 + 1e-5 and ratio.max() - ratio.min() > 1.5


def _shifted(img, dy, dx):
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = img[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_translation_shifts_each_image_by_up_to_an_eighth_with_zeros_shifted_in():
    x = images(64) + 3  # no zeros of its own
    out = translation(x, rand_of(3)(len(x)))
    seen = set()
    for img, got in zip(x, out):
        matches = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if torch.equal(got, _shifted(img, dy, dx))]
        assert len(matches) == 1, "not a shift of at most 32/8 = 4 pixels"
        seen.add(matches[0])
    assert len(seen) > 30 and {dy for dy, _ in seen} == set(range(-4, 5))


def test_cutout_zeroes_one_square_of_half_the_image_cut_only_by_the_border():
    x = images(128) + 3
    out = cutout(x, rand_of(4)(len(x)))
    zero = out == 0
    assert torch.equal(out[~zero], x[~zero])
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # the same pixels in every channel
    sizes = set()
    for z in zero[:, 0]:
        rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
        assert z[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all() and z.sum() == len(rows) * len(cols)
        assert 8 <= len(rows) <= 16 and 8 <= len(cols) <= 16  # a 16-pixel square, centred in the image
        sizes.add((len(rows), len(cols)))
    assert (16, 16) in sizes and len(sizes) > 3


def test_unknown_policies_are_refused_by_name_and_the_empty_string_is_none():
    assert parse("") == () and parse("color, cutout") == ("color", "cutout")
    with pytest.raises(SaganError, match=r"--diffaug policy 'blur' is not one of: color, translation, cutout"):
        TrainConfig(diffaug="translation,blur")
    assert TrainConfig.from_dict({"steps": 3}).mirror is False and TrainConfig.from_dict({"steps": 3}).diffaug == ""


def _augment(seed=0, world=1, rank=0, **opts):
    dist = SINGLE if world == 1 else DistContext(rank=rank, world=world)
    return Augment(TrainConfig(seed=seed, **opts), CPU, dist)


def test_without_options_the_inputs_come_back_untouched_and_nothing_is_drawn():
    real, fake = images(4), images(4, 1)
    state = torch.get_rng_state()
    a = _augment()
    r, f = a.d(real, fake, 0)
    assert r is real and f is fake and a.g(fake, 0) is fake
    assert _augment(mirror=True).g(fake, 0) is fake  # the mirror is for real images only
    assert torch.equal(torch.get_rng_state(), state)


def test_the_draws_come_from_the_seed_and_the_step_not_the_global_stream():
    real, fake = images(8), images(8, 1)
    opts = dict(mirror=True, diffaug="color,translation,cutout")
    state = torch.get_rng_state()
    a, b = _augment(**opts), _augment(**opts)
    first = a.d(real, fake, 5) + (a.g(fake, 5),)
    assert torch.equal(torch.get_rng_state(), state), "the global random stream was used"
    torch.manual_seed(123)  # the global stream does not matter
    again = b.d(real, fake, 5) + (b.g(fake, 5),)
    assert all(torch.equal(u, v) for u, v in zip(first, again))
    assert not torch.equal(a.d(real, fake, 6)[0], first[0])  # another step, other draws
    assert not torch.equal(_augment(seed=1, **opts).d(real, fake, 5)[0], first[0])  # another seed too
    # a step's later calls draw on from where its earlier ones stopped (several D steps per G step)
    c = _augment(**opts)
    assert not torch.equal(c.d(real, fake, 5)[1], c.d(real, fake, 5)[1])
    # each rank takes its slice of the global batch's draws, as the noise does
    halves = [_augment(world=2, rank=k, **opts).d(real[k * 4:(k + 1) * 4], fake[k * 4:(k + 1) * 4], 5) for k in (0, 1)]
    assert torch.equal(torch.cat([h[0] for h in halves]), first[0]) and torch.equal(torch.cat([h[1] for h in halves]), first[1])


def test_mirror_flips_about_half_of_the_real_images_and_no_fake_one():
    real, fake = images(400), images(400, 1)
    r, f = _augment(mirror=True).d(real, fake, 0)
    assert torch.equal(f, fake)
    flipped = torch.tensor([torch.equal(a, b.flip(-1)) for a, b in zip(r, real)])
    same = torch.tensor([torch.equal(a, b) for a, b in zip(r, real)])
    assert bool((flipped ^ same).all())
    assert 160 <= int(flipped.sum()) <= 240  # 200 ± 4 sigma
    assert r.is_contiguous(memory_format=torch.channels_last)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _train(cli, data, runs, steps, *extra):
    return cli("train", *SMALL, "--data", data, "--runs", runs, "--steps", str(steps), "--batch", "8",
               "--loss", "wgan-gp", "--n-dis", "2", "--ema-start", "1", "--log-every", "1", "--sample-every", "100", *extra)


def test_a_mirrored_diffaugmented_wgan_gp_run_resumes_bit_exactly(cli, tiny_dataset, tmp_path):
    aug = ("--mirror", "--diffaug", "color,translation,cutout")
    assert _train(cli, tiny_dataset, "straight", 4, *aug).code == 0
    assert _train(cli, tiny_dataset, "resumed", 2, *aug).code == 0
    r = cli("train", "--resume", "latest", "--runs", "resumed", "--steps", "4", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert _train(cli, tiny_dataset, "plain", 4).code == 0
    run = tmp_path / "straight/00000-tiny-32"
    train = json.loads((run / "config.json").read_text())["train"]
    assert (train["mirror"], train["diffaug"]) == (True, "color,translation,cutout")
    a, b = load(run / "checkpoints/latest.pt"), load(tmp_path / "resumed/00000-tiny-32/checkpoints/latest.pt")
    plain = load(tmp_path / "plain/00000-tiny-32/checkpoints/latest.pt")
    assert a["step"] == b["step"] == 4 and b["train_config"]["mirror"] and b["train_config"]["diffaug"] == train["diffaug"]
    for net in ("G", "D", "G_ema"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs after resume"
    for opt in ("opt_G", "opt_D"):
        for i, s in a[opt]["state"].items():
            assert all(torch.equal(v, b[opt]["state"][i][k]) for k, v in s.items()), f"{opt} state {i}"
    assert any(not torch.equal(a["D"][k], plain["D"][k]) for k in a["D"]), "the augmentation changed nothing"
    r = cli("info", str(run))
    assert r.code == 0 and "seed 0, augmentation mirror, diffaug color,translation,cutout" in r.stdout, r.stdout + r.stderr
    assert "augmentation" not in cli("info", str(tmp_path / "plain/00000-tiny-32")).stdout
    # a resumed run keeps its augmentation; changing it is refused like any other setting
    r = cli("train", "--resume", "latest", "--runs", "resumed", "--steps", "5", "--device", "cpu", "--diffaug", "color")
    assert r.code == 2 and "--diffaug color differs from the resumed run's color,translation,cutout" in r.stderr


def test_a_checkpoint_written_before_augmentation_resumes_without_it(cli, tiny_dataset, tmp_path):
    assert _train(cli, tiny_dataset, "runs", 1).code == 0
    path = tmp_path / "runs/00000-tiny-32/checkpoints/latest.pt"
    ck = load(path)
    for key in ("mirror", "diffaug"):
        del ck["train_config"][key]
    torch.save(ck, path)
    r = cli("train", "--resume", str(path), "--steps", "2", "--device", "cpu")
    assert r.code == 0, r.stderr
    ck = load(path)
    assert ck["step"] == 2 and (ck["train_config"]["mirror"], ck["train_config"]["diffaug"]) == (False, "")
