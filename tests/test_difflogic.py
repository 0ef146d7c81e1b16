"""The DiffLogic circuit: gates, wiring, soft vs hard evaluation, sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import PAPER_SYNC, TINY_MODEL

from morphogen.models import difflogic as dl
from morphogen.models import logic_gather

BOOL_PAIRS = [(0, 0), (0, 1), (1, 0), (1, 1)]
EXPECTED = {  # gate index -> outputs on (0,0), (0,1), (1,0), (1,1), reference order
    0: (0, 0, 0, 0), 1: (0, 0, 0, 1), 2: (0, 0, 1, 0), 3: (0, 0, 1, 1),
    4: (0, 1, 0, 0), 5: (0, 1, 0, 1), 6: (0, 1, 1, 0), 7: (0, 1, 1, 1),
    8: (1, 0, 0, 0), 9: (1, 0, 0, 1), 10: (1, 0, 1, 0), 11: (1, 0, 1, 1),
    12: (1, 1, 0, 0), 13: (1, 1, 0, 1), 14: (1, 1, 1, 0), 15: (1, 1, 1, 1),
}  # fmt: skip


@pytest.mark.parametrize("op", range(16))
def test_each_hard_gate_has_its_truth_table(op):
    """Hard gates, evaluated bitwise on packed words, give the reference truth tables."""
    a = jnp.asarray([p[0] for p in BOOL_PAIRS], jnp.uint32)
    b = jnp.asarray([p[1] for p in BOOL_PAIRS], jnp.uint32)
    m = jnp.uint32(0) - jnp.asarray(dl.ANF[op])
    out = m[0] ^ (a & (m[1] ^ (b & m[3]))) ^ (b & m[2])
    assert tuple(int(v) & 1 for v in out) == EXPECTED[op], dl.GATE_NAMES[op]


@pytest.mark.parametrize("op", range(16))
def test_soft_gate_equals_hard_gate_on_booleans(op):
    for (a, b), want in zip(BOOL_PAIRS, EXPECTED[op]):
        assert float(dl.relaxed_gate(op, float(a), float(b))) == want


def test_relaxations_are_the_reference_formulas():
    a, b = 0.3, 0.8
    assert dl.relaxed_gate(6, a, b) == pytest.approx(a + b - 2 * a * b)  # XOR
    assert dl.relaxed_gate(7, a, b) == pytest.approx(a + b - a * b)  # OR
    assert dl.relaxed_gate(13, a, b) == pytest.approx(1 - a + a * b)  # NOT A OR B


def test_unique_wiring_uses_every_input():
    for n_in, n_out in [(264, 256), (256, 128), (8, 4), (4, 2), (9, 5), (40, 20), (16, 16)]:
        a, b = dl.unique_wires(jax.random.key(n_in), n_in, n_out)
        assert len(a) == len(b) == n_out
        assert set(a) | set(b) == set(range(n_in)), (n_in, n_out)
        assert np.all(a != b)


def test_unique_wiring_rejects_too_narrow_layers():
    with pytest.raises(ValueError, match="2\\*out_dim >= in_dim"):
        dl.unique_wires(jax.random.key(0), 10, 4)


def test_first_kernel_pairs_each_neighbour_with_the_centre():
    a, b = dl.first_kernel_wires(jax.random.key(3))
    assert sorted(a.tolist()) == [0, 1, 2, 3, 5, 6, 7, 8]
    assert b.tolist() == [4] * 8


def test_pass_through_initialisation():
    params = dl.init(jax.random.key(0), TINY_MODEL)
    for z in jax.tree.leaves(params["logits"]):
        assert np.all(z[..., dl.PASS_THROUGH_GATE] == 10.0)
        assert np.all(np.delete(np.asarray(z), dl.PASS_THROUGH_GATE, axis=-1) == 0.0)


def test_truth_table_gates_mix_their_truth_tables_and_deploy_their_signs():
    """A truth-table gate's 4 logits: its relaxation is the multilinear interpolation of the
    truth table of their sigmoids, and the deployed gate outputs 1 where its logit is positive."""
    z = jax.random.normal(jax.random.key(0), (64, 4)) * 3
    log_p = dl.gate_logits(z)
    np.testing.assert_allclose(np.exp(np.asarray(log_p)).sum(-1), 1.0, rtol=1e-5)
    t = np.asarray(jax.nn.sigmoid(z))
    coef = np.asarray(jax.nn.softmax(log_p) @ jnp.asarray(dl.AFFINE))
    for a, b in BOOL_PAIRS + [(0.3, 0.8)]:
        soft = coef[:, 0] + coef[:, 1] * a + coef[:, 2] * b + coef[:, 3] * a * b
        want = t[:, 0] * (1 - a) * (1 - b) + t[:, 1] * (1 - a) * b + t[:, 2] * a * (1 - b) + t[:, 3] * a * b
        np.testing.assert_allclose(soft, want, atol=1e-6)
    deployed = np.asarray(jnp.argmax(log_p, -1))
    for i, op in enumerate(deployed):
        assert EXPECTED[int(op)] == tuple(int(v) for v in np.asarray(z[i]) > 0)


def test_truth_table_initialisation_is_the_pass_through_circuit():
    cfg = {**TINY_MODEL, "gate_parametrisation": "truth_table", "pass_through_logit": 6.0}
    params = dl.init(jax.random.key(0), cfg)
    for z in jax.tree.leaves(params["logits"]):
        assert z.shape[-1] == 4
        np.testing.assert_array_equal(np.asarray(z), np.broadcast_to([-6.0, -6.0, 6.0, 6.0], z.shape))
    assert all(np.all(np.asarray(o) == dl.PASS_THROUGH_GATE) for o in jax.tree.leaves(dl.hard_ops(params)))
    assert dl.summary(params, cfg)["gates_active"] == 0
    with pytest.raises(ValueError, match="model.gate_parametrisation must be one of operations, truth_table"):
        dl.validate({**TINY_MODEL, "gate_parametrisation": "bits"})


def test_per_kernel_wiring_groups_the_neighbours_differently_in_each_kernel():
    """perception_wiring: per_kernel draws the second perception layer's pairs per kernel: each
    kernel still reads every first-layer gate, kernels pair them differently, and the rest of
    the wiring is the shared wiring's."""
    cfg = {**PAPER_SYNC["model"], "perception_wiring": "per_kernel"}
    shared, own = dl.init(jax.random.key(5), PAPER_SYNC["model"]), dl.init(jax.random.key(5), cfg)
    wire = np.asarray(own["wires"]["perception"][1])
    assert wire.shape == (2, cfg["perception_kernels"], 4)
    groupings = set()
    for k in range(cfg["perception_kernels"]):
        pairs = sorted(tuple(sorted(p)) for p in zip(wire[0, k], wire[1, k]))
        assert sorted(np.concatenate(pairs).tolist()) == list(range(8))  # every gate read once
        groupings.add(tuple(pairs))
    assert len(groupings) > cfg["perception_kernels"] // 2
    for part in ("perception", "update"):
        for i, (a, b) in enumerate(zip(shared["wires"][part], own["wires"][part])):
            if (part, i) != ("perception", 1):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="perception_wiring"):
        dl.validate({**cfg, "perception_wiring": "random"})


