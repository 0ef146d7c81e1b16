"""Training methods of logic circuits (model.relaxation): what a training step runs forward and
backward, and that runs with noise stay deterministic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_MODEL

from morphogen import methods, rng, tasks, training
from morphogen.models import difflogic as dl


def _random_logits(params, key, scale=3.0):
    leaves, treedef = jax.tree.flatten(params["logits"])
    keys = jax.random.split(key, len(leaves))
    new = [jax.random.normal(k, z.shape) * scale for k, z in zip(keys, leaves)]
    return {"logits": jax.tree.unflatten(treedef, new), "wires": params["wires"]}


def _with_ops(params, ops):
    """Params whose argmax circuit is the gate indices ``ops``."""
    logits = jax.tree.map(lambda o: jnp.where(jax.nn.one_hot(o, 16, dtype=bool), 1.0, 0.0), ops)
    return {"logits": logits, "wires": params["wires"]}


PARAMS = _random_logits(dl.init(jax.random.key(1), TINY_MODEL), jax.random.key(2))
STATE = jax.random.randint(jax.random.key(3), (3, 9, 7, TINY_MODEL["channels"]), 0, 2).astype(jnp.float32)
KEY = jax.random.key(4)  # a polish search's own draws
GUMBEL = {**TINY_MODEL, "relaxation": "gumbel_st", "temperature": 1.0, "noise_scale": 1.0}


def _soft_step(params, cfg, key, step=0):
    return jax.jit(lambda p, x: dl.step(dl.relax(p, key, step, cfg), x, None, cfg))(params, STATE)


def _hard_step(params, cfg=TINY_MODEL):
    return jax.jit(lambda p, x: dl.hard_step(p, x, None, cfg))(params, STATE)


def test_gumbel_st_forward_is_the_hard_circuit_of_the_sampled_gates():
    for k in range(3):
        key = jax.random.key(10 + k)
        out = _soft_step(PARAMS, GUMBEL, key)
        ops = dl.sampled_ops(PARAMS, key, GUMBEL)
        np.testing.assert_array_equal(np.asarray(out), np.asarray(_hard_step(_with_ops(PARAMS, ops))))
    # The noise matters: the sampled circuit is not the argmax circuit, and another key samples
    # another one.
    argmax = jax.tree.leaves(dl.hard_ops(PARAMS))
    sampled = jax.tree.leaves(dl.sampled_ops(PARAMS, jax.random.key(10), GUMBEL))
    other = jax.tree.leaves(dl.sampled_ops(PARAMS, jax.random.key(11), GUMBEL))
    assert any(np.any(a != s) for a, s in zip(argmax, sampled))
    assert any(np.any(a != s) for a, s in zip(other, sampled))


def test_gumbel_st_without_noise_and_cold_is_the_argmax_circuit():
    cold = {**GUMBEL, "noise_scale": 0.0, "temperature": 1e-4}
    argmax = np.asarray(_hard_step(PARAMS))
    np.testing.assert_array_equal(np.asarray(_soft_step(PARAMS, cold, jax.random.key(5))), argmax)
    # ... and so is the relaxation whose gradient it passes back: the Gumbel softmax of the
    # logits at temperature -> 0, the soft circuit of logits / temperature.
    for t in (1e-2, 1e-4):
        scaled = {"logits": jax.tree.map(lambda z, t=t: z / t, PARAMS["logits"]), "wires": PARAMS["wires"]}
        soft = jax.jit(lambda p, x: dl.step(p, x, None, TINY_MODEL))(scaled, STATE)
        np.testing.assert_allclose(np.asarray(soft), argmax, atol=1e-3)


def test_temperature_schedule_decays_geometrically_then_holds():
    cfg = {"temperature": 2.0, "temperature_final": 0.5, "temperature_steps": 100}
    values = [float(dl.temperature_at(cfg, s)) for s in (0, 50, 100, 400)]
    np.testing.assert_allclose(values, [2.0, 1.0, 0.5, 0.5], rtol=1e-6)
    assert float(dl.temperature_at({}, 7)) == 1.0


def test_late_schedules_hold_until_their_start_then_run_as_configured():
    # a method that hardens only once the mixture has left its start (the `_late` methods)
    cfg = {"temperature": 1.0, "temperature_final": 0.1, "temperature_start": 300, "temperature_steps": 300}
    values = [float(dl.temperature_at(cfg, s)) for s in (0, 299, 300, 450, 600, 900)]
    np.testing.assert_allclose(values, [1.0, 1.0, 1.0, 0.1**0.5, 0.1, 0.1], rtol=1e-5)
    mixed = {"hard_fraction": 1.0, "hard_fraction_start": 300, "hard_fraction_steps": 300}
    shares = [float(dl.hard_fraction_at(mixed, s)) for s in (0, 300, 450, 600, 900)]
    np.testing.assert_allclose(shares, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    # no gate is drawn hard before the start: the step's params are the softmax mixture's
    params = dl.init(jax.random.key(0), {**TINY_MODEL, "relaxation": "mixed_st", **mixed})
    early = dl.relax(params, jax.random.key(1), 299, {**TINY_MODEL, "relaxation": "mixed_st", **mixed})
    late = dl.relax(params, jax.random.key(1), 600, {**TINY_MODEL, "relaxation": "mixed_st", **mixed})
    for z, w, h in zip(*(jax.tree.leaves(t) for t in (params["logits"], early["weights"], late["weights"]))):
        np.testing.assert_allclose(np.asarray(w), np.asarray(jax.nn.softmax(z, axis=-1)), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(h), np.asarray(jax.nn.one_hot(jnp.argmax(z, -1), 16)))


def test_noise_makes_the_mixture_a_gumbel_softmax_sample_and_its_discrete_gates_samples():
    """noise_scale on softmax and mixed_st: Gumbel noise on the logits, drawn from the step's key."""

    def stepper(cfg):
        return jax.jit(lambda p, k: dl.step(dl.relax(p, k, 1, cfg), STATE, None, cfg))

    keys = [jax.random.key(k) for k in (7, 8)]
    plain = np.asarray(_soft_step(PARAMS, TINY_MODEL, None))
    noisy = stepper({**TINY_MODEL, "noise_scale": 1.0})
    a, b = (np.asarray(noisy(PARAMS, k)) for k in keys)
    np.testing.assert_array_equal(a, np.asarray(noisy(PARAMS, keys[0])))
    assert np.abs(a - plain).max() > 1e-3 and np.abs(a - b).max() > 1e-3
    # the mixture is softmax(logits + noise): at temperature -> 0, the sampled circuit
    cold_cfg = {**TINY_MODEL, "noise_scale": 1.0, "temperature": 1e-4}
    mixed_cfg = {**TINY_MODEL, "noise_scale": 1.0, "relaxation": "mixed_st", "hard_fraction": 1.0}
    cold, mixed = stepper(cold_cfg), stepper(mixed_cfg)
    for k in keys:
        hard = np.asarray(_hard_step(_with_ops(PARAMS, dl.sampled_ops(PARAMS, k, cold_cfg))))
        np.testing.assert_allclose(np.asarray(cold(PARAMS, k)), hard, atol=1e-3)
        # mixed_st with every gate discrete runs the same sampled circuit exactly
        np.testing.assert_array_equal(np.asarray(mixed(PARAMS, k)), hard)
    argmax = jax.tree.leaves(dl.hard_ops(PARAMS))
    sampled = jax.tree.leaves(dl.sampled_ops(PARAMS, keys[0], mixed_cfg))
    assert any(np.any(x != y) for x, y in zip(argmax, sampled))
    # without noise nothing changes
    np.testing.assert_array_equal(
        np.asarray(stepper({**TINY_MODEL, "noise_scale": 0.0})(PARAMS, None)), plain
    )


