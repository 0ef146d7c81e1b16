# Config loading and validation, and the helpers every rule file uses.

import functools
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate
import yaml

PRESETS = ("test", "quick", "paper")


def _load_preset(name):
    if name not in PRESETS:
        raise WorkflowError(
            f"config key 'preset' must be one of {', '.join(PRESETS)}; got {name!r}"
        )
    path = Path(workflow.basedir) / "config" / "presets" / f"{name}.yaml"
    if not path.exists():
        raise WorkflowError(f"preset file {path} for preset={name!r} is missing")
    with open(path) as f:
        return yaml.safe_load(f) or {}


# The preset overrides the base config; values given with --config override both.
update_config(config, _load_preset(config.get("preset", "quick")))
update_config(config, workflow.config_settings.overwrite_config)


def _path(parts):
    return ".".join(str(p) for p in parts) or "(top level)"


def _check_finite(node, parts=()):
    """Every number in the config is finite: YAML's .nan and .inf satisfy the schema's bounds."""
    import math

    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        if isinstance(v, float) and not math.isfinite(v):
            raise WorkflowError(f"config key {_path((*parts, k))}: {v} is not a finite number")
        _check_finite(v, (*parts, k))


def _coerce_integer_strings(schema):
    """`--config seeds=[100,101]` hands the items over as strings: where the schema wants an
    integer and the value is an integer written as a string, use the integer."""
    import re as _re

    import jsonschema

    for _ in range(100):
        fixed = False
        for err in jsonschema.Draft202012Validator(schema).iter_errors(config):
            value = err.instance
            if err.validator == "type" and "integer" in err.validator_value and isinstance(value, str):
                if _re.fullmatch(r"[+-]?\d+", value.strip()):
                    parent = config
                    for p in list(err.absolute_path)[:-1]:
                        parent = parent[p]
                    parent[list(err.absolute_path)[-1]] = int(value)
                    fixed = True
                    break
        if not fixed:
            return


