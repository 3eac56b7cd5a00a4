"""The README's Python snippets run as written, and its module map names real modules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks, in order."""
    return re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M)


def section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"README has no section '## {title}'"
    return m.group(1)


def test_block_extraction():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\nprint(y)\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\nprint(y)\n"]


BLOCKS = python_blocks(README.read_text())


def test_readme_has_a_python_snippet():
    assert BLOCKS, "README.md has no ```python block"


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_python_snippet_runs_as_written(i, tmp_path):
    code = BLOCKS[i]
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, f"README python block {i} failed:\n{code}\n--- stderr:\n{r.stderr[-4000:]}"
    if "count_regions" in code:  # the first three tasks, with what the comments promise
        out = r.stdout
        assert re.search(r"^\d+ activation regions of Network\(64-16-16-10\)", out, re.M), out
        assert "ln B allocated: 137.8" in out and "ln B uniform:   119.8" in out, out
        assert re.search(r"^(equivalent|not_equivalent|unknown) ", out, re.M), out


def test_module_map_names_real_modules():
    import importlib

    import mipnet

    text = README.read_text()
    api = section(text, "Python API") + section(text, "Layout")
    names = set(re.findall(r"`(mipnet(?:\.\w+)+)`", api))
    assert names, "the Python API section names no module"
    for name in sorted(names):  # a module, or a name in one (`mipnet.API`)
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            parent, attr = name.rsplit(".", 1)
            assert hasattr(importlib.import_module(parent), attr), f"README names {name}, which does not exist"
    # every subpackage and top-level module of mipnet appears in the map (itself or a module in it)
    tops = {f"mipnet.{p.stem if p.is_file() else p.name}" for p in (ROOT / "mipnet").iterdir()
            if (p.suffix == ".py" and not p.name.startswith("_")) or (p / "__init__.py").is_file()}
    missing = sorted(t for t in tops if not any(n == t or n.startswith(t + ".") for n in names))
    assert not missing, f"missing from README's Python API table: {missing}"
    # the names the section says `import mipnet` gives are the facade's
    intro = section(text, "Python API").split("|", 1)[0]
    for name in re.findall(r"`(\w+)`", intro):
        if name not in ("mipnet", "torch", "highspy"):
            assert name in mipnet.API, name