def test_backward_mass_keeps_the_mixture_forward_and_gives_confident_gates_a_gradient():
    """backward_mass on softmax: the forward pass is the mixture's; the gradient is that of a
    softmax hot enough that a gate as sure as the pass-through start (margin 10) can still move."""
    params = dl.init(jax.random.key(0), TINY_MODEL)
    adaptive = {**TINY_MODEL, "backward_mass": 0.1}
    np.testing.assert_array_equal(
        np.asarray(_soft_step(params, adaptive, None)), np.asarray(_soft_step(params, TINY_MODEL, None))
    )
    plain = _layer_gradients(TINY_MODEL, params, None)
    hot = _layer_gradients(adaptive, params, None)
    ratio = sum(g.sum() for g in hot) / sum(g.sum() for g in plain)
    assert ratio > 10


def _layer_gradients(cfg, params, key):
    task = tasks.make({"name": "checkerboard", "size": 9}, channels=cfg["channels"])
    x0 = jax.random.randint(jax.random.key(4), (2, 9, 9, cfg["channels"]), 0, 2).astype(jnp.float32)

    def loss(logits):
        p = dl.relax({"logits": logits, "wires": params["wires"]}, key, 0, cfg)
        x = x0
        for _ in range(3):
            x = dl.step(p, x, None, cfg)
        return task.loss(x)

    grads = jax.grad(loss)(params["logits"])
    return [np.abs(np.asarray(g)).sum(-1) for g in jax.tree.leaves(grads)]  # per gate