def _validate_config():
    """Validate against the schema; on failure name each bad key and value in one short list."""
    schema_path = Path(workflow.basedir) / "config" / "schema.yaml"
    _check_finite(config)
    _coerce_integer_strings(yaml.safe_load(schema_path.read_text()))
    try:
        validate(config, str(schema_path))
    except WorkflowError:
        import jsonschema

        schema = yaml.safe_load(schema_path.read_text())
        problems = []
        for err in jsonschema.Draft202012Validator(schema).iter_errors(config):
            while err.context:  # valid under none of oneOf's forms: the error of the form it is closest to
                err = max(err.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
            key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            problems.append(f"  config key {key}: {err.message}")
        raise WorkflowError(
            "invalid configuration (config/config.yaml + preset + --config):\n"
            + "\n".join(sorted(problems))
            + f"\nallowed keys and values: {schema_path}"
        ) from None


_validate_config()

# Jobs import the library of this checkout (each workflow script puts ../src on sys.path).
_SRC_DIR = str(Path(workflow.basedir) / "src")

PRESET = config["preset"]
RESULTS = Path("results") / PRESET
SEEDS = config["seeds"]


@functools.cache
def _experiment_checker():
    """The schema's validator of one experiment (built once, for every method's check)."""
    import jsonschema

    schema = yaml.safe_load((Path(workflow.basedir) / "config" / "schema.yaml").read_text())
    return jsonschema.Draft202012Validator({**schema["$defs"]["experiment"], "$defs": schema["$defs"]})


def _check_with_method(exp, method, base, raw):
    """Raise WorkflowError naming the method if its keys make experiment ``base`` invalid
    (the schema, then the model's own checks). Where the experiment's own keys (``raw``, before
    the merge) are invalid already, the error is theirs: `_check_models` names them."""
    from morphogen import models

    for err in _experiment_checker().iter_errors(exp):
        key = ".".join(str(p) for p in err.absolute_path)
        raise WorkflowError(
            f"config key training_methods.{method} makes experiments.{base}.{key} invalid: {err.message}"
        )
    family = models.get(exp["family"])
    try:
        family.validate(exp["model"])
    except ValueError as e:
        try:
            family.validate(raw.get("model", {}))
        except ValueError:
            return
        raise WorkflowError(f"config key training_methods.{method} (on experiments.{base}): {e}") from None


def _experiments_with_their_methods():
    """Each experiment with the training method its `training_method` key names merged in."""
    import copy

    if _SRC_DIR not in sys.path:
        sys.path.insert(0, _SRC_DIR)
    from morphogen import methods

    out = {}
    for name, exp in config["experiments"].items():
        try:
            out[name] = copy.deepcopy(
                methods.apply(exp, config.get("training_methods", {}), where=f"experiments.{name}.training_method")
            )
        except ValueError as e:
            raise WorkflowError(str(e)) from None
        if "training_method" in exp:
            _check_with_method(out[name], exp["training_method"], name, exp)
    return out


# The experiments as the preset and --config give them (the study starts from these), then with
# their methods: jobs that read the config see the keys their runs trained with.
_AS_CONFIGURED = {name: dict(exp) for name, exp in config["experiments"].items()}
EXPERIMENTS = _experiments_with_their_methods()
config["experiments"].update(EXPERIMENTS)

# Which experiments each figure reads.
FIGURE_EXPERIMENTS = {
    "F1_checkerboard_sync": ["checkerboard_sync"],
    "F2_self_healing": ["checkerboard_sync", "checkerboard_async"],
    "F6_patterning_bp_vs_es": ["patterning_backprop", "patterning_es"],
    "F4_attention_online": ["attention_uniform", "attention_online"],
    "F3_growing_regeneration": ["growing_sync", "growing_async"],
    "F5_advection_transitions": ["advection_formations"],
    "F7_logic_game_of_life": ["logic_game_of_life"],
    "F8_logic_growing": ["logic_lizard", "logic_colored_g"],
}

# Figures that compare training methods on an equal budget of simulated trajectories: the
# experiments' budgets (steps x batch x population) may differ by at most 5%.
EQUAL_BUDGET = {"F6_patterning_bp_vs_es": 0.05}


def _check_figure_experiments():
    for fig in config["figures"]:
        for exp in FIGURE_EXPERIMENTS[fig]:
            if exp not in EXPERIMENTS:
                raise WorkflowError(
                    f"figure {fig} needs config key experiments.{exp}, which is missing"
                )


_check_figure_experiments()


def _check_train_priority():
    for name in config["compute"].get("train_priority", {}):
        if name not in EXPERIMENTS:
            raise WorkflowError(
                f"config key compute.train_priority.{name} names no experiment; the experiments are "
                f"{', '.join(sorted(EXPERIMENTS))}"
            )


_check_train_priority()


def _check_models():
    """Model shapes the schema cannot express (layer widths that wire up, a task the model can
    run), before any job."""
    if _SRC_DIR not in sys.path:
        sys.path.insert(0, _SRC_DIR)
    from morphogen import damage, models, tasks

    for name, exp in EXPERIMENTS.items():
        family = models.get(exp["family"])
        try:
            family.validate(exp["model"])
            # a task that cannot be built with this model (e.g. a drawing's size, its channels)
            tasks.make(exp["task"], channels=family.channels(exp["model"]))
        except ValueError as e:
            raise WorkflowError(f"config key experiments.{name}.{e}") from None
        for protocol in exp["evaluation"].get("damage", []):
            if protocol not in config["damage_protocols"]:
                raise WorkflowError(
                    f"config key experiments.{name}.evaluation.damage names {protocol!r}, which is "
                    f"not in damage_protocols ({', '.join(sorted(config['damage_protocols']))})"
                )
    for name, protocol in config["damage_protocols"].items():
        try:
            damage.validate(name, protocol)
        except ValueError as e:
            raise WorkflowError(f"config key {e}") from None
        late = [t for t in protocol.get("frame_steps", []) if t > protocol["run_steps"]]
        if late:
            raise WorkflowError(
                f"config key damage_protocols.{name}.frame_steps: {late} past run_steps={protocol['run_steps']}"
            )
    _check_edges()


# The evaluation scales each figure reads (F1: the training grid and the 4x grid).
FIGURE_SCALES = {"F1_checkerboard_sync": [1, 4]}


def growth_threshold(wildcards=None):
    """F3's growth bar and recovery threshold: the recovery_threshold of every damage protocol
    its experiments run, which must be one value."""
    values = {
        float(config["damage_protocols"][p].get("recovery_threshold", 0.0))
        for e in FIGURE_EXPERIMENTS["F3_growing_regeneration"]
        for p in EXPERIMENTS[e]["evaluation"].get("damage", [])
    }
    if len(values) != 1:
        raise WorkflowError(
            "figure F3_growing_regeneration draws one recovery threshold, but the damage_protocols of "
            f"its experiments set recovery_threshold to {sorted(values)}"
        )
    return values.pop()


def _check_edges():
    """Values that each pass the schema but do not fit together, before any job."""
    from morphogen import evaluation

    from morphogen import training as _training

    for name, exp in EXPERIMENTS.items():
        training = exp["training"]
        if training.get("regime") == "evolution" and training["elites"] >= training["population"]:
            raise WorkflowError(
                f"config key experiments.{name}.training.elites={training['elites']} must be smaller than "
                f"population={training['population']}"
            )
        if training.get("regime") == "online":
            if training.get("restart_after", 0):
                raise WorkflowError(
                    f"config key experiments.{name}.training.restart_after: restarts are not available "
                    "with training.regime online (one trajectory, trained as it goes)"
                )
            if "epsilon" not in exp["task"]:
                raise WorkflowError(
                    f"config key experiments.{name}.task: training.regime online needs a task with an "
                    f"epsilon (an image task), not {exp['task']['name']!r}"
                )
        if training.get("regime") == "pool":
            checks = [
                (training.get("restart_after", 0), "restart_after", "restarts are not available with training.regime pool"),
                ("pool_size" not in training, "pool_size", "training.regime pool needs a pool_size"),
                (training.get("pool_size", 0) < training["batch"] * training.get("accumulate", 1), "batch",
                 f"batch={training['batch']} x accumulate={training.get('accumulate', 1)} is larger than "
                 f"pool_size={training.get('pool_size')}"),
                (training.get("damage_n", 0) >= training["batch"], "damage_n",
                 f"damage_n={training.get('damage_n')} must be smaller than batch={training['batch']}"),
                (training.get("reseed_n", 1) > training["batch"] - training.get("damage_n", 0), "reseed_n",
                 f"reseed_n={training.get('reseed_n', 1)} is more than batch - damage_n="
                 f"{training['batch'] - training.get('damage_n', 0)}"),
                (training.get("rollout_min", 1) > training["rollout_steps"], "rollout_min",
                 f"rollout_min={training.get('rollout_min')} is larger than rollout_steps={training['rollout_steps']}"),
                (exp["task"]["name"] not in ("growth", "image", "formations"), "regime",
                 "training.regime pool needs a task with a loss per sample (growth, image, formations), "
                 f"not {exp['task']['name']!r}"),
            ]
            for bad, key, why in checks:
                if bad:
                    raise WorkflowError(f"config key experiments.{name}.training.{key}: {why}")
        opt = training.get("optimizer", {})
        if opt.get("schedule") == "cosine":
            decay = min(int(opt.get("decay_steps", training["steps"])), int(training["steps"]))
            if int(opt.get("warmup_steps", 0)) >= decay:
                raise WorkflowError(
                    f"config key experiments.{name}.training.optimizer.warmup_steps={opt['warmup_steps']} leaves "
                    f"no steps to decay: it must be smaller than decay_steps and steps ({decay})"
                )
        if exp["task"]["name"] == "formations":
            from morphogen import formations

            try:
                formations.check(exp["task"])
            except ValueError as e:
                raise WorkflowError(f"config key experiments.{name}.{e}") from None
        if training.get("loss_steps", 1) > training["rollout_steps"]:
            raise WorkflowError(
                f"config key experiments.{name}.training.loss_steps={training['loss_steps']} is larger "
                f"than rollout_steps={training['rollout_steps']}"
            )
        for protocol_name in exp["evaluation"].get("damage", []):
            protocol = config["damage_protocols"][protocol_name]
            grid = evaluation.protocol_grid(exp["task"], protocol)
            if protocol.get("size", 0) > grid:
                raise WorkflowError(
                    f"config key damage_protocols.{protocol_name}.size={protocol['size']} is larger than "
                    f"its {grid}x{grid} grid on experiments.{name}"
                )
    if "F3_growing_regeneration" in config["figures"]:
        growth_threshold()
    if "F5_advection_transitions" in config["figures"]:
        for exp in FIGURE_EXPERIMENTS["F5_advection_transitions"]:
            if not EXPERIMENTS[exp]["evaluation"].get("initial_params", False):
                raise WorkflowError(
                    f"config key experiments.{exp}.evaluation.initial_params must be true: figure "
                    "F5_advection_transitions reads the untrained model's transitions as a baseline"
                )
    for fig in config["figures"]:
        if fig in EQUAL_BUDGET:
            budgets = {
                e: EXPERIMENTS[e]["training"]["steps"] * _training.simulated_trajectories(EXPERIMENTS[e]["training"])
                for e in FIGURE_EXPERIMENTS[fig]
            }
            if max(budgets.values()) > (1 + EQUAL_BUDGET[fig]) * min(budgets.values()):
                listed = ", ".join(f"experiments.{e}: {b:,}" for e, b in budgets.items())
                raise WorkflowError(
                    f"figure {fig} compares training methods on an equal budget of simulated trajectories "
                    f"(training.steps x batch x population), but they differ by more than "
                    f"{EQUAL_BUDGET[fig]:.0%}: {listed}"
                )
        for exp in FIGURE_EXPERIMENTS[fig]:
            missing = sorted(set(FIGURE_SCALES.get(fig, [])) - set(EXPERIMENTS[exp]["evaluation"]["scales"]))
            if missing:
                raise WorkflowError(
                    f"config key experiments.{exp}.evaluation.scales lacks {missing}, which figure {fig} needs"
                )


# A SLURM job's own snakemake (remote execution) reads the config that the submitting process
# checked before it submitted any job; the checks import JAX and build every task, about 4 s
# of each such job's start.
if not workflow.remote_exec:
    _check_models()


def study_experiments():
    """The training-method study's runs as experiments of their own, named
    ``<experiment>.<method>``: the preset's experiment with the method's overrides, the study's
    seeds and one attempt (no restarts) as long as one of the experiment's attempts
    (``methods.one_attempt``). Each is checked like a configured experiment."""
    import copy

    study = config.get("study")
    if not study:
        return {}
    methods = config.get("training_methods", {})
    from morphogen import methods as method_lib

    out = {}
    for base, names in study["experiments"].items():
        if base not in config["experiments"]:
            raise WorkflowError(
                f"config key study.experiments names {base!r}, which is not in experiments "
                f"({', '.join(sorted(config['experiments']))})"
            )
        for method in names:
            # from the experiment as configured, without the method it may name itself
            try:
                exp = copy.deepcopy(
                    method_lib.apply(_AS_CONFIGURED[base], methods, method, where=f"study.experiments.{base}")
                )
            except ValueError as e:
                raise WorkflowError(str(e)) from None
            exp = method_lib.one_attempt(exp)
            exp["seeds"] = list(study["seeds"])
            _check_with_method(exp, method, base, _AS_CONFIGURED[base])
            out[f"{base}.{method}"] = exp
    if not out:
        raise WorkflowError("config key study.experiments lists no training method for any experiment")
    return out


# The study's runs are experiments like the others (the train rule serves them), but no figure,
# table or `all` target other than the study's reads them.
CONFIGURED = sorted(EXPERIMENTS)
STUDY = study_experiments()
EXPERIMENTS = {**EXPERIMENTS, **STUDY}


wildcard_constraints:
    experiment="|".join(re.escape(e) for e in sorted(EXPERIMENTS)),
    seed=r"\d+",


SRC = Path(workflow.basedir) / "src"


def _module_files(name):
    """The files that ``import <name>`` runs within this checkout's library: the module and the
    ``__init__.py`` of each package on its way."""
    parts = name.split(".")
    files = [SRC.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts) + 1)]
    files.append(SRC.joinpath(*parts).with_suffix(".py"))
    return [f for f in files if f.is_file()]


