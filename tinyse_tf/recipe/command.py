"""The recipe's configuration flags, and the ``recipes/two_step.py`` command that reproduces a run.

``CONFIG_FLAGS`` is the one list of RecipeConfig fields the command line sets (``--<field>`` with
dashes); ``config_from_args`` reads them and ``recipe_command`` writes them back from a run's
``config.json``, so a model card can print the command its run came from.
"""
import dataclasses
import shlex

from tinyse_tf.recipe.presets import PRESETS

#: RecipeConfig fields with a command-line flag of the same name (``--kd-layers`` sets
#: ``kd_layers``); the kind says how a value is written: a value, a comma list, a bool switch
#: (``--x`` / ``--no-x``) or two values.
CONFIG_FLAGS = {
    "student": "value", "teacher": "value", "students": "list", "teacher_epochs": "value",
    "student_epochs": "value", "step1_epochs": "value", "learning_rate": "value",
    "batch_size": "value", "clip_seconds": "value", "steps_per_epoch": "value",
    "snr_range": "pair", "kd_granularity": "value", "kd_reduction": "value",
    "kd_normalize": "bool", "kd_layers": "list", "reset_optimizer": "bool",
    "snr_measure": "value", "builtin_weight": "value", "noise_speed_prob": "value",
    "noise_mix_prob": "value", "norm": "value", "seed": "value",
    "int8": "list",
}
#: config.json's data and checkpoint paths (absolute there) and their flags.
PATH_FLAGS = {"speech_dir": "--speech-dir", "noise_dir": "--noise-dir",
              "teacher_checkpoint": "--teacher-checkpoint"}


def config_overrides(args) -> dict:
    """``{field: value}`` of the CONFIG_FLAGS in parsed arguments (None: not given)."""
    values = {field: getattr(args, field) for field in CONFIG_FLAGS}
    if values["snr_range"] is not None:
        values["snr_range"] = tuple(values["snr_range"])
    return values


def _flag(field, kind, value) -> list[str]:
    name = "--" + field.replace("_", "-")
    if kind == "bool":
        return [name if value else "--no-" + name[2:]]
    if kind == "pair":
        return [name, *(str(v) for v in value)]
    if kind == "list":
        return [name, ",".join(value) if value else "none"]
    return [name, str(value)]  # str of a float round-trips


def _plain(value):
    """A config value as config.json holds it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


def recipe_command(record: dict, out: str, show=str, extra=()) -> str:
    """The ``python recipes/two_step.py`` command that reproduces a run's ``config.json``
    (``record``): its preset and the flags of every field that differs from the preset, the
    data and checkpoint paths through ``show`` (e.g. relative to the repository), ``--out out``
    and ``extra`` arguments (e.g. ``--stop-after teacher``).

    Raises ValueError when a field differs from the preset and has no flag (such a run came
    from the Python API, not the command line)."""
    preset = record["preset"]
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} in the run's config.json")
    base = dataclasses.asdict(PRESETS[preset])
    differ = [f for f in base if f in record and _plain(record[f]) != _plain(base[f])]
    unflagged = [f for f in differ if f not in CONFIG_FLAGS]
    if unflagged:
        raise ValueError(f"fields {', '.join(unflagged)} differ from the {preset} preset and "
                         "have no recipes/two_step.py flag")
    words = ["python", "recipes/two_step.py", "--preset", preset]
    for field in differ:
        words += _flag(field, CONFIG_FLAGS[field], record[field])
    for field, flag in PATH_FLAGS.items():
        if record.get(field):
            words += [flag, record[field] if record[field] == "pretrained" else show(record[field])]
    return shlex.join([*words, "--out", out, *extra])