def test_learned_wiring_trains_each_input_choice_and_deploys_its_argmax():
    """perception_wiring: learned starts as a per-kernel drawn wiring (its circuit is that
    wiring's), the training method's discrete forward pass runs exactly the deployed circuit
    (the argmax of every gate and of every input's wire logits), and the gradient reaches the
    wire logits."""
    cfg = {**TINY_MODEL, "perception_wiring": "learned", "wire_logit": 3.0}
    params = dl.init(jax.random.key(4), cfg)
    logits = params["wire_logits"]["perception"]
    assert [z.shape for z in logits] == [
        (2, cfg["perception_kernels"], 4, 8),
        (2, cfg["perception_kernels"], 2, 4),
    ]
    for z, wire in zip(logits, params["wires"]["perception"][1:]):
        np.testing.assert_array_equal(np.asarray(jnp.argmax(z, -1)), np.asarray(wire))
        assert np.all(np.sort(np.asarray(z), -1)[..., -1] == 3.0)
    params = _random_logits(params, jax.random.key(5))
    state = jax.random.randint(jax.random.key(3), (2, 7, 6, cfg["channels"]), 0, 2).astype(jnp.float32)
    discrete = {**cfg, "relaxation": "mixed_st", "hard_fraction": 1.0}
    relaxed = jax.jit(lambda p, x: dl.step(dl.relax(p, jax.random.key(6), 1, discrete), x, None, cfg))
    deployed = dl.harden(params)
    assert "wire_logits" not in deployed
    hard = jax.jit(lambda p, x: dl.hard_step(p, x, None, cfg))(deployed, state)
    np.testing.assert_array_equal(np.asarray(relaxed(params, state)), np.asarray(hard))
    # a drawn wiring differs from the learned argmax somewhere: the deployed circuit is the latter
    assert any(
        not np.array_equal(np.asarray(w), np.asarray(d))
        for w, d in zip(params["wires"]["perception"], deployed["wires"]["perception"])
    )

    def loss(wire_logits, method):
        p = {**params, "wire_logits": wire_logits}
        return jnp.sum(dl.step(dl.relax(p, jax.random.key(6), 1, {**cfg, **method}), state, None, cfg))

    for method in ({}, {"relaxation": "mixed_st", "hard_fraction": 0.5, "hard_fraction_steps": 1}):
        grads = jax.grad(loss)(params["wire_logits"], method)
        assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads)), method


