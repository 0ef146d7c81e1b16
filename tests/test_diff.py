"""`morphogen diff` on small synthetic results trees (no workflow runs)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from morphogen import cli, diff, store  # noqa: E402

EXP = "checkerboard_sync"
PROVENANCE = {
    "experiment": EXP,
    "seed": 0,
    "preset": "test",
    "config_hash": "0919227e30811b2a",
    "git_commit": "82c9fd61aff9cbb7748b6b3fcae6b3611da2a5ce",
    "morphogen_version": "0.1.0",
    "packages": {"jax": "0.10.2", "jaxlib": "0.10.2", "numpy": "2.4.6"},
    "platform": "cpu",
    "device_kind": "cpu",
    "xla_flags": "--xla_gpu_deterministic_ops=true",
    "x64": "False",
    "cpu_model": "Intel(R) Xeon(R) Platinum 8488C",
    "cpu_vendor": "GenuineIntel",
    "cpu_simd": "sse4_1 sse4_2 avx avx2 fma f16c avx512f avx512dq avx512bw avx512vl",
    "cpu_count": "2",
}


def write_tree(
    root: Path,
    *,
    accuracy: float = 0.5,
    state_change_step: int | None = None,
    line_color: str = "C0",
    jax_version: str = "0.10.2",
    config_hash: str = "0919227e30811b2a",
    seconds: float = 1.0,
    provenance: dict | None = None,
) -> Path:
    """A small results tree: tables, one run (train.csv, rollout store, checkpoint), one figure."""
    root.mkdir(parents=True)
    tables = root / "tables"
    tables.mkdir()
    pd.DataFrame(
        {
            "experiment": [EXP] * 4,
            "seed": [0, 0, 1, 1],
            "metric": ["hard_accuracy_train", "train_steps"] * 2,
            "value": [accuracy, 12, 0.25, 12],
        }
    ).to_csv(tables / "models.csv", index=False)
    pd.DataFrame(
        {
            "experiment": [EXP, EXP],
            "protocol": ["self_healing", "dead_cells"],
            "metric": ["final_error", "final_error"],
            "n": [4, 4],
            "mean": [12.5, np.nan],
            "ci_low": [10.0, np.nan],
            "ci_high": [15.0, np.nan],
        }
    ).to_csv(tables / "recovery_summary.csv", index=False)
    pd.DataFrame(
        {"experiment": [EXP], "seed": [0], "metric": ["seconds_per_step"], "value": [seconds]}
    ).to_csv(tables / "timings.csv", index=False)
    run = root / EXP / "seed0"
    run.mkdir(parents=True)
    pd.DataFrame(
        {
            "step": [1, 2, 3],
            "soft_loss": [3.0, 2.0, 1.5],
            "hard_loss": [4, 3, 2],
            "hard_accuracy": [0.25, 0.5, 0.75],
        }
    ).to_csv(run / "train.csv", index=False)

    prov = {
        **PROVENANCE,
        "config_hash": config_hash,
        "packages": {**PROVENANCE["packages"], "jax": jax_version},
        **(provenance or {}),
    }
    state = (np.arange(2 * 6 * 4 * 4 * 2).reshape(2, 6, 4, 4, 2) % 2).astype(np.uint8)
    if state_change_step is not None:
        state[1, state_change_step, 2, 1, 0] += 3
        state[0, state_change_step + 1, 0, 0, 1] += 1
    ds = xr.Dataset(
        {
            "state": (("trial", "step", "y", "x", "channel"), state),
            "accuracy": (("trial", "step"), np.linspace(0, 1, 12, dtype=np.float32).reshape(2, 6)),
            "target": (("y", "x"), np.eye(4, dtype=np.float32)),
        },
        coords={"trial": np.arange(2), "step": np.arange(6)},
        attrs={"scale": 1, "mode": "hard", "provenance": prov},
    )
    store.write(ds, run / "rollout.zarr", group="scale1", chunk_dims={"trial": 1})

    ckpt = run / "checkpoint"
    ckpt.mkdir()
    np.savez(ckpt / "arrays.npz", **{"['params'][0]": np.ones((3, 4), np.float32), "['step']": np.array(12)})
    (ckpt / "metadata.json").write_text(json.dumps({**prov, "config": {"family": "difflogic"}, "step": 12}))

    figures = root / "figures"
    figures.mkdir()
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    ax.plot([0, 1, 2], [0, 1, 0], color=line_color)
    fig.savefig(figures / "F1_checkerboard_sync.png", metadata={"Software": None})
    plt.close(fig)
    return root


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("diff") / "base")


def copy_of(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest)
    return dest


def run(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main(["diff", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_table_keys():
    models = pd.DataFrame({"experiment": ["e"], "seed": [0], "metric": ["m"], "value": [1]})
    assert diff.table_keys(models) == ["experiment", "seed", "metric"]
    errors = pd.DataFrame(
        {"experiment": ["e"], "seed": [0], "protocol": ["p"], "trial": [1], "step": [2], "error": [3]}
    )
    assert diff.table_keys(errors) == ["experiment", "seed", "protocol", "trial", "step"]
    summary = pd.DataFrame({"experiment": ["e"], "metric": ["m"], "n": [4], "mean": [1.0]})
    assert diff.table_keys(summary) == ["experiment", "metric"]


def test_identical_trees(base, tmp_path, capsys):
    b = copy_of(base, tmp_path / "b")
    (b / "tables" / "timings.csv").write_text(
        "experiment,seed,metric,value\ncheckerboard_sync,0,seconds_per_step,9\n"
    )
    (b / "logs").mkdir()
    (b / "logs" / "train.log").write_text("volatile\n")
    # provenance.json names the commit: it explains differences and is never one itself
    a = copy_of(base, tmp_path / "a")
    (a / "provenance.json").write_text('{"git_commit": "aaaa"}\n')
    (b / "provenance.json").write_text('{"git_commit": "bbbb"}\n')
    rc, out, _ = run(capsys, a, b)
    assert rc == 0
    assert "no differences" in out
    assert "timings" not in out
    rc, out, _ = run(capsys, a, b, "--all")
    assert rc == 0
    timing = next(line for line in out.splitlines() if "timings.csv" in line)
    assert timing.split()[-1] == "info" and "9" in timing
    assert "identical" in out and "logs" not in out


def test_changed_metric(base, tmp_path, capsys):
    b = write_tree(tmp_path / "b", accuracy=0.75)
    rc, out, _ = run(capsys, base, b)
    assert rc == 1
    row = next(line for line in out.splitlines() if line.startswith("tables/models.csv"))
    assert "checkerboard_sync seed=0 hard_accuracy_train" in row
    assert "0.5" in row and "0.75" in row and "+0.25 (+50%)" in row and row.endswith("exceeds")
    assert "seed=1" not in out  # unchanged rows are not shown

    rc, out, _ = run(capsys, base, b, "--json")
    assert rc == 1
    report = json.loads(out)
    assert report["exceeds"] is True
    (item,) = [i for i in report["items"] if i["path"] == "tables/models.csv"]
    assert item["key"] == {"experiment": EXP, "seed": "0", "metric": "hard_accuracy_train"}
    assert (item["a"], item["b"], item["change"], item["rel"], item["status"]) == (
        0.5,
        0.75,
        0.25,
        0.5,
        "exceeds",
    )

    rc, out, _ = run(capsys, base, b, "--md")
    assert rc == 1
    assert "| tables/models.csv | checkerboard_sync seed=0 hard_accuracy_train | 0.5 | 0.75 |" in out


def test_rows_and_files_added_removed(base, tmp_path, capsys):
    b = copy_of(base, tmp_path / "b")
    models = pd.read_csv(b / "tables" / "models.csv")
    models = pd.concat(
        [models.iloc[1:], pd.DataFrame([{"experiment": EXP, "seed": 2, "metric": "x", "value": 1}])]
    )
    models.to_csv(b / "tables" / "models.csv", index=False)
    (b / "figures" / "F1_checkerboard_sync.png").unlink()
    rc, out, _ = run(capsys, base, b, "--json")
    assert rc == 1
    items = {(i["path"], i["item"]): i["status"] for i in json.loads(out)["items"]}
    assert items[("tables/models.csv", "checkerboard_sync seed=0 hard_accuracy_train")] == "removed"
    assert items[("tables/models.csv", "checkerboard_sync seed=2 x")] == "added"
    assert items[("figures/F1_checkerboard_sync.png", "(file)")] == "removed"


def test_trajectory_first_differing_step(base, tmp_path, capsys):
    b = write_tree(tmp_path / "b", state_change_step=3)
    rc, out, _ = run(capsys, base, b)
    assert rc == 1
    row = next(line for line in out.splitlines() if "scale1/state" in line)
    assert "max |Δ| 3" in row and "first step 3" in row and "2 of 384 differ" in row
    assert "scale1/accuracy" not in out

    report = json.loads(run(capsys, base, b, "--json")[1])
    (item,) = [i for i in report["items"] if i["item"] == "scale1/state"]
    assert item["path"] == f"{EXP}/seed0/rollout.zarr"
    assert (item["first_step"], item["max_abs"], item["n_differ"]) == (3, 3.0, 2)


def test_checkpoint_arrays(base, tmp_path, capsys):
    b = copy_of(base, tmp_path / "b")
    arrays = dict(np.load(base / EXP / "seed0" / "checkpoint" / "arrays.npz"))
    arrays["['params'][0]"][1, 2] += 0.5
    np.savez(b / EXP / "seed0" / "checkpoint" / "arrays.npz", **arrays)
    report = json.loads(run(capsys, base, b, "--json")[1])
    (item,) = report["items"]
    assert (item["kind"], item["item"], item["max_abs"], item["status"]) == (
        "checkpoint",
        "['params'][0]",
        0.5,
        "exceeds",
    )


def test_figure_pixels_and_html(base, tmp_path, capsys):
    b = write_tree(tmp_path / "b", line_color="C3")
    page = tmp_path / "diff.html"
    rc, out, err = run(capsys, base, b, "--html", page)
    assert rc == 1
    row = next(line for line in out.splitlines() if line.startswith("figures/F1_checkerboard_sync.png"))
    assert "% of pixels" in row and "max |Δ|" in row
    report = json.loads(run(capsys, base, b, "--json")[1])
    (item,) = [i for i in report["items"] if i["kind"] == "image"]
    assert 0 < item["fraction_pixels"] < 1 and item["max_abs"] > 0

    assert str(page) in err
    text = page.read_text()
    png = "figures/F1_checkerboard_sync.png"
    src_a = base64.b64encode((base / png).read_bytes()).decode()
    src_b = base64.b64encode((b / png).read_bytes()).decode()
    side = text[text.index('<div class="side">') :]
    assert side.index(src_a) < side.index(src_b) < side.index("</div>")  # A and B side by side
    assert "difference" in side
    assert 'src="http' not in text  # self-contained


def test_tolerance(base, tmp_path, capsys):
    b = write_tree(tmp_path / "b", accuracy=0.5 + 1e-4)
    rc, out, _ = run(capsys, base, b)
    assert rc == 1
    rc, out, _ = run(capsys, base, b, "--atol", "1e-3", "--all")
    assert rc == 0
    row = next(line for line in out.splitlines() if "hard_accuracy_train" in line and "seed=0" in line)
    assert row.endswith("within tolerance")
    assert "0.5001" in row
    assert run(capsys, base, b, "--rtol", "1e-3")[0] == 0
    assert run(capsys, base, b, "--rtol", "1e-5")[0] == 1


def test_provenance_explains(base, tmp_path, capsys):
    b = write_tree(tmp_path / "b", accuracy=0.75, jax_version="0.10.3", config_hash="c3d4e5f6a7b8c9d0")
    rc, out, _ = run(capsys, base, b)
    assert rc == 1
    line = next(line for line in out.splitlines() if line.startswith("provenance:"))
    assert "config_hash of checkerboard_sync differs (0919227e… → c3d4e5f6…)" in line
    assert "jax 0.10.2 → 0.10.3" in line
    assert "jaxlib" not in line
    report = json.loads(run(capsys, base, b, "--json")[1])
    assert {"field": "package", "name": "jax", "a": ["0.10.2"], "b": ["0.10.3"]} in report["provenance"]


def test_provenance_names_another_kind_of_cpu(base, tmp_path, capsys):
    """Two trees that differ in the CPU they ran on (and so in a result): the diff says so."""
    other = {
        "cpu_model": "AMD EPYC 7B13",
        "cpu_vendor": "AuthenticAMD",
        "cpu_simd": "sse4_1 sse4_2 avx avx2 fma f16c",
    }
    b = write_tree(tmp_path / "b", accuracy=0.75, provenance=other)
    rc, out, _ = run(capsys, base, b)
    assert rc == 1
    line = next(line for line in out.splitlines() if line.startswith("provenance:"))
    assert 'cpu_model "Intel(R) Xeon(R) Platinum 8488C" → "AMD EPYC 7B13"' in line
    assert "cpu_simd" in line and "cpu_vendor GenuineIntel → AuthenticAMD" in line
    assert "config_hash" not in line and "jax" not in line
    report = json.loads(run(capsys, base, b, "--json")[1])
    assert {f["field"] for f in report["provenance"]} == {"cpu_model", "cpu_simd", "cpu_vendor"}


def test_bad_path_and_revision(base, tmp_path, capsys):
    missing = tmp_path / "no-such-results"
    rc, _, err = run(capsys, missing, base)
    assert rc == 2 and "no-such-results" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = run(capsys, base, empty)
    assert rc == 2 and str(empty) in err and "no results tree" in err
    repo = make_repo(tmp_path / "repo")
    rc, _, err = run(capsys, "no-such-rev", base, "--repo", repo)
    assert rc == 2 and "no-such-rev" in err and "revision" in err


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@example.org", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(repo: Path) -> Path:
    """A git repository with two commits; version.txt says which."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    for version in ("1", "2"):
        (repo / "version.txt").write_text(version + "\n")
        git(repo, "add", "version.txt")
        git(repo, "commit", "-q", "-m", f"version {version}")
    return repo


