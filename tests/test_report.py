"""The HTML report (`snakemake --report`) of the finished `test` preset: every figure and table with
its caption and the numbers behind it, provenance in the workflow description; and the page as a
browser shows it (headless Chromium: the report is a JavaScript app, so what counts is the page
after its scripts ran)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import snakemake

CHROMIUM = Path("/usr/bin/chromium")
RES = Path("results") / "test"
FIGURES = {
    "F1_checkerboard_sync.png": ("F1 checkerboard (sync)", "static", "sync-trained"),
    "F2_self_healing.png": ("F2 self-healing", "static", "sync- vs async-trained"),
    "F2_self_healing_sync.gif": ("F2 self-healing", "animation", "sync-trained"),
    "F2_self_healing_async.gif": ("F2 self-healing", "animation", "async-trained"),
    "F3_growing_regeneration.png": ("F3 growing NCA", "static", "sync- vs async-trained"),
    "F3_growing_sync.gif": ("F3 growing NCA", "animation", "sync-trained"),
    "F3_growing_async.gif": ("F3 growing NCA", "animation", "async-trained"),
    "F4_attention_online.png": ("F4 attention NCA", "static", "attention NCA, online"),
    "F4_attention_trajectory.gif": ("F4 attention NCA", "animation", "training trajectory"),
    "F5_advection_transitions.png": ("F5 advection NCA", "static", "advection NCA"),
    "F5_advection_transitions.gif": ("F5 advection NCA", "animation", "four transitions"),
    "F6_patterning_bp_vs_es.png": ("F6 patterning", "static", "backprop vs evolution strategy"),
    "F6_patterning_regulation.gif": ("F6 patterning", "animation", "f over training"),
    "F7_logic_game_of_life.png": ("F7 Game of Life", "static", "logic circuit"),
    "F7_logic_game_of_life.gif": ("F7 Game of Life", "animation", "logic circuit"),
    "F8_logic_growing.png": ("F8 growing logic", "static", "logic circuits"),
    "F8_logic_growing_lizard.gif": ("F8 growing logic", "animation", "lizard circuit"),
    "F8_logic_growing_g.gif": ("F8 growing logic", "animation", "G circuit"),
}
TABLES = (
    "models.csv",
    "recovery_summary.csv",
    "recovery_comparison.csv",
    "advection_transitions.csv",
    "advection_summary.csv",
)


def _page_var(html: str, name: str):
    """The JSON data the report page assigns in ``<script id=...> var <name> = <json>;``."""
    script_id = name.replace("_", "-")
    m = re.search(rf'<script id="{script_id}">\s*var {name} = (.*?);\n', html)
    assert m, f"no `var {name}` in the report"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def report(test_preset_run):
    """(workdir, report.html path, page variables) after `snakemake --report` in the test run."""
    path = test_preset_run / RES / "report.html"
    proc = snakemake(test_preset_run, "--report", str(path), "--config", "preset=test", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    # every caption and the workflow description are valid reStructuredText once rendered
    assert "(WARNING/" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    html = path.read_text()
    page = {name: _page_var(html, name) for name in ("results", "categories", "workflow_desc")}
    return test_preset_run, path, page


def _caption(page, name: str) -> str:
    (caption,) = [r["caption"] for p, r in page["results"].items() if Path(p).name == name]
    return caption


@pytest.mark.e2e
def test_report_has_every_figure_and_table_with_labels_and_categories(report):
    _, path, page = report
    assert path.stat().st_size > 100_000
    by_name = {Path(p).name: r for p, r in page["results"].items()}
    assert set(by_name) == {*FIGURES, *TABLES, "provenance.json"}
    for name, (category, kind, model) in FIGURES.items():
        assert by_name[name]["labels"] == {"figure": name[:2], "kind": kind, "model": model}
        assert any(Path(p).name == name for paths in page["categories"][category].values() for p in paths)
        assert by_name[name]["mime_type"] == f"image/{name.rsplit('.', 1)[1]}"
    tables = [Path(p).name for paths in page["categories"]["Tables"].values() for p in paths]
    assert sorted(tables) == sorted(TABLES)
    for name in (*FIGURES, *TABLES, "provenance.json"):
        assert len(by_name[name]["caption"]) > 200, name  # every item has a caption


@pytest.mark.e2e
def test_captions_show_the_numbers_of_the_results(report):
    run, _, page = report
    res = run / RES
    models = pd.read_csv(res / "tables" / "models.csv")
    sync = models[models.experiment == "checkerboard_sync"]
    f1 = _caption(page, "F1_checkerboard_sync.png")
    assert ">test</tt>" in f1 and "seed 0" in f1 and "seed 1" in f1  # preset, seeds
    for metric in ("hard_accuracy_train", "hard_accuracy_4x"):
        values = list(sync[sync.metric == metric].sort_values("seed").value)
        for v in values:
            assert f"<td>{v:.1%}</td>" in f1, (metric, v)
        assert f"<td>{sum(values) / len(values):.1%}</td>" in f1, metric  # the mean over seeds
    last = pd.read_csv(res / "checkerboard_sync" / "seed1" / "train.csv").hard_accuracy.iloc[-1]
    assert f"<td>{last:.1%}</td>" in f1

    summary = pd.read_csv(res / "tables" / "recovery_summary.csv")
    comparison = pd.read_csv(res / "tables" / "recovery_comparison.csv")
    heal = comparison[comparison.protocol == "self_healing"]
    ratio = heal[heal.metric == "recovery_auc"].iloc[0]
    ratio_text = f"{ratio.ratio:.2f} [{ratio.ci_low:.2f}, {ratio.ci_high:.2f}]"
    auc = summary[
        (summary.experiment == "checkerboard_async")
        & (summary.protocol == "self_healing")
        & (summary.metric == "recovery_auc")
    ].iloc[0]
    auc_text = f"{auc['mean']:.1f} [{auc.ci_low:.1f}, {auc.ci_high:.1f}]"
    errors = pd.read_csv(res / "tables" / "recovery_errors.csv")
    trial0 = errors[
        (errors.experiment == "checkerboard_async")
        & (errors.seed == 0)
        & (errors.protocol == "self_healing")
        & (errors.trial == 0)
    ].sort_values("step")
    for name in ("F2_self_healing.png", "F2_self_healing_sync.gif", "F2_self_healing_async.gif"):
        caption = _caption(page, name)
        assert ratio_text in caption and auc_text in caption, name
        assert f"<td>{int(trial0.error.iloc[-1])}</td>" in caption, name
    pairs = _caption(page, "recovery_comparison.csv")
    assert "checkerboard_async" in pairs and "growing_async" in pairs
    advection = pd.read_csv(res / "tables" / "advection_summary.csv")
    f5 = _caption(page, "F5_advection_transitions.png")
    first = advection.iloc[0]
    assert f"{first.mse_mean:.4f} [{first.mse_lo:.4f}, {first.mse_hi:.4f}]" in f5
    assert "BLOB-&gt;LINE" in f5 or "BLOB->LINE" in f5

    # provenance: the workflow description shows the checkpoints' config hashes and git commit
    desc = page["workflow_desc"]
    for exp in ("checkerboard_sync", "checkerboard_async"):
        meta = json.loads((res / exp / "seed0" / "checkpoint" / "metadata.json").read_text())
        assert meta["config_hash"] in desc and meta["git_commit"] in desc
        assert meta["packages"]["jax"] in desc
    assert ">test</tt>" in desc and "seeds 0, 1" in desc


class _VisibleText(HTMLParser):
    """The text of a DOM dump outside <script> and <style>: what the page shows."""

    def __init__(self):
        super().__init__()
        self.skip, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def _visible_text(dom: str) -> str:
    parser = _VisibleText()
    parser.feed(dom)
    return " ".join(" ".join(parser.parts).split())


def _chromium(page: Path, profile: Path, *args: str, timeout: int = 60) -> str:
    """Load a page in headless Chromium (fresh profile, no network), give its scripts 10 s of
    virtual time, return stdout; killed with its child processes after ``timeout`` seconds."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
        page.as_uri(),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {timeout} s: {' '.join(cmd)}")
    assert proc.returncode == 0, err[-3000:]
    return out


