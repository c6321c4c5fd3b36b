"""docs/python-api.md runs as written: its python blocks, in order, in a folder holding tiny models at the
paths they name."""

import re
import shutil

from conftest import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "python-api.md").read_text(), flags=re.S)


def test_the_documented_examples_run(digits_model, coopflow_digits, tmp_path, monkeypatch):
    (tmp_path / "runs" / "digits").mkdir(parents=True)
    shutil.copy(digits_model, tmp_path / "runs" / "digits" / "model.safetensors")
    shutil.copy(coopflow_digits, tmp_path / "cf.safetensors")
    monkeypatch.chdir(tmp_path)
    scope = {}
    for block in BLOCKS:
        exec(compile(block, "docs/python-api.md", "exec"), scope)
    assert scope["points"].shape == (1000, 2) and scope["energies"].shape == (1000,)
    assert scope["filled"].shape == (4, 2, 1, 8, 8) and scope["row"].shape == (7, 1, 8, 8)
    assert scope["stored"].name == "cdrl-points"


def test_import_ebmkit_alone_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, ebmkit; print('torch' in sys.modules, ebmkit.__all__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.startswith("False")
