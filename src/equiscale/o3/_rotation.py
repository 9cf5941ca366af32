r"""Parametrisations of 3D rotations and conversions between them (e3nn 0.6 names and conventions).

Conventions, as e3nn:

* matrices act on column vectors ``(x, y, z)``; ``matrix_x/y/z(t)`` rotate by ``t`` (right hand)
  about that axis;
* Euler angles ``(alpha, beta, gamma)`` are the rotation ``Y(alpha) @ X(beta) @ Y(gamma)``
  (``gamma`` about y applied first), ``alpha, gamma`` in ``(-pi, pi]``, ``beta`` in ``[0, pi]``;
* quaternions are ``(w, x, y, z) = (cos(t/2), sin(t/2) * axis)``, composed by the Hamilton product;
* axis-angle is a unit ``axis (..., 3)`` and ``angle (...)`` in ``[0, pi]`` when derived from a
  matrix;
* ``angles_to_xyz(alpha, beta) = Y(alpha) X(beta) e_y`` is a point of the unit sphere.

``*shape`` functions take ``*shape, requires_grad=False, dtype=None, device=None`` and draw the
random numbers in the same order as e3nn. Conversions use forms that stay accurate to float64
rounding where e3nn loses digits (``atan2`` instead of ``acos``; the symmetric part of ``R`` for
axes of rotations near pi). Functions that take a matrix as a rotation validate it with
``check_rotation_matrix``.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch._subclasses.fake_tensor import FakeTensor
from equiscale.errors import InvalidArgumentError

__all__ = [
    "check_rotation_matrix", "rand_matrix", "identity_angles", "rand_angles", "compose_angles",
    "inverse_angles", "identity_quaternion", "rand_quaternion", "compose_quaternion",
    "inverse_quaternion", "rand_axis_angle", "compose_axis_angle", "matrix_x", "matrix_y",
    "matrix_z", "angles_to_matrix", "matrix_to_angles", "angles_to_quaternion",
    "matrix_to_quaternion", "axis_angle_to_quaternion", "quaternion_to_axis_angle",
    "matrix_to_axis_angle", "angles_to_axis_angle", "axis_angle_to_matrix", "quaternion_to_matrix",
    "quaternion_to_angles", "axis_angle_to_angles", "angles_to_xyz", "xyz_to_angles",
]

Angles = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _as_float_tensor(x) -> torch.Tensor:
    """``x`` as a floating tensor: float tensors unchanged, anything else in torch's default dtype."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x
    return torch.as_tensor(x, dtype=torch.get_default_dtype(),
                           device=x.device if isinstance(x, torch.Tensor) else None)


def _det3(R: torch.Tensor) -> torch.Tensor:
    """Determinant of ``(..., 3, 3)`` matrices by cofactors (much faster than batched LU)."""
    return (R[..., 0, 0] * (R[..., 1, 1] * R[..., 2, 2] - R[..., 1, 2] * R[..., 2, 1])
            - R[..., 0, 1] * (R[..., 1, 0] * R[..., 2, 2] - R[..., 1, 2] * R[..., 2, 0])
            + R[..., 0, 2] * (R[..., 1, 0] * R[..., 2, 1] - R[..., 1, 1] * R[..., 2, 0]))


def _traced(t: torch.Tensor) -> bool:
    """True under ``torch.compile``/``torch.export`` tracing or on fake tensors (``make_fx``)."""
    return torch.compiler.is_compiling() or isinstance(t, FakeTensor)


def check_rotation_matrix(R: torch.Tensor, allow_reflection: bool = True,
                          atol: Optional[float] = None) -> None:
    r"""Raise ValueError unless ``R`` is a batch of orthogonal matrices of shape ``(..., 3, 3)``.

    ``max |R^T R - 1| <= atol`` is required, with ``atol = eps(R.dtype) ** (1/3)`` by default
    (about 6e-6 in float64, 5e-3 in float32): it flags matrices that are not rotations, not
    rounding, and accepts float32-built rotations cast to float64. The determinant must be +1,
    or -1 if ``allow_reflection``. Non-finite entries and non-floating dtypes are rejected.
    """
    if not isinstance(R, torch.Tensor):
        raise InvalidArgumentError(f"rotation matrix must be a torch.Tensor, got {type(R).__name__}")
    if R.dim() < 2 or tuple(R.shape[-2:]) != (3, 3):
        raise InvalidArgumentError(f"rotation matrix must have shape (..., 3, 3), got {tuple(R.shape)}")
    if not R.is_floating_point():
        raise InvalidArgumentError(f"rotation matrix must have a floating dtype, got {R.dtype}")
    if R.numel() == 0 or _traced(R):  # a traced graph cannot branch on the values
        return
    if atol is None:
        atol = torch.finfo(R.dtype).eps ** (1.0 / 3.0)
    with torch.no_grad():
        r = R.detach()
        if r.dtype in (torch.float16, torch.bfloat16):
            r = r.float()
        eye = torch.eye(3, dtype=r.dtype, device=r.device)
        gram = (r[..., :, :, None] * r[..., :, None, :]).sum(-3)  # R^T R, elementwise (fast)
        err = (gram - eye).abs().amax()
        if not bool(err <= atol):  # also catches NaN
            raise InvalidArgumentError(f"matrix is not orthogonal: max |R^T R - 1| = {float(err):.3g} "
                                       f"> {atol:.3g} (tolerance for {R.dtype})")
        if not allow_reflection and bool((_det3(r) < 0).any()):
            raise InvalidArgumentError("matrix has determinant -1 (a reflection); a proper rotation "
                                       "(determinant +1) is required")


