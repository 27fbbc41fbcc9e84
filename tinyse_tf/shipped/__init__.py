"""Trained models shipped in the package: ``tinyse_tf.pretrained("student")``.

The files lie in this folder; ``models.json`` lists them per model name with their size and
SHA-256 (checked by the tests and by :func:`verify`), and names each model's card
(``docs/models/<name>.md``: data and licences, schedule, commit, metrics, cost). Kinds of file:

* ``keras``: the Keras sequence model, ``features [b, t, 80, 1] -> mask [b, t, 80, 1]``, stored
  as the weights of ``build_cruse(preset, norm=...)`` in an ``.npz`` (the teacher's in float16,
  which halves it to a few MB; they load back as float32);
* ``int8`` / ``float32``: the exported streaming ``.tflite`` (one 16 ms hop in, one out, state
  inside; run it with :class:`tinyse_tf.runtime.StreamingEnhancer` or ``tinyse enhance``), with
  its ``.io_contract.json`` beside it (hashed in ``models.json`` too, under ``io_contract``).

A bare model name (``student``) stands for its float32 streaming file (``HOST_KIND``): on a host
CPU it runs faster than the int8 file at the same quality (docs/CLI.md has the measurement);
``student:int8`` is the int8 file, which the Edge TPU and microcontrollers run.

``recipes/ship_models.py`` writes the folder from a recipe run (the models shipped today: a
``--preset release`` run); ``build`` in ``models.json`` names each model's CRUSE preset and
normalisation.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
REGISTRY = FOLDER / "models.json"
KINDS = ("keras", "int8", "float32")
#: The model ``tinyse enhance`` uses when given none, and ``pretrained`` loads by default.
DEFAULT_MODEL = "student"
#: The kind a bare model name stands for when the model has it: the fastest file on a host CPU.
HOST_KIND = "float32"


def shipped_models() -> dict:
    """``{name: entry}`` of ``models.json``; an entry has ``description``, ``card``, ``build``
    (``{"preset", "norm"}``) and ``files`` (``{kind: {"file", "bytes", "sha256"}}``)."""
    if not REGISTRY.exists():
        return {}
    return json.loads(REGISTRY.read_text())["models"]


def _entry(name: str) -> dict:
    models = shipped_models()
    if name not in models:
        raise ValueError(f"no shipped model {name!r}; the package has "
                         f"{', '.join(sorted(models)) or 'none'}")
    return models[name]


def pretrained_file(name: str = DEFAULT_MODEL, kind: str | None = None) -> Path:
    """The path of one shipped file: ``kind`` ``"int8"`` / ``"float32"`` (streaming .tflite,
    its ``.io_contract.json`` beside it) or ``"keras"`` (the ``.npz`` weights); None: the file
    the bare name stands for (``HOST_KIND`` if the model has it)."""
    files = _entry(name)["files"]
    kind = kind or _default_kind(files)
    if kind not in files:
        raise ValueError(f"shipped model {name!r} has no {kind!r} file; it has "
                         f"{', '.join(sorted(files))}")
    return FOLDER / files[kind]["file"]


def _default_kind(files) -> str:
    """The kind a bare model name stands for: ``HOST_KIND``, else its weights."""
    return HOST_KIND if HOST_KIND in files else "keras"


def model_names() -> list[str]:
    """Every name :func:`resolve` accepts: each model's bare name (its default file), then
    ``NAME:KIND`` for its other files."""
    names = []
    for name, entry in shipped_models().items():
        default = _default_kind(entry["files"])
        names += [name] + [f"{name}:{k}" for k in entry["files"] if k != default]
    return names


def is_model_name(value) -> bool:
    """Whether ``value`` has the form ``NAME[:KIND]`` of a shipped model's name (the kind is not
    checked: :func:`resolve` does that)."""
    return str(value).partition(":")[0] in shipped_models()


def resolve(value) -> Path | None:
    """The file of a shipped model named ``NAME[:KIND]`` (``student`` = its float32 streaming
    file, ``student:int8``, ``student:keras``, ``teacher`` = its Keras weights), after checking
    its hash and its I/O contract's; None when ``value`` names no shipped model. ValueError for an
    unknown kind, OSError for a damaged file."""
    name, _, kind = str(value).partition(":")
    models = shipped_models()
    if name not in models:
        return None
    files = models[name]["files"]
    kind = kind or _default_kind(files)
    if kind not in files:
        raise ValueError(f"{value}: the shipped model {name!r} has no {kind!r} file; choose one "
                         "of " + ", ".join(f"{name}:{k}" for k in files))
    problems = verify(name, kinds=(kind,))
    if problems:
        raise OSError(problems[0])
    return FOLDER / files[kind]["file"]


def pretrained(name: str = DEFAULT_MODEL):
    """A shipped model as a Keras sequence model (float32 weights).

    ``name``: ``"student"`` (the two-step KD student) or ``"teacher"`` (its teacher, to distil
    your own students: ``python recipes/two_step.py --teacher-checkpoint pretrained``), built
    as the CRUSE preset and normalisation of their ``build`` in ``models.json``.
    Shape: features ``[b, t, 80, 1]`` -> mask ``[b, t, 80, 1]`` (see ``tinyse_tf.enhance`` for
    audio in and out). Raises ValueError for an unknown name or weights that do not fit the
    ``build``, OSError if a file fails its hash.
    """
    import numpy as np

    from tinyse_tf.models import build_cruse

    build = _entry(name)["build"]
    path = resolve(f"{name}:keras")
    model = build_cruse(build["preset"], name=name, norm=build["norm"])
    with np.load(path) as stored:
        weights = [stored[k] for k in sorted(stored.files)]  # w000, w001, ...
    if [w.shape for w in weights] != [tuple(w.shape) for w in model.weights]:
        raise ValueError(f"{path}: these weights do not fit the shipped {name!r} model's build "
                         f"in models.json (preset {build['preset']!r}, norm {build['norm']!r}); "
                         "reinstall tinyse_tf, or ship again with recipes/ship_models.py")
    model.set_weights([w.astype(np.float32) for w in weights])
    return model


def save_weights_npz(model, path, dtype="float32") -> None:
    """The weights of ``model`` (in ``model.weights`` order) as ``w000, w001, ...`` in an
    ``.npz``, cast to ``dtype``: the ``keras`` kind of :func:`pretrained`."""
    import numpy as np

    from tinyse_tf.atomic import atomic_path

    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{f"w{i:03d}": np.asarray(w, dtype)
                                      for i, w in enumerate(model.get_weights())})


def file_record(path) -> dict:
    """``{"file", "bytes", "sha256"}`` of one file of this folder."""
    path = Path(path)
    return {"file": path.name, "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def tflite_record(path) -> dict:
    """``file_record`` of a streaming ``.tflite`` plus ``"io_contract"``: the ``file_record`` of
    the ``<stem>.io_contract.json`` beside it (the I/O contract runtimes read)."""
    path = Path(path)
    return {**file_record(path),
            "io_contract": file_record(path.with_name(f"{path.stem}.io_contract.json"))}


def listed_files(models: dict) -> set[str]:
    """The names of every file the registry ``models`` (``{name: entry}``, as
    :func:`shipped_models` gives) lists: weights, .tflite files and their I/O contracts."""
    return {r["file"] for entry in models.values() for record in entry["files"].values()
            for r in (record, record.get("io_contract")) if r}


def _records(record: dict):
    """A registry record and the records nested in it (the I/O contract of a .tflite)."""
    yield {k: record[k] for k in ("file", "bytes", "sha256")}
    if "io_contract" in record:
        yield record["io_contract"]


def verify(name: str | None = None, kinds=KINDS) -> list[str]:
    """Problems (one line each) of the shipped files of ``name`` (all models if None): missing,
    other size or other SHA-256 than ``models.json`` says. Empty when all is well."""
    problems = []
    for model, entry in shipped_models().items():
        if name is not None and model != name:
            continue
        for kind, entry_record in entry["files"].items():
            if kind not in kinds:
                continue
            for record in _records(entry_record):
                path = FOLDER / record["file"]
                if not path.exists():
                    problems.append(f"{path}: shipped file missing; reinstall tinyse_tf")
                elif file_record(path) != record:
                    problems.append(f"{path}: size or SHA-256 differs from models.json; the "
                                    "file is damaged or was replaced: reinstall tinyse_tf")
    return problems
