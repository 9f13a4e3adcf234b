"""Regenerate completions/ from the app: `make completions` (tests/test_cli_completions.py checks they are current)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = {"bash": "sagan.bash", "zsh": "_sagan", "fish": "sagan.fish"}


def generate(shell: str) -> str:
    env = dict(os.environ, _SAGAN_COMPLETE=f"source_{shell}", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "sagan_cli"], env=env, capture_output=True, text=True, check=True)
    return out.stdout


def main(target: Path = REPO / "completions") -> None:
    target.mkdir(parents=True, exist_ok=True)
    for shell, name in FILES.items():
        (target / name).write_text(generate(shell))
        print(f"{shell}: {target / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "completions")
