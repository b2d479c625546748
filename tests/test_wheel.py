"""The wheel ships the whole package: every module and data file, found from outside the checkout.

`pyproject.toml` lists packages explicitly (migrations/ ships as ckptdb.migrations), so a new
subpackage missing from that list would pass every test run from the checkout and break every
user's install. Here the wheel is built, installed into a directory of its own, and run from a
directory outside the repository, where nothing of the checkout can stand in for a missing file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shipped_names() -> set[str]:
    """Every file the wheel must hold, as its path inside the wheel, from the checkout's tree."""
    names = {
        str(p.relative_to(REPO))
        for p in (REPO / "ckptdb").rglob("*")
        if p.suffix in {".py", ".typed", ".html", ".css", ".svg"}
    }
    for path in (REPO / "migrations").rglob("*"):
        if path.suffix in {".py", ".mako"}:
            names.add("ckptdb/migrations/" + str(path.relative_to(REPO / "migrations")))
    return {name for name in names if "__pycache__" not in name}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # From a copy of the sources: setuptools reuses a checkout's build/ directory, whose stale
    # files would stand in for a package the list leaves out.
    source = tmp_path_factory.mktemp("source") / "ckptdb"
    leftovers = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__", "*.db*")
    shutil.copytree(REPO, source, ignore=leftovers)
    out = tmp_path_factory.mktemp("wheel")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check"]
    subprocess.run([*pip_wheel, "-w", out, source], check=True, cwd=out)
    (built,) = out.glob("ckptdb-*.whl")
    return built


def test_the_wheel_holds_every_module_and_data_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    missing = sorted(shipped_names() - inside)
    assert not missing, (
        f"the wheel lacks {missing}: add their packages to [tool.setuptools] in pyproject.toml"
    )


def test_the_installed_wheel_imports_migrates_and_imports_from_outside_the_checkout(
    wheel: Path, tmp_path: Path, fixture_dir: Path
) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            site,
            wheel,
        ],
        check=True,
    )
    away = tmp_path / "elsewhere"
    away.mkdir()
    # -S: no site processing, so the checkout's editable install (a .pth hook in site-packages)
    # cannot supply a module the wheel lacks; the dependencies come from site-packages on the path.
    libraries = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sorted(libraries)])}
    python = [sys.executable, "-S"]
    # Alembic runs the migration scripts itself (db upgrade below); __main__ would run the CLI.
    every_module = (
        "import ckptdb, pkgutil, importlib, sys\n"
        f"assert ckptdb.__file__.startswith({str(site)!r}), ckptdb.__file__\n"
        "for info in pkgutil.walk_packages(ckptdb.__path__, 'ckptdb.'):\n"
        "    if not info.name.startswith(('ckptdb.migrations', 'ckptdb.__main__')):\n"
        "        importlib.import_module(info.name)\n"
        "print(len(sys.modules))\n"
        # ckptdb serve's templates and static files are package data, found from the installed wheel
        "from importlib.resources import files\n"
        "from ckptdb.web.render import environment\n"
        "for name in ('base.html', 'graphs.html', 'checkpoints.html', 'checkpoint.html', 'error.html'):\n"
        "    environment().get_template(name)\n"
        "assert files('ckptdb.web').joinpath('static/style.css').read_text().startswith('/*')\n"
    )
    subprocess.run([*python, "-c", every_module], check=True, cwd=away, env=env)

    def ckptdb(*args: str) -> str:
        done = subprocess.run(
            [*python, "-m", "ckptdb", "--db", "x.db", *args],
            cwd=away,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    ckptdb("db", "upgrade")
    assert "(up to date)" in ckptdb("db", "current")
    ckptdb("import", "-q", str(fixture_dir))
    assert ckptdb("sql", "-f", "csv", "SELECT count(*) AS n FROM checkpoints").splitlines() == ["n", "300"]
