"""The README's Python works as written: every name it imports from cotbridge exists, and the first example runs
against the embedded model."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_name_the_readme_imports_exists(index: int) -> None:
    for node in ast.walk(ast.parse(BLOCKS[index])):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cotbridge"):
            module = importlib.import_module(node.module)
            missing = [alias.name for alias in node.names if not hasattr(module, alias.name)]
            assert not missing, f"README imports {missing} from {node.module}"


@pytest.mark.slow
def test_the_first_example_runs(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", BLOCKS[0]], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cache_hits" in result.stdout and (tmp_path / "study.db").is_file()
