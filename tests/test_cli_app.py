"""The `sagan` application itself: its version, the order help lists the commands in, plural words."""

from __future__ import annotations

import re

from sagan_cli import __version__


def test_version_prints_the_version_and_exits_0(cli):
    r = cli("--version")
    assert r.code == 0 and r.stdout.strip() == f"sagan {__version__}"


def test_help_lists_the_commands_in_workflow_order(cli):
    r = cli("--help")
    assert r.code == 0
    listed = re.findall(r"^│ (prepare|train|sample|attn-map|evaluate)\s", r.stdout, re.M)
    assert listed == ["prepare", "train", "sample", "attn-map", "evaluate"]


def test_one_prepared_image_is_one_image(cli):
    r = cli("prepare", "synthetic", "--count", "1", "--imsize", "32", "--out", "one", "--workers", "1")
    assert r.code == 0, r.stderr
    assert "prepared 1 image of 32px" in r.stdout
    r = cli("prepare", "synthetic", "--count", "1", "--imsize", "32", "--out", "one", "--workers", "1")
    assert "already prepared: 1 image of 32px" in r.stdout


def test_help_shows_flags_as_flags_not_as_options_taking_a_bool(cli):
    for command in (["prepare", "synthetic"], ["train"], ["sample"], ["evaluate"], []):
        r = cli(*command, "--help")
        assert r.code == 0 and "<bool>" not in r.stdout, command
    r = cli("prepare", "synthetic", "--help")
    assert re.search(r"--force\s+Rebuild", r.stdout) and "<int range>" in r.stdout  # value options keep their type
