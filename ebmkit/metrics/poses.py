"""Camera poses inferred without pose supervision (sec. 3.4.4) against the true ones.

A model trained without poses picks its own azimuth frame: any rotation of it (and its mirror image)
explains the data equally well. So besides the raw circular error we report the error after the one
rotation, with or without reflection, that best aligns the inferred azimuths with the true ones.

A model can also learn part of the pose. Cars look nearly alike from the front and the back, so the
view's axis (the azimuth modulo 180 degrees) is what the images show most plainly: cos 2 theta (side-on
against end-on) and sin 2 theta (which diagonal, which needs left told from right). `harmonic_r2` says how
much of it (k = 2), or of the azimuth itself (k = 1), the inferred cameras explain, whatever their frame.
"""

import math

import torch

from ebmkit.errors import EbmkitError
from ebmkit.nerf.camera import camera_position
from ebmkit.nerf.vmf import angle_of, unit_of


def wrap(angle: torch.Tensor) -> torch.Tensor:
    """Angles -> (-pi, pi]."""
    return math.pi - torch.remainder(math.pi - angle, 2 * math.pi)


def circular_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """|pred - true| on the circle, in [0, pi], elementwise (radians)."""
    return wrap(pred - true).abs()


def aligned(pred: torch.Tensor, true: torch.Tensor, circular: bool = True) -> tuple[torch.Tensor, float, bool]:
    """pred mapped into true's frame: s * pred + offset with s = +1 or -1 (reflection, tried from 2 points
    on) and the offset the circular mean of true - s * pred; the s with the smaller mean error. Angles on
    the line (circular=False) take the plain mean and error. -> (mapped, offset, reflected)."""
    best = None
    for s in (1.0, -1.0)[:2 if len(pred) > 1 else 1]:
        if circular:
            offset = angle_of(unit_of(true - s * pred).mean(0))
            mapped = wrap(s * pred + offset)
            err = circular_error(mapped, true).mean()
        else:
            offset = (true - s * pred).mean()
            mapped = s * pred + offset
            err = (mapped - true).abs().mean()
        if best is None or err < best[0]:
            best = (err, mapped, float(offset), s < 0)
    return best[1], best[2], best[3]


def harmonic_r2(pred: torch.Tensor, true: torch.Tensor, k: int) -> float:
    """R^2 of the least-squares fit of (cos k true, sin k true) (N, 2), true the azimuths, on smooth
    functions of the inferred cameras pred (N, 2) (elevation, azimuth): an intercept, the camera's unit
    direction u and its products u_i u_j (harmonics up to degree 2 on the sphere), and cos, sin of the
    inferred azimuth and of twice it. A model chooses its own frame, and it may spread what it knows over
    both angles (say, the view's axis partly in its elevation), so the fit reads the whole camera.
    k = 2, the view axis: 1 if the axis is a function of the inferred camera, about 0.5 if only one
    coordinate of it is (e.g. side-on against end-on), about 0 if unrelated. k = 1, the azimuth itself:
    1 only if front is told from back and left from right. Rotating the true frame rotates the target,
    which leaves R^2 unchanged."""
    ux, uy, uz = camera_position(pred[:, 0], pred[:, 1], 1.0).unbind(1)
    az = pred[:, 1]
    design = torch.stack([torch.ones_like(ux), ux, uy, uz, ux * ux, uy * uy, ux * uy, ux * uz, uy * uz,
                          az.cos(), az.sin(), (2 * az).cos(), (2 * az).sin()], 1)
    y = torch.stack([(k * true).cos(), (k * true).sin()], 1)
    fit = design @ torch.linalg.lstsq(design, y).solution
    return float(1 - (y - fit).pow(2).sum() / (y - y.mean(0)).pow(2).sum())


def pose_report(pred: torch.Tensor, true: torch.Tensor) -> dict:
    """Azimuth errors in degrees of pred (N, 2) against true (N, 2), both (elevation, azimuth) in radians."""
    pred, az_true = pred.double(), true[:, 1].double()
    az = pred[:, 1]
    raw = circular_error(az, az_true).rad2deg()
    mapped, offset, reflected = aligned(az, az_true)
    err = circular_error(mapped, az_true).rad2deg()
    return {"num": len(pred),
            "azimuth_error_deg": {"mean": float(raw.mean()), "median": float(raw.median())},
            "aligned_azimuth_error_deg": {"mean": float(err.mean()), "median": float(err.median()),
                                          "within_30deg": float((err <= 30).double().mean())},
            "alignment": {"offset_deg": math.degrees(offset), "reflected": reflected},
            "view_axis_r2": harmonic_r2(pred, az_true, 2), "azimuth_r2": harmonic_r2(pred, az_true, 1)}


def model_pose_report(method, data, limit: int | None = None) -> dict:
    """pose_report of the poses a NeRF-LEBM model infers for the first `limit` images of a posed set."""
    if data.poses is None:
        raise EbmkitError(f"data set {data.name!r} has no true camera poses to compare with")
    n = len(data.x) if limit is None else min(limit, len(data.x))
    return pose_report(method.infer_poses(data.x[:n].float() / 255), data.poses[:n].float())


def to_model_frame(inferred: torch.Tensor, true: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Poses targets (N, 2) of the data's frame in the frame of a model trained without poses, fitted on
    views whose inferred (M, 2) and true (M, 2) poses are both known (all (elevation, azimuth), radians).
    Each angle gets the offset, and from 2 views on the reflection, that best align the true angles with
    the inferred ones (`aligned`): the azimuth on the circle, the elevation on the line. Rendering a
    target pose then shows the view a camera there would see, as far as the model's frame is known."""
    _, az_offset, az_flip = aligned(true[:, 1].double(), inferred[:, 1].double())
    _, el_offset, el_flip = aligned(true[:, 0].double(), inferred[:, 0].double(), circular=False)
    el, az = (-1.0 if el_flip else 1.0) * targets[:, 0] + el_offset, (-1.0 if az_flip else 1.0) * targets[:, 1] + az_offset
    return torch.stack([el, wrap(az)], 1).to(targets.dtype)
