"""Nothing is unpickled from a file: every loader in the package is safetensors, JSON, YAML
(safe_load) or HDF5. Checked on the source, so a new `pickle.load` or `torch.load` without
weights_only fails here, naming the file and line."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ("rs_diffuser_ros", "sim", "tools", "launch") for p in (REPO / folder).rglob("*.py")]
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal"}


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_calls(tree: ast.AST):
    """(line, what) for each call or import that can unpickle."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in UNSAFE_MODULES:
                    yield node.lineno, f"import {name}"
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        attr = node.func.attr
        if owner == "torch" and attr == "load":
            safe = _keyword(node, "weights_only")
            if not (isinstance(safe, ast.Constant) and safe.value is True):
                yield node.lineno, "torch.load without weights_only=True"
        if owner == "np" and attr == "load":
            allow = _keyword(node, "allow_pickle")
            if allow is None or not (isinstance(allow, ast.Constant) and allow.value is False):
                yield node.lineno, "np.load without allow_pickle=False"
        if owner == "yaml" and attr in ("load", "unsafe_load", "full_load", "load_all", "unsafe_load_all"):
            yield node.lineno, f"yaml.{attr} (use yaml.safe_load)"


def test_no_loader_in_the_package_can_unpickle():
    assert len(SOURCES) > 30, "the source scan found too few files: wrong folder?"
    found = [f"{path.relative_to(REPO)}:{line}: {what}" for path in SOURCES
             for line, what in unsafe_calls(ast.parse(path.read_text(), str(path)))]
    assert not found, "\n".join(found)


def test_the_scan_finds_what_it_looks_for():
    code = ("import pickle\nimport torch, numpy as np, yaml\ntorch.load(p)\ntorch.load(p, weights_only=True)\n"
            "np.load(p)\nyaml.load(s)\nyaml.safe_load(s)\n")
    assert [what for _, what in unsafe_calls(ast.parse(code))] == [
        "import pickle", "torch.load without weights_only=True", "np.load without allow_pickle=False",
        "yaml.load (use yaml.safe_load)"]