@pytest.mark.parametrize("form", ["operations", "truth_table"])
def test_confident_hardening_runs_the_most_decided_gates_discrete(form):
    """mixed_st with hard_choice: confident runs exactly the share of each layer's gates whose
    top operation leads most as their argmax, and the rest as their mixture."""
    cfg = {**TINY_MODEL, "gate_parametrisation": form}
    params = _random_logits(dl.init(jax.random.key(1), cfg), jax.random.key(2))
    method = {**cfg, "relaxation": "mixed_st", "hard_fraction": 0.5, "hard_fraction_steps": 4}
    method["hard_choice"] = "confident"
    relaxed = dl.relax(params, jax.random.key(3), 2, method)  # half way: a quarter hard
    for z, w in zip(jax.tree.leaves(params["logits"]), jax.tree.leaves(relaxed["weights"])):
        top2 = np.sort(np.asarray(dl.gate_logits(z)), -1)[..., -2:]
        margin = (top2[..., 1] - top2[..., 0]).ravel()
        one_hot = (np.asarray(w).max(-1) == 1.0).ravel()
        n_hard = round(0.25 * margin.size)
        assert one_hot.sum() == n_hard
        assert set(np.flatnonzero(one_hot)) == set(np.argsort(-margin)[:n_hard])
    with pytest.raises(ValueError, match="model.hard_choice"):
        dl.validate({**TINY_MODEL, "hard_choice": "most"})


def test_paper_circuit_has_3040_gates():
    assert dl.gate_count(PAPER_SYNC["model"]) == {"perception": 224, "update": 2816, "total": 3040}
    params = dl.init(jax.random.key(0), PAPER_SYNC["model"])
    n = sum(int(np.prod(z.shape[:-1])) for z in jax.tree.leaves(params["logits"]))
    assert n == 3040


def test_async_paper_circuit_has_4064_gates():
    model = {**PAPER_SYNC["model"], "update_layers": [256] * 14 + [128, 64, 32, 16, 8, 8]}
    assert dl.gate_count(model)["total"] == 4064


def _random_logits(params, key):
    leaves, treedef = jax.tree.flatten(params["logits"])
    keys = jax.random.split(key, len(leaves))
    new = [jax.random.normal(k, z.shape) * 3 for k, z in zip(keys, leaves)]
    out = {"logits": jax.tree.unflatten(treedef, new), "wires": params["wires"]}
    if "wire_logits" in params:  # learned wiring: a random choice of each gate input's wire
        k = jax.random.fold_in(key, 1)
        out["wire_logits"] = jax.tree.map(lambda z: jax.random.normal(k, z.shape) * 3, params["wire_logits"])
    return out


@pytest.mark.parametrize(
    "wiring,form",
    [
        ("shared", "operations"),
        ("per_kernel", "operations"),
        ("learned", "operations"),
        ("shared", "truth_table"),
    ],
)
@pytest.mark.parametrize("periodic", [False, True])
def test_one_hot_circuit_is_the_same_soft_and_hard(periodic, wiring, form):
    """Soft mode with hardened (one-hot) logits equals the bit-packed hard circuit, exactly."""
    cfg = {**TINY_MODEL, "periodic": periodic, "perception_wiring": wiring, "gate_parametrisation": form}
    params = _random_logits(dl.init(jax.random.key(1), cfg), jax.random.key(2))
    state = jax.random.randint(jax.random.key(3), (3, 9, 7, 4), 0, 2).astype(jnp.float32)
    soft = jax.jit(lambda p, x: dl.step(dl.harden(p), x, None, cfg))(params, state)
    hard = jax.jit(lambda p, x: dl.hard_step(p, x, None, cfg))(params, state)
    assert set(np.unique(np.asarray(soft))) <= {0.0, 1.0}
    np.testing.assert_array_equal(np.asarray(soft), np.asarray(hard))


