"""Named training methods (config key ``training_methods``): how an experiment takes one.

A training method is a set of model and training keys (e.g. the DiffLogic relaxation and its
optimizer). An experiment takes one with its ``training_method`` key; the training-method
study (``study``) trains an experiment with each method it lists, starting from the experiment
without its own method, so that every study run of a method means the same whatever the preset
picked for the experiment.
"""

from __future__ import annotations

from pathlib import Path


def merged(base: dict, over: dict) -> dict:
    """A copy of ``base`` with ``over`` merged in, nested dicts key by key (``over`` wins)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def without_method(exp: dict) -> dict:
    """The experiment as configured, before any training method: its ``training_method`` key
    dropped (the keys that method would set are not in ``exp`` until :func:`apply`)."""
    return {k: v for k, v in exp.items() if k != "training_method"}


def apply(exp: dict, methods: dict, method: str | None = None, where: str = "training_method") -> dict:
    """The experiment ``exp`` trained with the training method ``method``: a copy with the
    method's model and training keys merged over the experiment's. Without ``method``, the one
    that ``exp``'s own ``training_method`` key names (kept in the result, so a run's config
    says which method it took), or ``exp`` unchanged if it names none. ``where`` is the config
    key that named the method, for the error an unknown name raises."""
    own = method is None
    method = exp.get("training_method") if own else method
    if method is None:
        return dict(exp)
    if method not in methods:
        raise ValueError(
            f"config key {where} names training method {method!r}, which is not in "
            f"training_methods ({', '.join(sorted(methods)) or 'none'})"
        )
    out = merged(without_method(exp), methods[method])
    if own:
        out["training_method"] = method
    return out


def one_attempt(exp: dict) -> dict:
    """The experiment as the study trains it: one attempt (no restarts), as long as one of the
    experiment's attempts (``training.restart_after``, or its ``training.steps`` without
    restarts), so that a method's share of seeds is its odds per attempt."""
    training = dict(exp["training"])
    restart_after = int(training.get("restart_after", 0))
    if restart_after:
        training["steps"] = min(restart_after, int(training["steps"]))
    training["restart_after"] = 0
    return {**exp, "training": training}


def preset_experiment(config_dir: str | Path, preset: str, name: str, method: str | None = None) -> dict:
    """Experiment ``name`` as preset ``preset`` configures it (``config.yaml`` with
    ``presets/<preset>.yaml`` merged in, no ``--config``), trained with ``method``, or with the
    method the experiment names itself when ``method`` is None (as the workflow runs it)."""
    import yaml

    config_dir = Path(config_dir)
    base = yaml.safe_load((config_dir / "config.yaml").read_text())
    over = yaml.safe_load((config_dir / "presets" / f"{preset}.yaml").read_text()) or {}
    cfg = merged(base, over)
    return apply(cfg["experiments"][name], cfg.get("training_methods", {}), method)
