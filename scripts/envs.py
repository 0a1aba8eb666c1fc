"""Build the project's virtual environments, keyed by a hash of their requirements.

Each dependency set in pyproject.toml ([project.optional-dependencies]) gets its
own environment under the cache directory (outside the checkout, so it survives
clean clones); `.venvs/<set>` in the checkout links to it. An environment whose
requirements did not change is never rebuilt.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ENGAGE_CACHE", Path.home() / ".cache" / "engage"))
READY = ".engage-ready"


def load_sets() -> tuple[dict[str, list[str]], dict[str, str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["project"]["optional-dependencies"], data["tool"]["engage"]["envs"]


def find_python(version: str) -> str:
    """Return an interpreter for `version`: pyenv's versions first, then PATH.

    pyenv's shims are skipped: a shim for a version that is installed but not
    selected exits 127 instead of running.
    """
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"))
    if candidates:
        return candidates[-1]
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        exe = Path(directory) / f"python{version}"
        if "shims" not in directory and exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
    sys.exit(
        f"Python {version} was not found (looked in {pyenv_root}/versions and on PATH). "
        f"Install it with `pyenv install {version}` and run this again."
    )


def env_hash(name: str, requirements: list[str], version: str) -> str:
    digest = hashlib.sha256(f"{name}\n{version}\n".encode())
    for req in requirements:
        digest.update(req.encode() + b"\n")
    return digest.hexdigest()[:12]


def ensure(name: str, requirements: list[str], version: str) -> Path:
    target = CACHE / "venvs" / f"{name}-py{version}-{env_hash(name, requirements, version)}"
    link = ROOT / ".venvs" / name
    if not (target / READY).exists():
        print(f"==> building the '{name}' environment (Python {version}) in {target}", flush=True)
        if target.exists():
            shutil.rmtree(target)  # a half-built environment from an interrupted run
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([find_python(version), "-m", "venv", str(target)], check=True)
        pip = [str(target / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", "-q", "--upgrade", "pip", "wheel"], check=True)
        # Plain pip output: its progress bars show the long downloads.
        subprocess.run([*pip, "install", *requirements], check=True)
        (target / READY).write_text("\n".join(requirements) + "\n")
    else:
        print(f"==> '{name}' environment up to date ({target.name})", flush=True)
    link.parent.mkdir(exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.resolve() == target.resolve():
            return target
        link.unlink()
    link.symlink_to(target)
    return target


def main() -> None:
    sets, versions = load_sets()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(versions), help="environments to build")
    args = parser.parse_args()
    for name in args.names:
        if name not in versions:
            sys.exit(f"unknown environment '{name}'; known: {', '.join(versions)}")
        ensure(name, sets[name], versions[name])


if __name__ == "__main__":
    main()