@pytest.mark.parametrize("method", ["gumbel_st", "hard_st"])
@pytest.mark.parametrize("start", ["random", "pass_through"])
def test_gradient_flows_where_the_soft_mixtures_does(method, start):
    """Every layer that gets a gradient under the soft mixture gets one under the straight-
    through method, and so do most of its gates: also from the pass-through start, where the
    chosen gate leads by 10 and a plain softmax at temperature 1 passes almost nothing back."""
    base = dl.init(jax.random.key(1), TINY_MODEL)
    params = PARAMS if start == "random" else base
    soft = _layer_gradients({**TINY_MODEL, "relaxation": "softmax"}, params, jax.random.key(7))
    st = _layer_gradients({**TINY_MODEL, "relaxation": method}, params, jax.random.key(7))
    for i, (gs, gt) in enumerate(zip(soft, st)):
        assert np.all(np.isfinite(gt))
        if np.any(gs > 0):
            assert np.any(gt > 1e-6), f"layer {i}: no gradient"
            assert np.mean(gt > 0) >= 0.5 * np.mean(gs > 0), (
                f"layer {i}: {np.mean(gt > 0)} vs {np.mean(gs > 0)}"
            )


def _train(cfg, tmp_path, name, steps=None):
    if steps is not None:
        cfg = {**cfg, "training": {**cfg["training"], "steps": steps}}
    return training.train(
        cfg, 0, experiment="tiny", preset="unit", progress_dir=tmp_path / name, log=lambda m: None
    )


def test_hard_st_trains_the_deployed_circuit_without_a_gap(tiny_experiment, tmp_path):
    cfg = tiny_experiment
    cfg["model"].update(relaxation="hard_st", pass_through_logit=2.0)
    h = _train(cfg, tmp_path, "hard")["history"]
    # The forward pass is the argmax circuit: the training loss is the hard loss.
    np.testing.assert_allclose(h["gap"], 0.0, atol=1e-3)
    np.testing.assert_allclose(h["soft_loss"], h["hard_loss"], atol=1e-3)


def test_softmax_logs_its_gap(tiny_experiment, tmp_path):
    cfg = tiny_experiment
    cfg["model"]["pass_through_logit"] = 2.0
    h = _train(cfg, tmp_path, "soft")["history"]
    np.testing.assert_allclose(h["gap"], h["hard_loss"] - h["soft_loss"], rtol=1e-5, atol=1e-3)
    assert np.any(np.abs(h["gap"]) > 1.0)  # the soft mixture is not its argmax circuit


