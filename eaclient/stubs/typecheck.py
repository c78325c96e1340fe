"""mypy on eaclient against the published MetaTrader5 stubs (metatrader5-stubs) completed by our local overlay.

`python -m eaclient.stubs.typecheck [paths…]` (default: eaclient) writes one stub package for `MetaTrader5` into a
temporary folder, the installed metatrader5-stubs file unchanged followed by metatrader5_overlay.pyi, puts that folder
on MYPYPATH (which mypy searches before installed stub packages) and runs mypy with pyproject.toml's settings.
Exit status: mypy's. `make lint` runs it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

OVERLAY = Path(__file__).with_name("metatrader5_overlay.pyi")


def published_stub() -> Path:
    """The installed metatrader5-stubs' MetaTrader5/__init__.pyi (raises PackageNotFoundError when not installed)."""
    dist = metadata.distribution("metatrader5-stubs")
    for file in dist.files or ():
        if file.name == "__init__.pyi" and file.parts[0] == "MetaTrader5-stubs":
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError("metatrader5-stubs installs no MetaTrader5-stubs/__init__.pyi")


def write_stubs(folder: Path) -> Path:
    """The combined MetaTrader5 stub package under `folder`; returns its __init__.pyi."""
    package = folder / "MetaTrader5"
    package.mkdir(parents=True, exist_ok=True)
    target = package / "__init__.pyi"
    target.write_text(published_stub().read_text(encoding="utf-8") + "\n\n" + OVERLAY.read_text(encoding="utf-8"))
    return target


def run(paths: list[str]) -> tuple[str, str, int]:
    """mypy's (stdout, stderr, exit status) for `paths` with the combined stubs."""
    from mypy import api  # a dev dependency: imported only when type-checking

    with tempfile.TemporaryDirectory(prefix="suho-mt5-stubs-") as folder:
        write_stubs(Path(folder))
        previous = os.environ.get("MYPYPATH")
        os.environ["MYPYPATH"] = folder
        try:
            return api.run(["--no-incremental", *paths])
        finally:
            if previous is None:
                os.environ.pop("MYPYPATH", None)
            else:
                os.environ["MYPYPATH"] = previous


def main() -> int:
    out, err, status = run(sys.argv[1:] or ["eaclient"])
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main())
