"""Every command's --help (or -h) renders as written and ends with examples that parse; the version, the
deprecated option names, and `ebmkit info`."""

import json
import shlex

import pytest
import typer

from conftest import in_process
from ebmkit import __version__
from ebmkit.cli import main
from ebmkit.cli.common import app

ROOT_COMMAND = typer.main.get_command(app)


def commands(group=ROOT_COMMAND, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group, as the words that call it."""
    found = [path]
    for name, command in group.commands.items():
        found += commands(command, path + (name,)) if hasattr(command, "commands") else [path + (name,)]
    return found


def help_text(args, capsys) -> str:
    """What `ebmkit ARGS` prints on stdout, where ARGS ask for help or the version (exit code 0)."""
    try:
        main([*args])
    except SystemExit as e:
        assert e.code == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p) or "ebmkit")
def test_every_help_ends_with_examples_that_parse(path, capsys):
    text = help_text([*path, "-h"], capsys)
    examples = text.split("Examples:\n", 1)[1].splitlines()
    lines = [line.strip().split(" > ")[0] for line in examples if "ebmkit " in line]
    assert lines and all(line.startswith(("ebmkit ", "torchrun ")) for line in lines)
    for line in lines:
        calls = [shlex.split(part[part.index("ebmkit "):])[1:] for part in line.split(" | ") if "ebmkit " in part]
        assert any(args[:len(path)] == list(path) for args in calls), line  # an example of this command
        for args in calls:
            help_text([*args, "--help"], capsys)                             # its options exist


def test_help_keeps_bracketed_text(capsys):
    assert "[default: runs/PRESET]" in help_text(["train", "--help"], capsys)
    assert "EBMKIT_INCEPTION_WEIGHTS" in help_text(["eval", "fid", "-h"], capsys)
    assert '{"views": {FILE: [elevation, azimuth]}' in help_text(["novel-view", "-h"], capsys)


def test_version(capsys):
    assert help_text(["--version"], capsys) == f"ebmkit {__version__}\n"


@pytest.mark.parametrize("old, new", [(["--in", "digits:test", "--out", "shapes:test"],
                                       ["--in-data", "digits:test", "--ood-data", "shapes:test"])])
def test_deprecated_option_names_still_work_with_a_warning(digits_model, old, new):
    reports = [in_process("ood-score", "--model", digits_model, *args, "--draws", 1, "--json", check=True) for args in (old, new)]
    assert json.loads(reports[0].stdout) == json.loads(reports[1].stdout)
    assert "warning: --in is deprecated" in reports[0].stderr and "deprecated" not in reports[1].stderr
    both = in_process("ood-score", "--model", digits_model, *old, "--in-data", "digits:test")
    assert both.returncode == 2 and "give --in-data once (--in is its deprecated old name)" in both.stderr


def test_info_describes_a_model_file(points_model):
    from ebmkit.checkpoint import read_metadata

    r = json.loads(in_process("info", points_model, "--json", check=True).stdout)
    meta = read_metadata(points_model)
    assert (r["method"], r["step"], r["shape"]) == ("cdrl", int(meta["step"]), [2])
    assert r["preset"] == "cdrl-points" and r["ebmkit_version"] == meta["ebmkit_version"]
    assert set(r["networks"]) == {"ebm", "init"} and r["parameters"] == sum(n["parameters"] for n in r["networks"].values())
    assert all(0 < n["ema_distance"] < 1 for n in r["networks"].values())  # a few steps of EMA 0.995: near, not equal
    shown = in_process("presets", "show", points_model, "--json", check=True).stdout
    assert json.loads(shown)["name"] == "cdrl-points"