@functools.cache
def _library_imports(path):
    """Names of the morphogen modules that the Python file ``path`` imports (anywhere in it).
    Cached: every rule's sources() reads the same modules."""
    import ast

    names = []
    package = ".".join(path.relative_to(SRC).parent.parts) if SRC in path.parents else ""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            names += [base] + [f"{base}.{a.name}" for a in node.names]
    return [n for n in names if n == "morphogen" or n.startswith("morphogen.")]


def code_files(script, families=()):
    """A workflow script and every library file it runs, following imports transitively, with
    the modules of the given model families (the registry imports a family only when asked)."""
    todo = [Path(workflow.basedir) / "workflow_scripts" / script]
    for family in families:
        todo += _module_files(f"morphogen.models.{family}")
    seen = []
    while todo:
        f = todo.pop(0)
        if f in seen:
            continue
        seen.append(f)
        for name in _library_imports(f):
            todo += _module_files(name)
    return [seen[0], *sorted(seen[1:])]


@functools.cache
def _file_hash(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def sources(script, families=()):
    """A job's code as an input file: ``results/<preset>/sources/<script>[-<family>...].txt``
    lists the sha256 of the job's script, of every library module it imports and of the model
    families it runs (:func:`code_files`). It is rewritten only when a hash changes, so reruns
    follow the code's content, not its files' times: a results tree copied into a fresh checkout
    of the same commit is up to date, an edit of models/difflogic.py reruns the jobs of DiffLogic
    experiments and no others, a README edit reruns nothing. (The workflow profile leaves the
    scripts' times out of Snakemake's rerun triggers.)"""
    families = sorted(set(families))
    base = Path(workflow.basedir)
    text = "".join(
        f"{_file_hash(f)}  {f.relative_to(base).as_posix()}\n"
        for f in code_files(script, families)
    )
    stamp = RESULTS / "sources" / f"{'-'.join([Path(script).stem, *families])}.txt"
    if not stamp.exists() or stamp.read_text() != text:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(text)
    return str(stamp)


def families_of(experiments):
    return [EXPERIMENTS[e]["family"] for e in experiments]


def run_sources(script):
    """Input function: the code stamp of a per-run job, with its experiment's model family."""
    return lambda wildcards: sources(script, families_of([wildcards.experiment]))


def run_path(name):
    """Path pattern of a per-run output, with {experiment} and {seed} wildcards."""
    return str(RESULTS / "{experiment}" / "seed{seed}" / name)


def experiment_config(wildcards):
    """The experiment's config as its jobs see it (the seed list is the workflow's business)."""
    return {k: v for k, v in EXPERIMENTS[wildcards.experiment].items() if k != "seeds"}


def figure_experiments():
    exps = []
    for fig in config["figures"]:
        for exp in FIGURE_EXPERIMENTS[fig]:
            if exp not in exps:
                exps.append(exp)
    return exps


def seeds_of(experiment):
    """An experiment's seeds: its own `seeds` key, else the top-level `seeds`."""
    return EXPERIMENTS[experiment].get("seeds", SEEDS)


def runs(name, experiments=None):
    """One path per (experiment, seed) for the given experiments (default: the figures')."""
    return [
        run_path(name).format(experiment=e, seed=s)
        for e in (experiments or figure_experiments())
        for s in seeds_of(e)
    ]


def train_timings(experiments=None):
    """The training jobs' wall-time files of the given experiments (default: the figures')."""
    return [
        str(RESULTS / "benchmarks" / "train_timing" / e / f"seed{s}.json")
        for e in (experiments or figure_experiments())
        for s in seeds_of(e)
    ]


def logic_experiments(experiments=None):
    """The experiments (of the figures, by default) whose models are logic circuits."""
    return [e for e in (experiments or figure_experiments()) if EXPERIMENTS[e]["family"] == "difflogic"]


def damage_experiments(experiments=None):
    """The experiments (of the figures, by default) that list damage protocols."""
    return [e for e in (experiments or figure_experiments()) if EXPERIMENTS[e]["evaluation"].get("damage")]


def comparison_pairs(wildcards=None):
    """The configured recovery comparisons [numerator, denominator] whose experiments both have
    damage runs among the figures' experiments."""
    present = set(damage_experiments())
    return [list(p) for p in config["comparison"].get("pairs", []) if set(p) <= present]


def damage_protocols_for(wildcards):
    names = EXPERIMENTS[wildcards.experiment]["evaluation"].get("damage", [])
    return {name: config["damage_protocols"][name] for name in names}


def figure_targets():
    return [
        str(RESULTS / "figures" / f"{fig}.{ext}") for fig in config["figures"] for ext in ("png", "pdf")
    ]


def table_targets():
    tables = [RESULTS / "tables" / "models.csv", RESULTS / "tables" / "timings.csv"]
    if damage_experiments():
        tables += [RESULTS / "tables" / f"recovery_{name}.csv" for name in ("errors", "summary", "comparison")]
    return [str(t) for t in tables]


def all_run_targets():
    return runs("rollout.zarr", CONFIGURED) + runs("recovery.zarr", damage_experiments(CONFIGURED))


def train_gpus():
    return config["compute"]["train_gpus"]


def train_priority(wildcards):
    """The training job's scheduling priority (compute.train_priority; 0 by default)."""
    return config["compute"].get("train_priority", {}).get(wildcards.experiment, 0)


def software_env():
    return "../envs/cuda.yaml" if train_gpus() > 0 else "../envs/cpu.yaml"


# The HTML report (snakemake --report): figure captions in report/ show numbers that the figure
# jobs write next to the figures, and the workflow description shows provenance.json.
PROVENANCE = str(RESULTS / "provenance.json")


def report_numbers(wildcards, output):
    """The job's numbers file (RST) as a Path, so that a report caption can read it when the report
    is built: ``{{ snakemake.params.numbers.read_text() }}``. The path never changes, so neither
    does the param."""
    return Path(output.numbers)


def write_provenance(checkpoints, path, preset, log):
    """Write provenance.json from the checkpoints' metadata: the seeds and config hash of each
    experiment, the git commit, package versions and device of the runs. A fact that every run
    shares is written once, one that differs as {"<experiment>/seed<k>": value}. No times or paths:
    deterministic."""
    import json

    metas = [json.loads((Path(c) / "metadata.json").read_text()) for c in checkpoints]
    metas.sort(key=lambda m: (m["experiment"], m["seed"]))

    def shared(values):
        distinct = {json.dumps(v, sort_keys=True) for v in values.values()}
        return next(iter(values.values())) if len(distinct) == 1 else values

    seeds, hashes = {}, {}
    for m in metas:
        seeds.setdefault(m["experiment"], []).append(m["seed"])
        hashes.setdefault(m["experiment"], {})[f"seed{m['seed']}"] = m["config_hash"]
    record = {
        "preset": preset,
        "seeds": seeds,
        "config_hash": {exp: shared(by_seed) for exp, by_seed in hashes.items()},
    }
    for key in (
        "git_commit",
        "morphogen_version",
        "packages",
        "platform",
        "device_kind",
        "device_version",
        "cpu_model",
        "cpu_vendor",
        "cpu_simd",
        "cpu_count",
        "xla_flags",
        "x64",
    ):
        if not any(key in m for m in metas):
            continue
        record[key] = shared({f"{m['experiment']}/seed{m['seed']}": m.get(key) for m in metas})
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    with open(log, "w") as f:
        print(f"provenance of {len(metas)} runs written to {path}", file=f)
