"""Rotation parametrisations: scipy as the independent reference, round trips, edge cases."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from equiscale import o3

F64 = torch.float64


def scipy_rotations(n, seed):
    return Rotation.random(n, random_state=seed)


def as_t(x):
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def singular_angles():
    betas = [0.0, 1e-13, 1e-8, math.pi, math.pi - 1e-13, math.pi - 1e-8, 1.0]
    a = torch.tensor([0.4, -2.0, 3.1, 0.0, -0.7, 1.2, 2.9], dtype=F64)
    return a, torch.tensor(betas, dtype=F64), a.flip(0)


def test_axis_matrices_and_euler_match_scipy():
    t = torch.tensor([0.3, -1.7, 2.9], dtype=F64)
    for fn, axis in [(o3.matrix_x, [1, 0, 0]), (o3.matrix_y, [0, 1, 0]), (o3.matrix_z, [0, 0, 1])]:
        ref = Rotation.from_rotvec(t.numpy()[:, None] * np.array(axis)).as_matrix()
        torch.testing.assert_close(fn(t), as_t(ref), atol=1e-15, rtol=0)
    a, b, c = as_t(np.random.default_rng(0).uniform(-3, 3, size=(3, 10)))
    ref = Rotation.from_euler("YXY", torch.stack([a, b, c], -1).numpy()).as_matrix()  # intrinsic
    torch.testing.assert_close(o3.angles_to_matrix(a, b, c), as_t(ref), atol=1e-14, rtol=0)


def test_quaternion_and_axis_angle_match_scipy():
    rot = scipy_rotations(20, 0)
    q_xyzw = rot.as_quat()
    q = as_t(np.concatenate([q_xyzw[:, 3:], q_xyzw[:, :3]], axis=1))
    torch.testing.assert_close(o3.quaternion_to_matrix(q), as_t(rot.as_matrix()), atol=1e-14, rtol=0)
    torch.testing.assert_close(o3.quaternion_to_matrix(-3 * q), as_t(rot.as_matrix()),
                               atol=1e-14, rtol=0)  # sign and scale do not matter
    rotvec = rot.as_rotvec()
    angle = np.linalg.norm(rotvec, axis=1)
    axis = as_t(rotvec / angle[:, None])
    torch.testing.assert_close(o3.axis_angle_to_matrix(axis, as_t(angle)), as_t(rot.as_matrix()),
                               atol=1e-14, rtol=0)
    ax, an = o3.matrix_to_axis_angle(as_t(rot.as_matrix()))
    torch.testing.assert_close(an, as_t(angle), atol=1e-14, rtol=0)
    torch.testing.assert_close(ax, axis, atol=1e-13, rtol=0)


def test_matrix_angles_round_trip_including_singular():
    a, b, c = singular_angles()
    R = torch.cat([o3.angles_to_matrix(a, b, c), as_t(scipy_rotations(20, 1).as_matrix())])
    angles = o3.matrix_to_angles(R)
    torch.testing.assert_close(o3.angles_to_matrix(*angles), R, atol=2e-15, rtol=0)
    assert (angles[1] >= 0).all() and (angles[1] <= math.pi).all()
    # away from the singular set the angles themselves come back
    a, b, c = (x[-1:] for x in singular_angles())
    for x, y in zip(o3.matrix_to_angles(o3.angles_to_matrix(a, b, c)), (a, b, c)):
        torch.testing.assert_close(x, y, atol=1e-14, rtol=0)


def test_matrix_quaternion_axis_angle_round_trips():
    near_pi = as_t(Rotation.from_rotvec([[0, 0, math.pi - 1e-9], [math.pi, 0, 0],
                                         [1.0, 2.0, -math.pi + 1e-12], [1e-10, 0, 0]]).as_matrix())
    R = torch.cat([as_t(scipy_rotations(30, 2).as_matrix()), near_pi, torch.eye(3, dtype=F64)[None]])
    torch.testing.assert_close(o3.quaternion_to_matrix(o3.matrix_to_quaternion(R)), R,
                               atol=1e-14, rtol=0)
    torch.testing.assert_close(o3.axis_angle_to_matrix(*o3.matrix_to_axis_angle(R)), R,
                               atol=1e-14, rtol=0)
    q = o3.matrix_to_quaternion(R)
    assert (q[:, 0] >= 0).all()
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(len(R), dtype=F64))
    ax, an = o3.matrix_to_axis_angle(torch.eye(3, dtype=F64))
    assert an.item() == 0 and ax.abs().max() == 0  # identity: zero axis, as e3nn
    torch.testing.assert_close(o3.quaternion_to_angles(q)[1], o3.matrix_to_angles(R)[1],
                               atol=1e-12, rtol=0)
    ax, an = o3.quaternion_to_axis_angle(q)
    torch.testing.assert_close(o3.axis_angle_to_quaternion(ax, an), q, atol=1e-14, rtol=0)


def test_compose_and_inverse():
    r1, r2 = scipy_rotations(10, 3), scipy_rotations(10, 4)
    R1, R2 = as_t(r1.as_matrix()), as_t(r2.as_matrix())
    a1, a2 = o3.matrix_to_angles(R1), o3.matrix_to_angles(R2)
    torch.testing.assert_close(o3.angles_to_matrix(*o3.compose_angles(*a1, *a2)), R1 @ R2,
                               atol=1e-14, rtol=0)
    torch.testing.assert_close(o3.angles_to_matrix(*o3.inverse_angles(*a1)), R1.transpose(-1, -2),
                               atol=1e-14, rtol=0)
    q1, q2 = o3.matrix_to_quaternion(R1), o3.matrix_to_quaternion(R2)
    torch.testing.assert_close(o3.quaternion_to_matrix(o3.compose_quaternion(q1, q2)), R1 @ R2,
                               atol=1e-14, rtol=0)
    torch.testing.assert_close(o3.quaternion_to_matrix(o3.inverse_quaternion(q1)),
                               R1.transpose(-1, -2), atol=1e-14, rtol=0)
    aa = o3.compose_axis_angle(*o3.matrix_to_axis_angle(R1), *o3.matrix_to_axis_angle(R2))
    torch.testing.assert_close(o3.axis_angle_to_matrix(*aa), R1 @ R2, atol=1e-14, rtol=0)
    torch.testing.assert_close(o3.angles_to_matrix(*o3.axis_angle_to_angles(*o3.angles_to_axis_angle(*a1))),
                               R1, atol=1e-14, rtol=0)
    torch.testing.assert_close(o3.quaternion_to_matrix(o3.angles_to_quaternion(*a1)), R1,
                               atol=1e-14, rtol=0)


def test_xyz_angles():
    a, b, _ = singular_angles()
    xyz = o3.angles_to_xyz(a, b)
    torch.testing.assert_close(xyz, o3.angles_to_matrix(a, b, torch.zeros_like(a))[..., :, 1])
    a2, b2 = o3.xyz_to_angles(3 * xyz)
    torch.testing.assert_close(o3.angles_to_xyz(a2, b2), xyz, atol=1e-15, rtol=0)
    torch.testing.assert_close(b2, b, atol=1e-15, rtol=0)  # beta accurate at the poles too
    a0, b0 = o3.xyz_to_angles(torch.zeros(3, dtype=F64))
    assert a0.item() == 0 and b0.item() == pytest.approx(math.pi / 2)


def test_random_and_identity_helpers():
    for dtype in (torch.float32, F64):
        R = o3.rand_matrix(4, 5, dtype=dtype, requires_grad=True)
        assert R.shape == (4, 5, 3, 3) and R.dtype == dtype and R.requires_grad and R.is_leaf
        o3.check_rotation_matrix(R, allow_reflection=False)
        a, b, c = o3.rand_angles(7, dtype=dtype)
        assert a.shape == (7,) and (b >= 0).all() and (b <= math.pi).all()
        q = o3.rand_quaternion(3, dtype=dtype)
        torch.testing.assert_close(q.norm(dim=-1), torch.ones(3, dtype=dtype))
        ax, an = o3.rand_axis_angle(2, dtype=dtype)
        assert ax.shape == (2, 3) and an.shape == (2,)
        ids = o3.identity_angles(2, 3, dtype=dtype, requires_grad=True)
        assert all(x.shape == (2, 3) and x.requires_grad and (x == 0).all() for x in ids)
        iq = o3.identity_quaternion(2, dtype=dtype)
        assert iq.tolist() == [[1, 0, 0, 0]] * 2
    assert o3.rand_matrix().shape == (3, 3)
    assert o3.rand_matrix().dtype == torch.get_default_dtype()


def test_haar_distribution_moments():
    torch.manual_seed(0)
    R = o3.rand_matrix(20000, dtype=F64)
    # for Haar measure E[R] = 0 and E[R_ij^2] = 1/3
    assert R.mean(0).abs().max() < 0.02
    assert (R.pow(2).mean(0) - 1 / 3).abs().max() < 0.02


def test_check_rotation_matrix():
    R = as_t(scipy_rotations(5, 5).as_matrix())
    o3.check_rotation_matrix(R)
    o3.check_rotation_matrix(-R)
    o3.check_rotation_matrix(R.float())
    o3.check_rotation_matrix(R[:0])
    with pytest.raises(ValueError, match="determinant"):
        o3.check_rotation_matrix(-R, allow_reflection=False)
    with pytest.raises(ValueError, match="orthogonal"):
        o3.check_rotation_matrix(R * 1.001)
    noisy = R + 1e-4 * as_t(np.random.default_rng(1).normal(size=(5, 3, 3)))
    with pytest.raises(ValueError, match="orthogonal"):
        o3.check_rotation_matrix(noisy)  # float64 tolerance is tight ...
    o3.check_rotation_matrix(noisy.float())  # ... float32's is looser
    o3.check_rotation_matrix(R.float().double())  # float32-built rotations pass in float64
    bad_nan = R.clone()
    bad_nan[2, 0, 0] = float("nan")
    for bad, match in [(bad_nan, "orthogonal"), (R[..., :2], "shape"), (R[0, 0], "shape"),
                       (torch.eye(3, dtype=torch.long), "floating"), (np.eye(3), "Tensor")]:
        with pytest.raises(ValueError, match=match):
            o3.check_rotation_matrix(bad)
    for fn in (o3.matrix_to_angles, o3.matrix_to_axis_angle, o3.matrix_to_quaternion):
        with pytest.raises(ValueError):
            fn(-R)
        with pytest.raises(ValueError):
            fn(2 * R)


def test_float32_in_float32_out_and_gradients():
    R = o3.rand_matrix(3)
    for out in (*o3.matrix_to_angles(R), o3.matrix_to_quaternion(R), *o3.matrix_to_axis_angle(R)):
        assert out.dtype == torch.float32
    q = o3.rand_quaternion(2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(o3.quaternion_to_matrix, (q,))
    ax, an = o3.rand_axis_angle(2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(o3.axis_angle_to_matrix, (ax, an))