def test_bad_relaxation_is_named():
    with pytest.raises(
        ValueError,
        match=r"model.relaxation must be one of softmax, gumbel_st, hard_st, mixed_st, got 'gumble'",
    ):
        dl.validate({**TINY_MODEL, "relaxation": "gumble"})


ROUNDED = {**TINY_MODEL, "round_states": True}


def test_rounded_states_step_reads_the_binary_state_and_passes_the_gradient_through():
    soft = STATE * 0.6 + 0.2  # analog values on both sides of 1/2
    step = jax.jit(lambda p, x: dl.step(p, x, None, ROUNDED))
    plain = jax.jit(lambda p, x: dl.step(p, x, None, TINY_MODEL))
    # forward: the step of the rounded state, not of the analog one
    np.testing.assert_array_equal(np.asarray(step(PARAMS, soft)), np.asarray(plain(PARAMS, jnp.round(soft))))
    assert not np.allclose(np.asarray(plain(PARAMS, soft)), np.asarray(plain(PARAMS, jnp.round(soft))))
    # backward: as if unrounded (straight-through), so a rollout's gradient reaches earlier steps
    g_round = jax.grad(lambda x: jnp.sum(step(PARAMS, x) ** 2))(soft)
    g_plain = jax.grad(lambda x: jnp.sum(plain(PARAMS, x) ** 2))(jnp.round(soft))
    np.testing.assert_allclose(np.asarray(g_round), np.asarray(g_plain), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(g_round)).sum() > 0
    # the deployed circuit is unchanged: on binary states rounding is the identity
    hard = dl.harden(PARAMS)
    np.testing.assert_array_equal(np.asarray(step(hard, STATE)), np.asarray(_hard_step(PARAMS)))


def _keys(tree: dict, prefix: str = "") -> set[str]:
    """Dotted paths of the leaves of a nested dict."""
    out = set()
    for k, v in tree.items():
        out |= _keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


def test_every_training_method_names_the_optimizer_and_init_keys_any_method_changes():
    """A study compares methods on the same experiment: a method that left the learning rate or
    weight decay to the experiment would mean something else in each preset (the quick async
    experiment's lr is 0.2, the reference's 0.05)."""
    import yaml
    from conftest import ROOT

    methods = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["training_methods"]
    # a schedule gate is one setting: null, or its keys; so is polishing
    whole = ("training.schedule_gate", "training.polish")
    shared = {
        name: {
            next((w for w in whole if k.startswith(w + ".")), k)
            for k in _keys(m)
            if k.startswith("training.") or k.split(".")[-1] in ("pass_through_logit", "round_states")
        }
        for name, m in methods.items()
    }
    union = set().union(*shared.values())
    assert {"training.optimizer.lr", "training.optimizer.weight_decay"} <= union
    for name, keys in shared.items():
        assert keys == union, f"training_methods.{name} leaves {sorted(union - keys)} to the experiment"


def test_an_experiment_takes_the_method_it_names_and_the_study_starts_without_it():
    """`training_method` merges the named method over the experiment; the study's run of another
    method starts from the experiment as configured, so no key of the first method leaks in."""
    import yaml
    from conftest import ROOT

    from morphogen import methods

    named = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["training_methods"]
    late = next(n for n, m in named.items() if "hard_fraction_start" in m["model"])
    exp = {
        "model": {"relaxation": "softmax", "channels": 1},
        "training": {"steps": 900, "optimizer": {"lr": 0.2, "decay_steps": 800}},
        "training_method": late,
    }
    taken = methods.apply(exp, named)
    assert taken["training_method"] == late
    assert taken["model"]["hard_fraction_start"] == named[late]["model"]["hard_fraction_start"]
    assert taken["model"]["channels"] == 1 and taken["training"]["steps"] == 900
    assert taken["training"]["optimizer"]["lr"] == named[late]["training"]["optimizer"]["lr"]
    assert taken["training"]["optimizer"]["decay_steps"] == 800  # a key the method leaves alone
    assert exp["model"] == {"relaxation": "softmax", "channels": 1}  # the input is not changed

    study_run = methods.apply(methods.without_method(exp), named, "softmax")
    assert "training_method" not in study_run
    assert "hard_fraction_start" not in study_run["model"]
    assert study_run["model"]["relaxation"] == "softmax"
    assert methods.apply(methods.without_method(exp), named) == methods.without_method(exp)

    with pytest.raises(ValueError, match="experiments.x.training_method names training method 'adam'"):
        methods.apply({**exp, "training_method": "adam"}, named, where="experiments.x.training_method")