def _plain_circuit(params, p, channels):
    """The circuit as plain broadcasting code (gathers by indexing, every layer through
    :func:`dl._layer`, whose straight-through gates pass back their relaxation's gradient):
    what the hand-written gradients must equal."""
    x = p
    perception = dl._layer_weights(params, "perception")
    for i, (wire, (w, s)) in enumerate(zip(params["wires"]["perception"], perception)):
        if wire.ndim == 3:  # per kernel: kernel k's rows wire[., k] of x[:, k]
            kernels = jnp.arange(wire.shape[1])[None, :]
            a, b = x[wire[0].T, kernels], x[wire[1].T, kernels]
        else:
            a, b = x[wire[0]], x[wire[1]]
        if i == 0:
            a, b = a[:, None], b[:, None]
        x = dl._layer(w, s, a, b, lambda c: jnp.swapaxes(c, 0, 1)[..., None, None, :])
    feats = jnp.transpose(x, (2, 0, 1, 3)).reshape(channels * x.shape[0] * x.shape[1], -1)
    x = jnp.concatenate([p[4], feats], axis=0)
    for wire, (w, s) in zip(params["wires"]["update"], dl._layer_weights(params, "update")):
        x = dl._layer(w, s, x[wire[0]], x[wire[1]], lambda c: c[:, None, :])
    return x


@pytest.mark.parametrize(
    "relaxation,wiring", [("softmax", "shared"), ("mixed_st", "shared"), ("mixed_st", "per_kernel")]
)
@pytest.mark.parametrize("static_wires", [False, True])
def test_the_circuits_gradient_is_that_of_the_plain_formulas(static_wires, relaxation, wiring):
    """The first perception layer's and the small gathers' hand-written gradients (fast on CPU)
    are the gradient of the plain formulas, towards the logits and towards the input state,
    whether the wiring is traced (training) or a constant, for the softmax mixture and for
    half the gates discrete (straight-through)."""
    cfg = {**TINY_MODEL, "channels": 6, "perception_kernels": 3, "update_layers": [24, 12, 6]}
    params = _random_logits(
        dl.init(jax.random.key(1), {**cfg, "perception_wiring": wiring}), jax.random.key(2)
    )
    p = dl.patches(jax.random.uniform(jax.random.key(3), (2, 5, 7, 6)), False)
    target = jax.random.uniform(jax.random.key(4), (6, 70))
    wires = params["wires"]
    method = {"relaxation": relaxation, "hard_fraction": 0.5}

    def loss(circuit):
        def f(logits, p, wires):
            relaxed = dl.relax({"logits": logits, "wires": wires}, jax.random.key(6), 10, method)
            out = circuit(relaxed, p, 6)
            return jnp.sum((out - target) ** 2)

        if static_wires:
            return jax.jit(jax.grad(lambda lg, p: f(lg, p, wires), (0, 1)))
        return jax.jit(jax.grad(f, (0, 1)))

    args = (params["logits"], p) if static_wires else (params["logits"], p, wires)
    fast, plain = loss(dl.circuit)(*args), loss(_plain_circuit)(*args)
    for got, want in zip(jax.tree.leaves(fast), jax.tree.leaves(plain)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(fast[1]).max()) > 0  # the gradient reaches the state


@pytest.mark.parametrize("reads", ["drawn", "one_row"])
def test_per_kernel_gathers_gradient_is_the_plain_gathers(reads):
    """The per-kernel gather's hand-written gradient equals autodiff's of plain indexing, for
    the pairs that per_kernel wiring draws (each row read at most once per side) and for a
    wiring that reads one row from several outputs (its gradient a sum)."""
    n_in, n_out, kernels = 6, 4, 3
    if reads == "drawn":
        from morphogen.models.logic_wiring import kernel_wires

        idx = jnp.asarray(kernel_wires(jax.random.key(0), n_in, n_out, kernels)[0])  # (K, out)
    else:
        idx = jnp.asarray(np.tile([[2, 2, 2, 5]], (kernels, 1)).astype(np.int32))
    x = jax.random.normal(jax.random.key(1), (n_in, kernels, 2, 5))
    weight = jax.random.normal(jax.random.key(2), (n_out, kernels, 2, 5))

    def plain(x, idx):
        return x[idx.T, jnp.arange(kernels)[None, :]]

    def loss(x, i):
        return jnp.sum(logic_gather.kernel_rows(x, i) * weight)

    want = jax.grad(lambda x: jnp.sum(plain(x, idx) * weight))(x)
    traced = jax.jit(jax.grad(loss))(x, idx)  # the wiring an argument, as in training
    constant = jax.jit(jax.grad(lambda x: loss(x, np.asarray(idx))))(x)
    np.testing.assert_array_equal(np.asarray(logic_gather.kernel_rows(x, idx)), np.asarray(plain(x, idx)))
    for got in (traced, constant):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)
    assert float(jnp.abs(traced).max()) > 0


