"""Circular errors of inferred camera poses (sec. 3.4.4), against cases computed by hand."""

import math

import torch

from ebmkit.metrics.poses import aligned, circular_error, harmonic_r2, pose_report, to_model_frame, wrap


def test_wrap_and_circular_error_by_hand():
    a = torch.tensor([0.0, math.pi, -math.pi, 3 * math.pi / 2, 7.0], dtype=torch.float64)
    torch.testing.assert_close(wrap(a), torch.tensor([0.0, math.pi, math.pi, -math.pi / 2, 7.0 - 2 * math.pi],
                                                     dtype=torch.float64))
    err = circular_error(torch.tensor([math.radians(350.0), 0.1]), torch.tensor([math.radians(10.0), -0.1]))
    torch.testing.assert_close(err, torch.tensor([math.radians(20.0), 0.2]))


def test_alignment_undoes_a_rotation_and_a_reflection():
    true = torch.rand(50, dtype=torch.float64) * 2 * math.pi - math.pi
    for s, offset in [(1.0, 1.3), (-1.0, -2.0)]:
        pred = wrap(s * (true - offset))  # the model's own frame: rotated, maybe mirrored
        mapped, found, reflected = aligned(pred, true)
        assert reflected == (s < 0)
        assert circular_error(mapped, true).max() < 1e-9


def test_data_poses_map_into_the_models_frame():
    """A model frame with the azimuth mirrored and turned by 40 degrees and the elevation lowered by 0.1:
    fitted on 6 views, it maps new poses as the frame does; one view fixes the offsets only."""
    def frame(p):  # data's frame -> the model's
        return torch.stack([p[:, 0] - 0.1, wrap(-p[:, 1] + math.radians(40.0))], 1)

    true = torch.stack([torch.rand(6) * 0.6, torch.rand(6) * 2 * math.pi - math.pi], 1).double()
    targets = torch.tensor([[0.2, 0.0], [0.5, 2.0], [0.1, -3.0]], dtype=torch.float64)
    mapped = to_model_frame(frame(true), true, targets)
    assert torch.allclose(mapped[:, 0], frame(targets)[:, 0]) and circular_error(mapped[:, 1], frame(targets)[:, 1]).max() < 1e-9
    one = to_model_frame(frame(true[:1]), true[:1], targets)  # a rotation alone: the view's own pose maps exactly
    assert torch.allclose(to_model_frame(frame(true[:1]), true[:1], true[:1]), frame(true[:1]))
    assert torch.allclose(one[:, 0] - targets[:, 0], torch.full((3,), -0.1, dtype=torch.float64))


def test_pose_report_in_degrees():
    true = torch.tensor([[0.3, math.radians(a)] for a in (0.0, 90.0, 180.0, -90.0)], dtype=torch.float64)
    pred = true.clone()
    pred[:, 1] += math.radians(30.0)  # every azimuth off by 30 degrees, elevation ignored
    r = pose_report(pred, true)
    assert math.isclose(r["azimuth_error_deg"]["mean"], 30.0, abs_tol=1e-9)
    assert r["aligned_azimuth_error_deg"]["mean"] < 1e-9 and r["aligned_azimuth_error_deg"]["within_30deg"] == 1.0
    assert math.isclose(r["alignment"]["offset_deg"], -30.0, abs_tol=1e-9) and not r["alignment"]["reflected"]


def test_harmonic_r2_sees_the_view_axis_and_the_azimuth_in_the_whole_camera():
    g = torch.Generator().manual_seed(0)
    true = torch.rand(2000, generator=g, dtype=torch.float64) * 2 * math.pi - math.pi

    def camera(az, el=None):  # (N, 2) inferred poses; a fixed elevation unless given
        return torch.stack([torch.full_like(az, 0.3) if el is None else el, az], 1)

    for k in (1, 2):
        assert harmonic_r2(camera(wrap(true + 1.0)), true, k) > 1 - 1e-9           # the whole pose, in another frame
        assert harmonic_r2(camera(wrap(math.pi - true)), true, k) > 1 - 1e-9       # mirrored
        noise = torch.rand(2000, generator=g, dtype=torch.float64) * 2 * math.pi
        assert abs(harmonic_r2(camera(noise), true, k)) < 0.02
    assert abs(harmonic_r2(camera(0.5 * (2 * true).cos()), true, 2) - 0.5) < 0.03  # only how side-on the view is
    assert abs(harmonic_r2(camera(0.5 * (2 * true - 0.7).sin()), true, 2) - 0.5) < 0.03
    axis_only = camera(wrap(2 * true))                                             # front not told from back
    assert harmonic_r2(axis_only, true, 2) > 1 - 1e-9 and abs(harmonic_r2(axis_only, true, 1)) < 0.02
    spread = camera(0.5 * (2 * true).cos(), 0.4 * (2 * true).sin())                # the axis over both angles
    assert harmonic_r2(spread, true, 2) > 0.97 and abs(harmonic_r2(spread, true, 1)) < 0.02