def test_revisions(base, tmp_path, capsys, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    built = {"1": base, "2": write_tree(tmp_path / "v2", accuracy=0.75)}
    calls = []

    def fake_workflow(checkout, preset, cores, log):
        version = (checkout / "version.txt").read_text().strip()
        calls.append((version, preset))
        log.write_text("built\n")
        shutil.copytree(built[version], checkout / "results" / preset, dirs_exist_ok=True)
        return 0

    monkeypatch.setattr(diff.revisions, "run_workflow", fake_workflow)
    rc, out, err = run(capsys, "HEAD~1", "HEAD", "--repo", repo, "--json")
    assert rc == 1
    report = json.loads(out)
    sha1, sha2 = git(repo, "rev-parse", "HEAD~1"), git(repo, "rev-parse", "HEAD")
    assert (report["a"]["revision"], report["b"]["revision"]) == (sha1, sha2)
    assert report["a"]["path"] == str(repo / ".morphogen" / "diff" / sha1 / "results" / "test")
    assert [i["item"] for i in report["items"]] == ["checkerboard_sync seed=0 hard_accuracy_train"]
    assert sorted(calls) == [("1", "test"), ("2", "test")]
    assert err.count("building") == 2 and str(repo / ".morphogen" / "diff" / f"{sha1}.test.log") in err

    # A finished build is reused; B defaults to the working tree's results/<preset>, which the
    # workflow brings up to date (here: builds version 2, the checked-out one).
    rc, out, err = run(capsys, "HEAD", "--repo", repo)
    assert rc == 0 and "no differences" in out
    assert len(calls) == 3 and calls[-1] == ("2", "test") and "reusing" in err


def test_failed_build(tmp_path, capsys, monkeypatch):
    repo = make_repo(tmp_path / "repo")

    def failing_workflow(checkout, preset, cores, log):
        log.write_text("MissingInputException: something is wrong\n")
        return 1

    monkeypatch.setattr(diff.revisions, "run_workflow", failing_workflow)
    rc, _, err = run(capsys, "HEAD~1", "HEAD", "--repo", repo)
    assert rc == 2
    assert "building HEAD~1" in err and "failed" in err and ".log" in err
    assert "something is wrong" in err


def test_pdf_and_gif(base, tmp_path, capsys):
    import imageio.v3 as iio

    a, b = copy_of(base, tmp_path / "a"), copy_of(base, tmp_path / "b")
    (a / "figures" / "F1_checkerboard_sync.pdf").write_bytes(b"%PDF-1.4 A\n")
    (b / "figures" / "F1_checkerboard_sync.pdf").write_bytes(b"%PDF-1.4 B\n")
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[1, 0, 0] = 255  # distinct frames (equal ones may be merged by the GIF writer)
    iio.imwrite(a / "figures" / "F2.gif", frames, extension=".gif")
    frames[1, 2:4, 2:4] = 255
    iio.imwrite(b / "figures" / "F2.gif", frames, extension=".gif")
    report = json.loads(run(capsys, a, b, "--json")[1])
    items = {i["path"]: i for i in report["items"]}
    assert items["figures/F1_checkerboard_sync.pdf"]["status"] == "exceeds"
    gif = items["figures/F2.gif"]
    assert gif["status"] == "exceeds" and gif["a"] == "uint8[2, 8, 8, 3]"
    assert gif["n_differ"] == 4 and gif["fraction_pixels"] == 4 / 128
    # With a tolerance, a PDF whose PNG rendering is identical is within it.
    rc, out, _ = run(capsys, a, b, "--atol", "255")
    pdf = next(line for line in out.splitlines() if line.startswith("figures/F1_checkerboard_sync.pdf"))
    assert rc == 0 and pdf.endswith("within tolerance") and "F1_checkerboard_sync.png is identical" in pdf
