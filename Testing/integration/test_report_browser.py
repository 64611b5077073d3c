"""The demo's reports in a real browser (headless Chromium, offline): no console errors, no broken images, the
verdict block within the first 1,000 pixels, its numbers the same as report.json's.

Chromium comes from the npm packages @sparticuz/chromium and puppeteer-core, installed once into a cache folder
outside the repository (``SI_BROWSER_CACHE``, default ``~/.cache/headless-browser``); the test skips, saying why,
where node/npm or the packages are missing. ``SI_DEMO_OUT`` reuses an existing demo folder (with its checks);
otherwise the demo runs here (a few minutes on CPU).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from SyntheticImagingLib.checks.rounding import fmt
from SyntheticImagingLib.cli import main

SCRIPT = Path(__file__).resolve().parents[1] / "browser" / "report_dom.mjs"
PACKAGES = ("@sparticuz/chromium", "puppeteer-core")


@pytest.fixture(scope="module")
def browser() -> Path:
    """The cache folder holding the npm packages and the DOM script."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm not found: the report cannot be opened in headless Chromium here")
    cache = Path(os.environ.get("SI_BROWSER_CACHE", Path.home() / ".cache" / "headless-browser"))
    cache.mkdir(parents=True, exist_ok=True)
    if not all((cache / "node_modules" / p / "package.json").exists() for p in PACKAGES):
        try:
            subprocess.run(["npm", "install", "--silent", *PACKAGES], cwd=cache, check=True, timeout=600,
                           capture_output=True, text=True)
        except (subprocess.SubprocessError, OSError) as err:
            pytest.skip(f"cannot install {PACKAGES} into {cache} ({err}): no headless Chromium")
    shutil.copyfile(SCRIPT, cache / SCRIPT.name)  # next to node_modules, so its imports resolve
    return cache


@pytest.fixture(scope="module")
def demo(tmp_path_factory, browser) -> tuple[Path, str]:
    """A demo folder with both evaluations, and what the CLI printed for people at its end."""
    reuse = os.environ.get("SI_DEMO_OUT")
    if reuse:
        return Path(reuse), ""
    out = tmp_path_factory.mktemp("demo") / "demo"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["--progress", "none", "demo", "--out", str(out), "--n", "2"]) == 0
    return out, buf.getvalue()


def _open(browser: Path, page: Path, shot: Path | None = None) -> dict:
    cmd = ["node", str(browser / SCRIPT.name), page.resolve().as_uri()] + ([str(shot)] if shot else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=browser)
    if out.returncode != 0:
        pytest.fail(f"headless Chromium failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _chip(dom: dict, key: str) -> dict:
    return next(n for n in dom["numbers"] if n["key"] == key)


@pytest.mark.parametrize("evaluation", ["evaluation", "evaluation_ct"])
def test_demo_report_opens_with_the_verdict_of_report_json(browser, demo, evaluation, tmp_path):
    folder, printed = demo
    report = json.loads((folder / evaluation / "report.json").read_text())
    dom = _open(browser, folder / evaluation / "report.html", tmp_path / "top.png")
    assert dom["errors"] == [] and dom["broken"] == [] and dom["imgs"] >= 5
    assert dom["verdict"] is not None and dom["verdict"]["bottom"] <= 1000, dom["verdict"]
    assert (tmp_path / "top.png").stat().st_size > 10_000
    utility = report["checks"]["utility"]["summary"]
    ratio = _chip(dom, "tstr_over_trtr_dice")
    assert math.isclose(float(ratio["value"]), utility["tstr_over_trtr_dice"], rel_tol=1e-12)
    assert ratio["text"] == fmt(utility["tstr_over_trtr_dice"], int(ratio["decimals"]))
    equivalent, eq = _chip(dom, "real_equivalent"), utility["real_equivalent"]
    if eq["value"] is not None:
        assert math.isclose(float(equivalent["value"]), eq["value"]) and equivalent["text"] == fmt(eq["value"], 0)
    else:
        assert equivalent["text"].endswith(f"than {eq['bound']:g}")
    assert _chip(dom, "verdict")["text"] == report["checks"]["privacy"]["summary"]["verdict"]
    assert dom["verdict"]["text"].count(ratio["text"]) >= 2  # the chip and the sentence agree
    statuses = dict(dom["statuses"])
    assert statuses == {f"verdict-{v['key']}": v["status"] for v in report["summary"]["verdicts"]}
    assert dom["sortable"] >= 3
    if printed:  # the CLI's last lines are the same verdicts
        assert report["summary"]["text"] in printed