def test_soft_circuit_is_a_mixture_between_its_gates():
    """With random logits the soft outputs stay in [0, 1] and differ from the hard circuit."""
    params = _random_logits(dl.init(jax.random.key(1), TINY_MODEL), jax.random.key(5))
    state = jax.random.uniform(jax.random.key(3), (2, 8, 8, 4))
    step = jax.jit(lambda p, x: dl.step(p, x, None, TINY_MODEL))
    out = np.asarray(step(params, state))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.array_equal(out, np.asarray(step(dl.harden(params), state)))


def test_pass_through_circuit_copies_the_centre_cell():
    """At initialisation every gate is 'A': the hard circuit maps a cell to (part of) itself."""
    cfg = {**TINY_MODEL, "update_layers": [20, 12, 8, 4]}
    params = dl.init(jax.random.key(0), cfg)
    state = jax.random.randint(jax.random.key(1), (1, 6, 6, 4), 0, 2).astype(jnp.float32)
    out = jax.jit(lambda p, x: dl.hard_step(p, x, None, cfg))(params, state)
    # Wire-only circuits route some input feature to each output: values stay boolean.
    assert set(np.unique(np.asarray(out))) <= {0.0, 1.0}
    assert dl.summary(params, cfg)["gates_active"] == 0


def test_centre_initialisation_keeps_the_start_state_and_the_reference_drains_it():
    """The reference's initial circuit (first perception gates wired to their neighbour) shifts
    the grid towards its zero border until nothing is left; wired to the centre it keeps it."""
    cfg = PAPER_SYNC["model"]
    state = jax.random.randint(jax.random.key(1), (2, 16, 16, 8), 0, 2).astype(jnp.float32)

    def after(model, steps=20):
        params = dl.init(jax.random.key(0), model)
        step = jax.jit(lambda x: dl.hard_step(params, x, None, model))
        x = state
        for _ in range(steps):
            x = step(x)
        return np.asarray(x)

    assert after(cfg).sum() == 0
    kept = after({**cfg, "initial_perception": "centre"})
    assert 0.3 < kept.mean() < 0.7
    params = dl.init(jax.random.key(0), {**cfg, "initial_perception": "centre"})
    assert np.all(np.argmax(params["logits"]["perception"][0], -1) == dl.CENTRE_GATE)
    assert np.all(np.argmax(params["logits"]["perception"][1], -1) == dl.PASS_THROUGH_GATE)


def test_pack_unpack_round_trip():
    x = jax.random.randint(jax.random.key(0), (3, 77), 0, 2).astype(jnp.uint8)
    np.testing.assert_array_equal(np.asarray(dl.unpack_bits(dl.pack_bits(x), 77)), np.asarray(x))


def test_patches_order_and_zero_padding():
    state = jnp.arange(9, dtype=jnp.float32).reshape(1, 3, 3, 1)
    p = dl.patches(state, periodic=False)  # (9, C, N)
    centre = 4  # cell (1, 1)
    np.testing.assert_array_equal(np.asarray(p[:, 0, centre]), np.arange(9))
    corner = np.asarray(p[:, 0, 0])  # cell (0, 0): top row and left column are padding
    np.testing.assert_array_equal(corner, [0, 0, 0, 0, 0, 1, 0, 3, 4])
    wrapped = np.asarray(dl.patches(state, periodic=True)[:, 0, 0])
    np.testing.assert_array_equal(wrapped, [8, 6, 7, 2, 0, 1, 5, 3, 4])


def test_validate_names_the_bad_key():
    with pytest.raises(ValueError, match="update_layers must end with channels"):
        dl.validate({**TINY_MODEL, "update_layers": [16, 8, 5]})
    with pytest.raises(ValueError, match=r"update_layers\[1\]"):
        dl.validate({**TINY_MODEL, "update_layers": [64, 8, 4]})


def test_netlist_export_is_plain_json():
    import json

    params = dl.init(jax.random.key(0), TINY_MODEL)
    net = dl.export_netlist(params, TINY_MODEL)
    text = json.dumps(net)
    assert json.loads(text)["layers"][0]["part"] == "perception"
    assert sum(np.size(layer["ops"]) for layer in net["layers"]) == dl.gate_count(TINY_MODEL)["total"]