# Opens one result in the loaded report as a click on it would: its caption in the side panel,
# the image in the main view.
SHOW_RESULT = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var path = %s;
    app.setView({navbarMode: "resultinfo", resultPath: path, content: "img",
                 contentPath: results[path].data_uri});
  }, 200);
});
</script>
"""


@pytest.mark.e2e
def test_report_renders_in_a_browser(report, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed: apt-get install chromium")
    import matplotlib.image

    _, path, page = report
    # as opened: the menu lists every category, the workflow description names every figure
    text = _visible_text(_chromium(path, tmp_path / "profile1", "--dump-dom"))
    for category in (
        "F1 checkerboard (sync)",
        "F2 self-healing",
        "F3 growing NCA",
        "F4 attention NCA",
        "F5 advection NCA",
        "F6 patterning",
        "Tables",
        "Provenance",
    ):
        assert category in text, category
    for name in FIGURES:
        assert name in text, name
    assert "Provenance of the results" in text and '"git_commit"' in text

    # F2 opened: its caption, with the numbers, is on the page beside the figure
    html = path.read_text()
    f2 = str(RES / "figures" / "F2_self_healing.png")
    shown = tmp_path / "shown.html"
    cut = html.rindex("</body>")
    shown.write_text(html[:cut] + SHOW_RESULT % json.dumps(f2) + html[cut:])
    text = _visible_text(_chromium(shown, tmp_path / "profile2", "--dump-dom"))
    caption = _visible_text(page["results"][f2]["caption"])
    assert caption[:80] in text
    assert "ratio async / sync" in text and "trial 0 of the first seed" in text

    png = tmp_path / "report.png"
    _chromium(shown, tmp_path / "profile3", "--window-size=1280,900", f"--screenshot={png}")
    img = matplotlib.image.imread(png)[..., :3]
    assert img.shape[:2] == (900, 1280)
    colours = len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert img.std() > 0.15 and colours > 200, (img.std(), colours)  # not a blank page