# --------------------------------------------------------------------------- random / identity
def rand_matrix(*shape: int, requires_grad: bool = False, dtype: Optional[torch.dtype] = None,
                device: Optional[torch.device] = None) -> torch.Tensor:
    """Random rotation matrices ``(*shape, 3, 3)``, uniform (Haar) on SO(3)."""
    R = angles_to_matrix(*rand_angles(*shape, dtype=dtype, device=device))
    return R.detach().requires_grad_(requires_grad)


def identity_angles(*shape: int, requires_grad: bool = False, dtype: Optional[torch.dtype] = None,
                    device: Optional[torch.device] = None) -> Angles:
    """Euler angles ``(alpha, beta, gamma)`` of the identity, each of shape ``shape``."""
    return tuple(torch.zeros(shape, dtype=dtype, device=device).requires_grad_(requires_grad)
                 for _ in range(3))


def rand_angles(*shape: int, requires_grad: bool = False, dtype: Optional[torch.dtype] = None,
                device: Optional[torch.device] = None) -> Angles:
    """Euler angles of Haar-random rotations, each of shape ``shape`` (same draws as e3nn)."""
    alpha, gamma = 2 * math.pi * torch.rand(2, *shape, dtype=dtype, device=device)
    beta = torch.rand(shape, dtype=dtype, device=device).mul(2).sub(1).acos()
    return tuple(x.detach().requires_grad_(requires_grad) for x in (alpha, beta, gamma))


def identity_quaternion(*shape: int, requires_grad: bool = False,
                        dtype: Optional[torch.dtype] = None,
                        device: Optional[torch.device] = None) -> torch.Tensor:
    """Quaternion ``(1, 0, 0, 0)`` of the identity, shape ``(*shape, 4)``."""
    q = torch.zeros(*shape, 4, dtype=dtype, device=device)
    q[..., 0] = 1
    return q.requires_grad_(requires_grad)


def rand_quaternion(*shape: int, requires_grad: bool = False, dtype: Optional[torch.dtype] = None,
                    device: Optional[torch.device] = None) -> torch.Tensor:
    """Unit quaternions ``(*shape, 4)`` of Haar-random rotations."""
    q = angles_to_quaternion(*rand_angles(*shape, dtype=dtype, device=device))
    return q.detach().requires_grad_(requires_grad)


def rand_axis_angle(*shape: int, requires_grad: bool = False, dtype: Optional[torch.dtype] = None,
                    device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Axis ``(*shape, 3)`` and angle ``shape`` of Haar-random rotations."""
    axis, angle = angles_to_axis_angle(*rand_angles(*shape, dtype=dtype, device=device))
    return axis.detach().requires_grad_(requires_grad), angle.detach().requires_grad_(requires_grad)


# --------------------------------------------------------------------------- composition
def compose_angles(a1: torch.Tensor, b1: torch.Tensor, c1: torch.Tensor, a2: torch.Tensor,
                   b2: torch.Tensor, c2: torch.Tensor) -> Angles:
    """Angles of ``R(a1, b1, c1) @ R(a2, b2, c2)`` (the second rotation is applied first)."""
    a1, b1, c1, a2, b2, c2 = torch.broadcast_tensors(a1, b1, c1, a2, b2, c2)
    return matrix_to_angles(angles_to_matrix(a1, b1, c1) @ angles_to_matrix(a2, b2, c2))


def inverse_angles(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> Angles:
    """Angles ``(-c, -b, -a)`` of the inverse rotation."""
    return -c, -b, -a


def compose_quaternion(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``q1 * q2`` of ``(..., 4)`` quaternions (``q2`` applied first)."""
    q1, q2 = torch.broadcast_tensors(q1, q2)
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ], dim=-1)


