"""Resolving A and B: directories, git revisions (built in worktrees), the working tree."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from morphogen.diff.core import CACHE, BuildError, DiffError, Tree

# ---------------------------------------------------------------------------------------------
# Resolving A and B: directories, revisions, the working tree


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def repo_root(start: Path) -> Path:
    try:
        proc = _git(start, "rev-parse", "--show-toplevel")
    except OSError as e:
        raise DiffError(f"git is not available: {e}") from e
    if proc.returncode != 0:
        raise DiffError(f"{start} is not inside a git repository")
    return Path(proc.stdout.strip())


def _is_tree(p: Path) -> bool:
    return any((p / d).is_dir() for d in ("tables", "figures")) or any(p.glob("*/seed*"))


def find_results(path: Path, preset: str) -> Path | None:
    """The results tree a directory names: ``results/<preset>`` in it, itself, or ``<preset>`` in it."""
    for candidate in (path / "results" / preset, path, path / preset):
        if candidate.is_dir() and _is_tree(candidate):
            return candidate
    return None


def run_workflow(checkout: Path, preset: str, cores: int, log: Path) -> int:
    """Build ``figures`` of ``preset`` in a checkout with this interpreter; output goes to ``log``.

    Returns the exit status. The checkout's own ``src/`` comes first on ``PYTHONPATH``, so its
    library is the one that runs.
    """
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        str(cores),
        "figures",
        "--config",
        f"preset={preset}",
    ]
    path = os.pathsep.join(p for p in (str(checkout / "src"), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        fh.write(f"# in {checkout}\n$ {shlex.join(cmd)}\n")
        fh.flush()
        return subprocess.run(cmd, cwd=checkout, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode


def _build(label: str, checkout: Path, preset: str, cores: int, log: Path) -> Path:
    rc = run_workflow(checkout, preset, cores, log)
    results = checkout / "results" / preset
    if rc:
        tail = ""
        if log.exists():
            lines = log.read_text(errors="replace").splitlines()[-15:]
            tail = "\n" + "\n".join("  " + line for line in lines)
        raise BuildError(f"building {label} failed (snakemake exit status {rc}); log: {log}{tail}")
    if not results.is_dir():
        raise BuildError(f"building {label} wrote no {results}; log: {log}")
    return results


def revision_tree(
    root: Path, rev: str, sha: str, *, preset: str, cores: int, cache: Path, rebuild=False
) -> Path:
    """The results tree of commit ``sha``, built in the worktree ``<cache>/<sha>`` unless built already."""
    wt = cache / sha
    label = f"{rev} ({sha[:10]})"
    done = cache / f"{sha}.{preset}.done"
    if not (wt / ".git").exists():
        cache.mkdir(parents=True, exist_ok=True)
        if wt.exists() and any(wt.iterdir()):
            raise DiffError(f"{wt} exists but is not a git worktree; remove it to build {label}")
        # --force: the path may still be registered from a worktree whose directory was deleted
        proc = _git(root, "worktree", "add", "--force", "--detach", str(wt), sha)
        if proc.returncode != 0:
            raise DiffError(f"cannot check out {label} in {wt}: {proc.stderr.strip()}")
    elif _git(wt, "rev-parse", "HEAD").stdout.strip() != sha:
        done.unlink(missing_ok=True)
        proc = _git(wt, "checkout", "--quiet", "--detach", sha)
        if proc.returncode != 0:
            raise DiffError(f"cannot check out {label} in {wt}: {proc.stderr.strip()}")
    results = wt / "results" / preset
    if results.is_dir() and done.exists() and not rebuild:
        _progress(f"{label}: reusing the build in {results}")
        return results
    log = cache / f"{sha}.{preset}.log"
    _progress(f"building {label}, preset {preset}, in {wt} (log: {log})")
    done.unlink(missing_ok=True)
    results = _build(label, wt, preset, cores, log)
    done.write_text(f"{sha} {preset}\n")
    return results


def resolve(
    spec: str | None, *, repo: Path, preset: str, cores: int, cache: Path | None = None, rebuild=False
) -> Tree:
    """A results directory, a git revision, or (``None``) the working tree's ``results/<preset>``."""
    if spec is not None:
        path = Path(spec).expanduser()
        if path.is_dir():
            results = find_results(path, preset)
            if results is None:
                raise DiffError(
                    f"{spec} holds no results tree (expected results/{preset}/ in it, or tables/, "
                    "figures/ and <experiment>/seed<k>/ directly)"
                )
            return Tree(spec, results)
        if path.exists():
            raise DiffError(f"{spec} is a file, not a results directory or a revision")
    try:
        root = repo_root(repo)
    except DiffError as e:
        if spec is None:
            raise DiffError(f"no B given, and the working tree is unknown: {e}") from e
        raise DiffError(f"{spec} is not a directory, and not a revision: {e}") from e
    cache = cache or root / CACHE
    if spec is None:
        # Always run the workflow here: Snakemake brings results up to date with the edits in
        # the working tree (rerunning only what changed), and is quick when nothing did.
        log = cache / f"workspace.{preset}.log"
        _progress(f"bringing the working tree's results up to date, preset {preset} (log: {log})")
        results = _build("the working tree", root, preset, cores, log)
        return Tree("workspace", results)
    proc = _git(root, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    if proc.returncode != 0:
        raise DiffError(f"{spec} is neither a directory nor a revision of the repository at {root}")
    sha = proc.stdout.strip()
    results = revision_tree(root, spec, sha, preset=preset, cores=cores, cache=cache, rebuild=rebuild)
    return Tree(spec, results, revision=sha)
