"""The package's layering, read from the source with ``ast`` (nothing is imported):

* no module imports a module of a higher layer (``LAYERS``, lowest first; a module may import
  its own layer and every layer below);
* no module imports another module's private name (``from m import _name``); a private module
  (``_tf``, ``cli._common``, ``data._fs``, ``export._tf_internals``) is imported only from inside
  the package that holds it.

``tinyse_tf/__init__.py`` is the lazy facade of the public API (names resolved from strings on
first use), so it is not an importer here.
"""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tinyse_tf"

#: Lowest first. Derived from the imports as they are: each group only needs those before it.
LAYERS = (
    ("base", ("tinyse_tf", "tinyse_tf._tf", "tinyse_tf.constants", "tinyse_tf.atomic",
              "tinyse_tf.native_stderr")),
    ("signal and audio data", ("tinyse_tf.dsp", "tinyse_tf.data")),
    ("features", ("tinyse_tf.features",)),
    ("models and losses", ("tinyse_tf.models", "tinyse_tf.losses")),
    ("training", ("tinyse_tf.distill", "tinyse_tf.training")),
    ("runtime and evaluation", ("tinyse_tf.runtime", "tinyse_tf.evaluation")),
    ("export and shipped models", ("tinyse_tf.export", "tinyse_tf.shipped")),
    ("recipe and adaptation", ("tinyse_tf.recipe", "tinyse_tf.adapt")),
    ("cli", ("tinyse_tf.cli",)),
)


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """Index in ``LAYERS`` of the longest prefix group that holds ``module``."""
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = i, prefix.count(".")
    if best is None:
        raise AssertionError(f"{module}: in no layer of tests/test_layers.py LAYERS; add it")
    return best


def imports(path: pathlib.Path):
    """``(line, imported module, [names])`` of every tinyse_tf import in the file."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "tinyse_tf":
                yield node.lineno, target, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tinyse_tf":
                    yield node.lineno, alias.name, []


def is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def private_module_owner(dotted: str) -> str | None:
    """The package inside which the private module ``dotted`` (or one it lies in) may be used."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def problems_of(path: pathlib.Path) -> list[str]:
    module, found = module_name(path), []
    where = f"{path.relative_to(PACKAGE.parent)}"
    own = layer_of(module)
    for line, target, names in imports(path):
        targets = [target] + [f"{target}.{n}" for n in names if is_module(f"{target}.{n}")]
        for t in targets:
            if layer_of(t) > own:
                found.append(f"{where}:{line}: {module} ({LAYERS[own][0]}) imports {t} "
                             f"({LAYERS[layer_of(t)][0]}), a higher layer")
            owner = private_module_owner(t)
            if owner is not None and not (module == owner or module.startswith(owner + ".")):
                found.append(f"{where}:{line}: {module} imports the private module {t} from "
                             f"outside {owner}")
        for n in names:
            if n.startswith("_") and not n.startswith("__") and not is_module(f"{target}.{n}"):
                found.append(f"{where}:{line}: {module} imports the private name {n} of "
                             f"{target}; make it public or move it")
    return found


def test_the_checker_sees_an_upward_and_a_private_import(tmp_path, monkeypatch):
    fake = PACKAGE / "models" / "complexity.py"  # any real module of a low layer
    source = tmp_path / "complexity.py"
    source.write_text("from tinyse_tf.cli._common import say\n"
                      "from tinyse_tf.models.cruse import _private\n")
    monkeypatch.setattr(pathlib.Path, "read_text",
                        lambda self, *a, **k: source.open().read() if self == fake
                        else open(self).read())
    found = problems_of(fake)
    assert any("imports tinyse_tf.cli._common (cli), a higher layer" in f for f in found), found
    assert any("private module tinyse_tf.cli._common from outside tinyse_tf.cli" in f
               for f in found), found
    assert any("private name _private" in f for f in found), found


def test_no_upward_or_private_import():
    assert len(SOURCES) > 50  # the package was found
    problems = [p for path in SOURCES for p in problems_of(path)]
    assert not problems, "\n".join(problems)
