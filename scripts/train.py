"""Train the Rasa model only when what it is built from changed.

The model is keyed by a hash of bot/ (domain, stories, rules, NLU components),
nlu_data/nlu/, config.yml, the Rasa version and the ONNX encoder's manifest, and
kept in the cache outside the checkout; models/engage.tar.gz links to it.
Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, List

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ENGAGE_CACHE", Path.home() / ".cache" / "engage"))
LINK = ROOT / "models" / "engage.tar.gz"
RASA = ROOT / ".venvs" / "rasa" / "bin" / "rasa"

# What the model is built from. Python modules under bot/ count because custom
# NLU components live there; bot/broker.py does not change the model but is
# cheap to include rather than maintain an exception list.
INPUTS = ("bot", "nlu_data/nlu", "config.yml")
ENCODER_MANIFEST = ROOT / ".models" / "minilm-onnx" / "manifest.json"


def input_files() -> List[Path]:
    files: List[Path] = []
    for entry in INPUTS:
        path = ROOT / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix in (".yml", ".yaml", ".json", ".py", ".md", ".txt")
                and "__pycache__" not in p.parts
            )
    return files


def model_hash(files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    version = subprocess.run(
        [str(RASA), "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    digest.update("".join(version).encode())
    if ENCODER_MANIFEST.exists():
        # Only what changes the encoder's output: not when or where it was exported.
        manifest = json.loads(ENCODER_MANIFEST.read_text())
        digest.update(json.dumps({k: manifest.get(k) for k in ("hash", "files", "opset", "pooling", "normalize")}, sort_keys=True).encode())
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def link(target: Path) -> None:
    LINK.parent.mkdir(exist_ok=True)
    if LINK.is_symlink() or LINK.exists():
        LINK.unlink()
    LINK.symlink_to(target)


def train(force: bool = False) -> Path:
    if not RASA.exists():
        sys.exit("the Rasa environment is missing: run `make setup` first")
    key = model_hash(input_files())
    target = CACHE / "models" / f"engage-{key}.tar.gz"
    if target.exists() and not force:
        print(f"==> model up to date ({target.name})", flush=True)
        link(target)
        return target
    print(f"==> training the model ({target.name}); this takes a few minutes", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="engage-train-") as tmp:
        env = dict(os.environ, PYTHONPATH=str(ROOT), RASA_TELEMETRY_ENABLED="false")
        subprocess.run(
            [
                str(RASA), "train",
                "--domain", "bot/domain",
                "--data", "bot/data", "nlu_data/nlu",
                "--config", "config.yml",
                "--out", tmp,
                "--fixed-model-name", "engage",
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )
        built = Path(tmp) / "engage.tar.gz"
        # Copy then rename, so an interrupted run never leaves a half-written model.
        partial = target.with_suffix(".partial")
        shutil.copyfile(built, partial)
        os.replace(partial, target)
    link(target)
    print(f"==> model ready: {LINK} -> {target}", flush=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="train even when the inputs are unchanged")
    parser.add_argument("--print-hash", action="store_true", help="print the input hash and exit")
    args = parser.parse_args()
    if args.print_hash:
        print(model_hash(input_files()))
        return
    train(force=args.force)


if __name__ == "__main__":
    main()
