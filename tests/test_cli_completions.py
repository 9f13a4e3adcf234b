"""Shell completion: the committed scripts are what the app generates, and they complete."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import gen_completions  # noqa: E402


@pytest.mark.parametrize("shell", sorted(gen_completions.FILES))
def test_committed_completion_scripts_are_current(shell):
    committed = (REPO / "completions" / gen_completions.FILES[shell]).read_text()
    assert committed == gen_completions.generate(shell), f"run `make completions`: completions/ is stale for {shell}"


def _complete(words: str) -> list[str]:
    env = dict(os.environ, _SAGAN_COMPLETE="complete_bash", COMP_WORDS=words,
               COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "sagan_cli"], env=env, capture_output=True, text=True, timeout=60)
    return out.stdout.split()


def test_completion_offers_commands_and_options():
    assert {"train", "sample", "attn-map", "prepare"} <= set(_complete("sagan "))
    assert "--resume" in _complete("sagan train --res")
    assert set(_complete("sagan train --attention ")) == {"paper", "official"}


def test_cli_import_stays_light():
    """`sagan --help` and TAB must not pay for importing torch."""
    code = "import sys, sagan_cli.cli; sys.exit(int(any(m in sys.modules for m in ('torch', 'numpy', 'PIL'))))"
    assert subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO))).returncode == 0


def test_device_and_layers_complete_to_their_forms_not_to_file_names():
    for command in ("train", "sample", "attn-map", "evaluate"):
        assert _complete(f"sagan {command} --device ") == ["auto", "cpu", "cuda", "mps"]
    assert _complete("sagan sample --device cuda:") == [f"cuda:{i}" for i in range(8)]
    assert _complete("sagan attn-map --layers ") == ["all", "g", "d"]
    assert _complete("sagan train --arch ") == ["dcgan", "resnet"]
    assert _complete("sagan train --init ") == ["default", "xavier", "ortho"]
    from sagan_cli.train.losses import LOSSES

    assert _complete("sagan train --loss ") == list(LOSSES)