def inverse_quaternion(q: torch.Tensor) -> torch.Tensor:
    """Conjugate ``(w, -x, -y, -z)``: the inverse of a unit quaternion ``(..., 4)``."""
    return torch.cat([q[..., :1], -q[..., 1:]], dim=-1)


def compose_axis_angle(axis1: torch.Tensor, angle1: torch.Tensor, axis2: torch.Tensor,
                       angle2: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Axis-angle of rotation 1 after rotation 2 (axes ``(..., 3)``, angles ``(...)``)."""
    q = compose_quaternion(axis_angle_to_quaternion(axis1, angle1),
                           axis_angle_to_quaternion(axis2, angle2))
    return quaternion_to_axis_angle(q)


# --------------------------------------------------------------------------- matrices
def _matrix(rows) -> torch.Tensor:
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def matrix_x(angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` by ``angle (...)`` about the x axis."""
    c, s, o, z = angle.cos(), angle.sin(), torch.ones_like(angle), torch.zeros_like(angle)
    return _matrix([[o, z, z], [z, c, -s], [z, s, c]])


def matrix_y(angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` by ``angle (...)`` about the y axis."""
    c, s, o, z = angle.cos(), angle.sin(), torch.ones_like(angle), torch.zeros_like(angle)
    return _matrix([[c, z, s], [z, o, z], [-s, z, c]])


def matrix_z(angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` by ``angle (...)`` about the z axis."""
    c, s, o, z = angle.cos(), angle.sin(), torch.ones_like(angle), torch.zeros_like(angle)
    return _matrix([[c, -s, z], [s, c, z], [z, z, o]])


def angles_to_matrix(alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``Y(alpha) @ X(beta) @ Y(gamma)`` of shape ``(..., 3, 3)``; the angles broadcast."""
    alpha, beta, gamma = torch.broadcast_tensors(alpha, beta, gamma)
    return matrix_y(alpha) @ matrix_x(beta) @ matrix_y(gamma)


def matrix_to_angles(R: torch.Tensor) -> Angles:
    """Euler angles of proper rotations ``R (..., 3, 3)``; inverse of ``angles_to_matrix``.

    Accurate for every rotation: where ``beta`` is 0 or pi the split between ``alpha`` and
    ``gamma`` is arbitrary, but ``angles_to_matrix`` of the result still reproduces ``R``.
    """
    check_rotation_matrix(R, allow_reflection=False)
    alpha, beta = xyz_to_angles(R[..., :, 1])  # R e_y = Y(alpha) X(beta) e_y
    r = angles_to_matrix(alpha, beta, torch.zeros_like(alpha)).transpose(-1, -2) @ R  # = Y(gamma)
    gamma = torch.atan2(r[..., 0, 2], r[..., 0, 0])
    return alpha, beta, gamma


# --------------------------------------------------------------------------- quaternions
def angles_to_quaternion(alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` of the Euler angles (broadcast)."""
    alpha, beta, gamma = torch.broadcast_tensors(alpha, beta, gamma)
    qa = axis_angle_to_quaternion(alpha.new_tensor([0.0, 1.0, 0.0]), alpha)
    qb = axis_angle_to_quaternion(beta.new_tensor([1.0, 0.0, 0.0]), beta)
    qc = axis_angle_to_quaternion(gamma.new_tensor([0.0, 1.0, 0.0]), gamma)
    return compose_quaternion(qa, compose_quaternion(qb, qc))


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` with ``w >= 0`` of proper rotations ``R (..., 3, 3)``."""
    return axis_angle_to_quaternion(*matrix_to_axis_angle(R))


def axis_angle_to_quaternion(xyz: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(..., 4)`` of rotations by ``angle (...)`` about ``xyz (..., 3)`` (normalised)."""
    xyz, angle = torch.broadcast_tensors(xyz, angle[..., None])
    xyz = torch.nn.functional.normalize(xyz, dim=-1)
    return torch.cat([torch.cos(angle[..., :1] / 2), xyz * torch.sin(angle / 2)], dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unit axis ``(..., 3)`` and angle ``(...)`` in ``[0, 2 pi]`` of quaternions ``(..., 4)``."""
    v = q[..., 1:]
    angle = 2 * torch.atan2(torch.linalg.vector_norm(v, dim=-1), q[..., 0])
    return torch.nn.functional.normalize(v, dim=-1), angle


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``(..., 4)`` (normalised first)."""
    w, x, y, z = q.unbind(-1)
    s = 2 / (q * q).sum(-1).clamp_min(torch.finfo(q.dtype).tiny)
    return _matrix([
        [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
        [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
        [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)],
    ])


def quaternion_to_angles(q: torch.Tensor) -> Angles:
    """Euler angles of quaternions ``(..., 4)``."""
    return matrix_to_angles(quaternion_to_matrix(q))


# --------------------------------------------------------------------------- axis-angle
def matrix_to_axis_angle(R: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unit axis ``(..., 3)`` and angle ``(...)`` in ``[0, pi]`` of proper rotations ``R``.

    The axis is the zero vector for the identity. Near ``angle = pi`` it is taken from the
    symmetric part of ``R`` (accurate there), elsewhere from the antisymmetric part.
    """
    check_rotation_matrix(R, allow_reflection=False)
    v = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                     R[..., 1, 0] - R[..., 0, 1]], dim=-1)  # 2 sin(t) n
    trace = R.diagonal(dim1=-2, dim2=-1).sum(-1)
    angle = torch.atan2(torch.linalg.vector_norm(v, dim=-1), trace - 1)
    # R + R^T + (1 - tr) 1 = 2 (1 - cos t) n n^T; take its largest column, oriented along v
    sym = R + R.transpose(-1, -2) + (1 - trace)[..., None, None] * torch.eye(3, dtype=R.dtype,
                                                                              device=R.device)
    j = sym.diagonal(dim1=-2, dim2=-1).argmax(-1)
    col = torch.gather(sym, -1, j[..., None, None].expand(*sym.shape[:-1], 1))[..., 0]
    col = torch.where((col * v).sum(-1, keepdim=True) < 0, -col, col)
    axis = torch.where((trace < 1)[..., None], col, v)  # trace < 1 <=> angle > pi / 2
    return torch.nn.functional.normalize(axis, dim=-1), angle


def angles_to_axis_angle(alpha: torch.Tensor, beta: torch.Tensor,
                         gamma: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Axis ``(..., 3)`` and angle ``(...)`` of the Euler angles."""
    return matrix_to_axis_angle(angles_to_matrix(alpha, beta, gamma))


def axis_angle_to_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` by ``angle (...)`` about ``axis (..., 3)`` (normalised).

    Rodrigues' formula ``1 + sin(t) K + 2 sin^2(t/2) K^2`` with ``K`` the cross-product matrix.
    """
    axis, angle = torch.broadcast_tensors(axis, angle[..., None])
    x, y, z = torch.nn.functional.normalize(axis, dim=-1).unbind(-1)
    angle = angle[..., 0]
    o = torch.zeros_like(x)
    k = _matrix([[o, -z, y], [z, o, -x], [-y, x, o]])
    s = torch.sin(angle)[..., None, None]
    h = (2 * torch.sin(angle / 2) ** 2)[..., None, None]
    return torch.eye(3, dtype=k.dtype, device=k.device) + s * k + h * (k @ k)


def axis_angle_to_angles(axis: torch.Tensor, angle: torch.Tensor) -> Angles:
    """Euler angles of rotations by ``angle (...)`` about ``axis (..., 3)``."""
    return matrix_to_angles(axis_angle_to_matrix(axis, angle))


# --------------------------------------------------------------------------- points of the sphere
def angles_to_xyz(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Unit vectors ``(..., 3)``: ``(sin b sin a, cos b, sin b cos a) = Y(a) X(b) e_y``."""
    alpha, beta = torch.broadcast_tensors(alpha, beta)
    return torch.stack([torch.sin(beta) * torch.sin(alpha), torch.cos(beta),
                        torch.sin(beta) * torch.cos(alpha)], dim=-1)


def xyz_to_angles(xyz: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, beta)`` of the direction of ``xyz (..., 3)``: ``alpha`` in (-pi, pi], ``beta`` in [0, pi].

    Inverse of ``angles_to_xyz``; uses ``atan2`` so ``beta`` is accurate near the poles. The
    zero vector gives ``(0, pi/2)`` as in e3nn.
    """
    xyz = torch.nn.functional.normalize(xyz, p=2.0, dim=-1)
    x, y, z = xyz.unbind(-1)
    beta = torch.atan2(torch.hypot(x, z), y)
    beta = torch.where((y == 0) & (x == 0) & (z == 0), torch.full_like(beta, math.pi / 2), beta)
    return torch.atan2(x, z), beta
