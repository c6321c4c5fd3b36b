"""Training curves: written beside the samples at every preview, redrawn by `ebmkit plot`."""

from PIL import Image

from conftest import in_process, set_args, tiny
from ebmkit.viz import training_curves


def test_training_writes_curves_and_plot_redraws_them(tmp_path):
    run = tmp_path / "run"
    in_process("train", "--preset", "cdrl-points", "--run-dir", run, "--quiet",
               *set_args(tiny("cdrl-points", "train.iterations=10")), check=True)  # logged at steps 5 and 10
    assert Image.open(run / "curves.png").size[0] > 0
    proc = in_process("plot", run, "--out", tmp_path / "c.png", check=True)
    assert "curves ->" in proc.stderr and Image.open(tmp_path / "c.png").size == Image.open(run / "curves.png").size


def test_plot_refuses_a_folder_without_a_log(tmp_path):
    proc = in_process("plot", tmp_path)
    assert proc.returncode == 2 and "metrics.jsonl not found" in proc.stderr


def test_curves_panel_per_family_with_guard_events(tmp_path):
    records = [{"step": s, "loss_ebm": 0.1 * s, "energy_data": -s, "grad_norm_ebm": 1 + s} for s in (1, 2, 3)]
    records += [{"event": "guard", "step": 2}, {"event": "eval", "step": 3, "mmd2_ratio": 1.2}]
    training_curves(records, tmp_path / "c.png")
    width, _ = Image.open(tmp_path / "c.png").size
    training_curves([r for r in records if r.get("event") != "eval"], tmp_path / "three.png")
    assert width > Image.open(tmp_path / "three.png").size[0]  # the evaluation panel is the fourth
    training_curves([{"event": "checkpoint", "step": 1}], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_tensorboard_logs_every_figure(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    in_process("train", "--preset", "cdrl-points", "--run-dir", run, "--quiet", "--tensorboard",
               *set_args(tiny("cdrl-points", "train.iterations=10")), check=True)
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    assert {"train/loss_ebm", "train/energy_data"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/loss_ebm")] == [5, 10]