def test_state_noise_perturbs_training_rollouts_only():
    """model.state_noise: a training step reads its state with noise drawn from the step's key
    (the same key, the same output); evaluation, which runs the params themselves, reads it
    exactly."""
    cfg = {**TINY_MODEL, "state_noise": 0.2}
    step = jax.jit(lambda p, k: dl.step(dl.relax(p, jax.random.key(0), 1, cfg), STATE, k, cfg))
    a, b = (np.asarray(step(PARAMS, jax.random.key(k))) for k in (1, 2))
    np.testing.assert_array_equal(a, np.asarray(step(PARAMS, jax.random.key(1))))
    plain = np.asarray(_soft_step(PARAMS, TINY_MODEL, None))
    assert np.abs(a - plain).max() > 1e-3 and np.abs(a - b).max() > 1e-3
    # the relaxation is still the mixture: only the state read differs
    relaxed = dl.relax(PARAMS, jax.random.key(0), 1, cfg)
    for z, w in zip(jax.tree.leaves(PARAMS["logits"]), jax.tree.leaves(relaxed["weights"])):
        np.testing.assert_allclose(np.asarray(w), np.asarray(jax.nn.softmax(z, axis=-1)), rtol=1e-6)
    evaluated = jax.jit(lambda p: dl.step(p, STATE, jax.random.key(1), cfg))(PARAMS)
    np.testing.assert_array_equal(np.asarray(evaluated), plain)


def test_the_study_table_says_why_a_seed_failed(tmp_path):
    """A run never exact is a gap failure when its relaxed circuit had learnt the task (a
    training loss under one cell's error at some step) and unlearnt otherwise; the summary
    counts both among the failed seeds."""
    import pandas as pd

    from morphogen import tables

    runs = {  # seed: (hard_accuracy, soft_loss) per logged step
        0: ([0.5, 0.9, 1.0], [128.0, 20.0, 0.0]),  # exact at the last step
        1: ([0.5, 0.8, 0.97], [128.0, 0.3, 6.0]),  # learnt at step 2, hard circuit 97%
        2: ([0.5, 0.6, 0.7], [128.0, 60.0, 55.0]),  # a mixture that never learnt
    }
    paths = []
    for seed, (acc, soft) in runs.items():
        d = tmp_path / "checkerboard_sync.m" / f"seed{seed}"
        d.mkdir(parents=True)
        pd.DataFrame(
            {
                "step": [1, 2, 3],
                "hard_accuracy": acc,
                "soft_loss": soft,
                "hard_loss": [1.0, 1.0, 0.0 if seed == 0 else 8.0],
            }
        ).to_csv(d / "train.csv", index=False)
        paths.append(str(d / "train.csv"))
    # seed 1's circuit was made exact by training.polish (the study table reads its report)
    polished = {("checkerboard_sync.m", 1): {"polish_changes": 2, "polished_exact": True}}
    table = tables.training_method_runs(paths, polished, {"checkerboard_sync.m": 3})
    assert table.failure.tolist() == ["", "gap", "unlearnt"]
    assert table.best_soft_loss.tolist() == [0.0, 0.3, 55.0]
    assert table.exact_after_polish.tolist() == [True, True, False]
    summary = tables.training_methods_summary(table).iloc[0]
    counts = ("reached_exact", "exact_after_polish", "failed_seeds", "failed_gap", "failed_unlearnt")
    assert tuple(summary[k] for k in counts) == (1, 2, "1 2", 1, 1)


def _rollout_objective(target, cfg=TINY_MODEL, steps=3):
    """objective(params, hard): squared distance of a 3-step rollout from STATE to ``target``."""

    def objective(p, hard):
        x = STATE
        for _ in range(steps):
            x = (dl.hard_step if hard else dl.step)(p, x, None, cfg)
        return jnp.sum((x - target) ** 2)

    return objective


def test_polish_repairs_a_circuit_one_gate_short():
    """A circuit with one gate switched away from a reference circuit: polishing (gradient-ranked
    switches, evaluated exactly) finds switches that make its hard rollout the reference's
    again, touches no other gate, and makes the same switches when run again."""
    reference = _with_ops(PARAMS, dl.hard_ops(PARAMS))
    x = STATE
    for _ in range(3):
        x = dl.hard_step(reference, x, None, TINY_MODEL)
    target = x
    objective = _rollout_objective(target)
    ops = dl.hard_ops(PARAMS)
    # the first gate of the first update layer whose switch (to AND, or to OR if it is AND)
    # changes the rollout
    broken = None
    for g in range(ops["update"][0].shape[0]):
        new = 1 if int(ops["update"][0][g]) != 1 else 7
        trial = jax.tree.map(lambda o: o, ops)
        trial["update"] = list(trial["update"])
        trial["update"][0] = trial["update"][0].at[g].set(new)
        candidate = _with_ops(PARAMS, trial)
        if float(objective(candidate, True)) > 0:
            broken = candidate
            break
    assert broken is not None
    before = float(objective(broken, True))
    cfg = {"candidates": 64, "max_changes": 5, "chunk": 32}
    repaired, report = dl.polish(broken, objective, cfg, KEY, log=lambda m: None)
    assert report["objective_before"] == before > 0
    assert report["objective_after"] == 0.0 == float(objective(dl.harden(repaired), True))
    assert 1 <= report["changes"] <= 5
    # only the switched gates' logits change, and the rest of the params are the same objects
    changed = sum(
        int(np.sum(np.any(np.asarray(a) != np.asarray(b), axis=-1)))
        for a, b in zip(jax.tree.leaves(broken["logits"]), jax.tree.leaves(repaired["logits"]))
    )
    assert changed == report["changes"] and repaired["wires"] is broken["wires"]
    again, _ = dl.polish(broken, objective, cfg, KEY, log=lambda m: None)
    for a, b in zip(jax.tree.leaves(again["logits"]), jax.tree.leaves(repaired["logits"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # an exact circuit is left as it is
    same, none = dl.polish(reference, objective, cfg, KEY, log=lambda m: None)
    assert none["changes"] == 0 and none["objective_after"] == 0.0


def _broken(reference, objective, n_broken: int):
    """``reference`` with its first ``n_broken`` update gates (of the first update layer) whose
    switch to AND (OR where it is AND) changes the rollout switched so."""
    ops = dl.hard_ops(reference)
    trial = jax.tree.map(lambda o: o, ops)
    trial["update"] = list(trial["update"])
    switched = 0
    for g in range(ops["update"][0].shape[0]):
        one = jax.tree.map(lambda o: o, ops)
        one["update"] = list(one["update"])
        new = 1 if int(ops["update"][0][g]) != 1 else 7
        one["update"][0] = one["update"][0].at[g].set(new)
        if float(objective(_with_ops(reference, one), True)) > 0:
            trial["update"][0] = trial["update"][0].at[g].set(new)
            switched += 1
            if switched == n_broken:
                break
    return _with_ops(reference, trial)


def test_evolving_polish_drifts_to_an_exact_circuit_and_is_deterministic():
    """search: evolve: a circuit with four gates switched away from a reference circuit evolves
    (random switches, the best of the offspring kept when it is no worse) into one whose hard
    rollout is the reference's; the report counts the gates that differ from the trained
    circuit's; the same key evolves the same circuit; an exact circuit is left alone."""
    reference = _with_ops(PARAMS, dl.hard_ops(PARAMS))
    x = STATE
    for _ in range(3):
        x = dl.hard_step(reference, x, None, TINY_MODEL)
    objective = _rollout_objective(x)
    broken = _broken(reference, objective, 4)
    before = float(objective(broken, True))
    assert before > 0
    cfg = {"search": "evolve", "offspring": 16, "mutations": 1, "generations": 400}
    evolved, report = dl.polish(broken, objective, cfg, KEY, log=lambda m: None)
    assert report["objective_before"] == before
    assert report["objective_after"] == 0.0 == float(objective(dl.harden(evolved), True))
    assert 1 <= report["generations"] < 400
    changed = sum(
        int(np.sum(np.any(np.asarray(a) != np.asarray(b), axis=-1)))
        for a, b in zip(jax.tree.leaves(broken["logits"]), jax.tree.leaves(evolved["logits"]))
    )
    assert changed == report["changes"] >= 1 and evolved["wires"] is broken["wires"]
    again, same_report = dl.polish(broken, objective, cfg, KEY, log=lambda m: None)
    assert same_report["generations"] == report["generations"]
    for a, b in zip(jax.tree.leaves(again["logits"]), jax.tree.leaves(evolved["logits"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    _, none = dl.polish(reference, objective, cfg, KEY, log=lambda m: None)
    assert none["generations"] == 0 and none["changes"] == 0
    with pytest.raises(
        ValueError, match="training.polish.search must be one of gradient, evolve, got 'anneal'"
    ):
        dl.polish(broken, objective, {"search": "anneal"}, KEY, log=lambda m: None)


def test_a_run_polished_by_evolution_delivers_the_circuit_its_report_scores(tiny_experiment, tmp_path):
    """training.polish with search: evolve at the end of a run whose circuit is not exact: the
    delivered circuit's hard loss on the polish's start states is the report's objective_after,
    no higher than objective_before, after at most `generations` generations."""
    cfg = tiny_experiment
    cfg["training"]["polish"] = {
        "search": "evolve",
        "states": 2,
        "offspring": 4,
        "mutations": 2,
        "generations": 30,
    }
    r = training.train(cfg, 0, experiment="tiny", preset="test", progress_dir=tmp_path)
    report = r["metadata"]["polish"]
    assert report["objective_before"] > 0  # 20 steps do not draw the checkerboard
    assert report["objective_after"] <= report["objective_before"]
    assert 1 <= report["generations"] <= 30
    exp = training.build(cfg)
    k_x, k_roll = jax.random.split(rng.stream(0, "polish"))
    x0 = exp.task.initial_states(k_x, 2)
    run = training.rollout_objective(exp, cfg["training"])
    assert float(run(exp.hard_step, r["params"], x0, k_roll)[0]) == report["objective_after"]


def test_polish_is_for_circuits_trained_by_gradient(tiny_experiment):
    cfg = tiny_experiment
    cfg["training"].update(regime="evolution", population=4, elites=1, mutation=0.1, polish={"states": 2})
    with pytest.raises(
        ValueError, match="training.polish needs .* not family 'difflogic' with regime 'evolution'"
    ):
        training.train(cfg, 0, experiment="e", preset="unit", progress_dir="/nonexistent", log=lambda m: None)


def test_the_study_trains_one_attempt_as_long_as_one_of_the_experiments_attempts():
    from conftest import ROOT

    # quick's async checkerboard allows a second attempt after 1,200 steps; the study's run is one
    async_exp = methods.preset_experiment(ROOT / "config", "quick", "checkerboard_async")
    assert async_exp["training"]["restart_after"] > 0
    once = methods.one_attempt(async_exp)
    assert once["training"]["restart_after"] == 0
    assert once["training"]["steps"] == async_exp["training"]["restart_after"]
    assert async_exp["training"]["restart_after"] > 0  # the experiment itself is left as it was
    sync_exp = methods.preset_experiment(ROOT / "config", "quick", "checkerboard_sync")
    assert methods.one_attempt(sync_exp)["training"]["steps"] == sync_exp["training"]["steps"]
