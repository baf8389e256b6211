"""Structured finite-volume grids and their metric factors.

Every geometry is a tensor product of 1D axes.  Each axis has a *metric* that says how a
coordinate interval turns into volume and how a face position turns into area:

=============  ==========================  =====================================
axis metric    volume factor of [a, b]     area factor of the face at x
=============  ==========================  =====================================
``linear``     b − a                       1
``cylinder``   π (b² − a²)                 2 π x
``sphere``     (4π/3)(b³ − a³)             4 π x²
=============  ==========================  =====================================

Cell volume is the product of the volume factors of all axes; the area of a face normal to
axis ``k`` is the area factor of axis ``k`` times the volume factors of the other axes.  With
this one rule the same kernels serve a 1D slab (m² of cross-section per face is 1), Krogh
cylinder (per metre of length), sphere, 2D Cartesian (per metre of depth), 2D axisymmetric
(r, z) and 3D Cartesian grids: there is no per-geometry copy of any kernel.

Grids are JAX pytrees whose face coordinates are static (hashable numpy arrays are not;
so they are stored as tuples of floats) and whose derived metric arrays are computed from
them on demand.  A grid is cheap to build and safe to close over in ``jit``.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np

GEOMETRIES = {
    "slab": ("linear",),
    "cylinder": ("cylinder",),
    "sphere": ("sphere",),
    "cartesian2d": ("linear", "linear"),
    "axisymmetric": ("cylinder", "linear"),
    "cartesian3d": ("linear", "linear", "linear"),
}
AXIS_NAMES = {
    "slab": ("x",),
    "cylinder": ("r",),
    "sphere": ("r",),
    "cartesian2d": ("x", "y"),
    "axisymmetric": ("r", "z"),
    "cartesian3d": ("x", "y", "z"),
}


def _volume_factor(metric: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    if metric == "linear":
        return hi - lo
    if metric == "cylinder":
        return np.pi * (hi**2 - lo**2)
    return 4.0 * np.pi / 3.0 * (hi**3 - lo**3)


def _area_factor(metric: str, x: np.ndarray) -> np.ndarray:
    if metric == "linear":
        return np.ones_like(x)
    if metric == "cylinder":
        return 2.0 * np.pi * x
    return 4.0 * np.pi * x**2


@dataclasses.dataclass(frozen=True, eq=True)
class Grid:
    """A structured cell-centred grid.

    Attributes:
        geometry: one of ``GEOMETRIES`` (``slab``, ``cylinder``, ``sphere``, ``cartesian2d``,
            ``axisymmetric``, ``cartesian3d``).
        faces: per axis, the increasing face coordinates in metres (n_cells + 1 of them).

    Derived (numpy, float64): ``shape``, ``centers`` (per axis), ``volume`` (m³, or m²/m per
    unit depth for reduced geometries), ``face_area(axis)`` and ``face_distance(axis)``.
    Grids are static: they are hashed by value, so a jitted function may take one as a
    static argument or close over it.
    """

    geometry: str
    faces: tuple[tuple[float, ...], ...]

    def __post_init__(self):
        if self.geometry not in GEOMETRIES:
            raise ValueError(
                f"grid.geometry = {self.geometry!r} is unknown; allowed: {sorted(GEOMETRIES)}"
            )
        metrics = GEOMETRIES[self.geometry]
        if len(self.faces) != len(metrics):
            raise ValueError(
                f"grid.faces has {len(self.faces)} axes but geometry {self.geometry!r} needs "
                f"{len(metrics)}"
            )
        for axis, (metric, f) in enumerate(zip(metrics, self.faces)):
            f = np.asarray(f, dtype=float)
            name = f"grid.faces[{axis}] ({AXIS_NAMES[self.geometry][axis]})"
            if f.ndim != 1 or f.size < 2:
                raise ValueError(f"{name} needs at least 2 face coordinates, got {f.size}")
            if not np.all(np.isfinite(f)):
                raise ValueError(f"{name} contains a non-finite value; allowed: finite metres")
            spacing = np.diff(f)
            if np.any(spacing <= 0):
                bad = float(spacing[np.argmin(spacing)])
                raise ValueError(
                    f"{name} has non-positive spacing {bad:g} m; faces must strictly increase "
                    "(allowed spacing > 0)"
                )
            if metric != "linear" and f[0] < 0:
                raise ValueError(
                    f"{name} starts at radius {f[0]:g} m; a radial axis needs radius >= 0"
                )

    # ----------------------------------------------------------------- structure
    @property
    def ndim(self) -> int:
        return len(self.faces)

    @property
    def metrics(self) -> tuple[str, ...]:
        return GEOMETRIES[self.geometry]

    @property
    def axis_names(self) -> tuple[str, ...]:
        return AXIS_NAMES[self.geometry]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(f) - 1 for f in self.faces)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    # ----------------------------------------------------------------- metrics
    def _faces(self, axis: int) -> np.ndarray:
        return np.asarray(self.faces[axis], dtype=float)

    @cached_property
    def centers(self) -> tuple[np.ndarray, ...]:
        """Cell-centre coordinates per axis (midpoints of the faces), m."""
        return tuple(0.5 * (self._faces(a)[1:] + self._faces(a)[:-1]) for a in range(self.ndim))

    def _axis_volume(self, axis: int) -> np.ndarray:
        f = self._faces(axis)
        return _volume_factor(self.metrics[axis], f[:-1], f[1:])

    @staticmethod
    def _outer(vectors: list[np.ndarray]) -> np.ndarray:
        out = vectors[0]
        for v in vectors[1:]:
            out = np.multiply.outer(out, v)
        return out

    @cached_property
    def volume(self) -> np.ndarray:
        """Cell volumes, shape ``self.shape`` (m³ per the geometry's reduced units)."""
        return self._outer([self._axis_volume(a) for a in range(self.ndim)])

    def face_area(self, axis: int) -> np.ndarray:
        """Areas of the faces normal to ``axis``; that axis has n + 1 entries."""
        vecs = [self._axis_volume(a) for a in range(self.ndim)]
        vecs[axis] = _area_factor(self.metrics[axis], self._faces(axis))
        return self._outer(vecs)

    def face_distance(self, axis: int) -> np.ndarray:
        """Distance between the centres on either side of each face normal to ``axis`` (1D,
        n + 1 entries); on a boundary face it is the centre-to-face half distance."""
        f, c = self._faces(axis), self.centers[axis]
        return np.concatenate([[c[0] - f[0]], np.diff(c), [f[-1] - c[-1]]])

    def face_split(self, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """For each interior face normal to ``axis``: distances from the face to the centre on
        its low side and on its high side (each n − 1 entries).  Used for harmonic means."""
        f, c = self._faces(axis), self.centers[axis]
        return f[1:-1] - c[:-1], c[1:] - f[1:-1]

    def cell_widths(self, axis: int) -> np.ndarray:
        return np.diff(self._faces(axis))

    def mesh(self) -> tuple[np.ndarray, ...]:
        """Cell-centre coordinates broadcast to ``self.shape`` (``indexing='ij'``)."""
        return tuple(np.meshgrid(*self.centers, indexing="ij"))

    def integrate(self, field):
        """Volume integral Σ V_i c_i of a field whose trailing axes are ``self.shape``."""
        import jax.numpy as jnp

        axes = tuple(range(-self.ndim, 0))
        field = jnp.asarray(field)
        # volumes in the field's float dtype: a float32 run stays float32
        dtype = field.dtype if jnp.issubdtype(field.dtype, jnp.floating) else None
        return jnp.sum(field * jnp.asarray(self.volume, dtype), axis=axes)

    def __repr__(self) -> str:
        ext = ", ".join(
            f"{n}∈[{f[0]:.3g}, {f[-1]:.3g}] m ×{len(f) - 1}"
            for n, f in zip(self.axis_names, self.faces)
        )
        return f"Grid({self.geometry}: {ext})"

    def __hash__(self):
        return hash((self.geometry, self.faces))


# --------------------------------------------------------------------- constructors
#: the cell-density laws of ``axis_faces``
GRADINGS = ("gaussian", "geometric")
#: neighbouring cells differ by at most this fraction near x₀ in a geometric grading
GEOMETRIC_GROWTH = 0.15


def axis_faces(length_m: float, n: int, start_m: float = 0.0, refine_at_m: float | None = None,
               refine_ratio: float = 1.0, refine_width_m: float | None = None,
               interfaces_m: tuple[float, ...] = (), grading: str = "gaussian",
               growth: float = GEOMETRIC_GROWTH) -> tuple[float, ...]:
    """Face coordinates of one axis: uniform, or graded to be finer near ``refine_at_m``.

    Graded spacing places faces at equal increments of ∫ρ dx for a cell-density function ρ, so
    the cells near x₀ = ``refine_at_m`` are about ``ratio`` times smaller than far away:

    * ``grading="gaussian"``: ρ(x) = 1 + (ratio − 1)·exp(−((x − x₀)/w)²), w = ``refine_width_m``
      (default a tenth of the length): one band of fine cells of width ~w.
    * ``grading="geometric"``: ρ(x) = 1 + (ratio − 1)·δ/(|x − x₀| + δ), so the cell size grows
      in proportion to the distance from x₀ (a geometric series, every length scale from
      δ to the far spacing h_far resolved by about the same number of cells) until it reaches
      h_far.  δ = ``refine_width_m``, or by default the δ for which neighbouring cells near x₀
      differ by the factor 1 + ``growth``: h_far/((ratio − 1) δ) = growth.  For boundary
      layers of unknown, parameter-dependent thickness at a material interface (the tumor
      margin: IFP and filtration fall over ~0.1 mm, carriers pile up in a layer of
      D/(R_f u) ~ 10 µm).  x₀ is a face and each side is graded on its own.

    The face nearest to each of ``interfaces_m`` is then moved onto it, so material interfaces
    lie on faces (a coefficient jump inside a cell would make the scheme first order).
    """
    if grading not in GRADINGS:
        raise ValueError(f"grading = {grading!r}; allowed: {', '.join(GRADINGS)}")
    if grading == "geometric" and refine_at_m is not None and refine_ratio != 1.0:
        faces = np.asarray(_geometric(length_m, n, start_m, refine_at_m, refine_ratio,
                                      refine_width_m, growth))
    else:
        faces = np.asarray(_graded(length_m, n, start_m, refine_at_m, refine_ratio,
                                   refine_width_m))
    for x in interfaces_m:
        if start_m < x < start_m + length_m:
            k = int(np.argmin(np.abs(faces[1:-1] - x))) + 1
            faces[k] = x
    if np.any(np.diff(faces) <= 0):
        raise ValueError(f"interfaces {interfaces_m} are too close together for {n} cells; "
                         "allowed: use more cells")
    return tuple(float(v) for v in faces)


def _check_axis(length_m, n) -> None:
    """ValueError naming the value unless n >= 1 cells and a finite length > 0."""
    if n < 1:
        raise ValueError(f"number of cells n = {n}; allowed: n >= 1")
    if not (length_m > 0 and np.isfinite(length_m)):
        raise ValueError(f"axis length = {length_m!r} m; allowed: a finite length > 0")


def _graded(length_m, n, start_m, refine_at_m, refine_ratio, refine_width_m):
    _check_axis(length_m, n)
    if refine_at_m is None or refine_ratio == 1.0:
        return start_m + np.linspace(0.0, length_m, n + 1)
    if refine_ratio < 1.0:
        raise ValueError(f"refine_ratio = {refine_ratio}; allowed: >= 1")
    w = refine_width_m if refine_width_m is not None else 0.1 * length_m
    x = np.linspace(start_m, start_m + length_m, 20001)
    rho = 1.0 + (refine_ratio - 1.0) * np.exp(-(((x - refine_at_m) / w) ** 2))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * np.diff(x))])
    faces = np.interp(np.linspace(0.0, cum[-1], n + 1), cum, x)
    faces[0], faces[-1] = start_m, start_m + length_m
    return faces


def _geometric(length_m, n, start_m, x0, ratio, width_m, growth):
    """Faces of ``grading="geometric"`` (see ``axis_faces``): x₀ a face, each side graded."""
    _check_axis(length_m, n)
    if ratio < 1.0:
        raise ValueError(f"refine_ratio = {ratio}; allowed: >= 1")
    if not (growth > 0 and np.isfinite(growth)):
        raise ValueError(f"growth = {growth!r}; allowed: a finite number > 0")
    end = start_m + length_m
    x = np.linspace(start_m, end, 40001)
    x = np.unique(np.concatenate([x, [x0], x0 + np.geomspace(1e-9 * length_m, length_m, 4000),
                                  x0 - np.geomspace(1e-9 * length_m, length_m, 4000)]))
    x = x[(x >= start_m) & (x <= end)]
    if width_m is not None:
        delta = float(width_m)
    else:  # fixed point of δ = h_far / (growth (ratio − 1)), h_far = ∫ρ / n
        delta = length_m / n / (growth * (ratio - 1.0))
        for _ in range(100):
            rho = 1.0 + (ratio - 1.0) * delta / (np.abs(x - x0) + delta)
            new = np.trapezoid(rho, x) / n / (growth * (ratio - 1.0))
            if abs(new - delta) <= 1e-12 * delta:
                break
            delta = new
    rho = 1.0 + (ratio - 1.0) * delta / (np.abs(x - x0) + delta)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * np.diff(x))])
    inner = start_m < x0 < end
    if not inner:  # x₀ at (or beyond) an end: one graded side
        faces = np.interp(np.linspace(0.0, cum[-1], n + 1), cum, x)
    else:
        k = int(np.searchsorted(x, x0))  # x[k] == x₀ (added to the sample points)
        n_lo = min(max(1, int(round(n * cum[k] / cum[-1]))), n - 1)
        lo = np.interp(np.linspace(0.0, cum[k], n_lo + 1), cum[:k + 1], x[:k + 1])
        hi = np.interp(np.linspace(cum[k], cum[-1], n - n_lo + 1), cum[k:], x[k:])
        faces = np.concatenate([lo[:-1], [x0], hi[1:]])
    faces[0], faces[-1] = start_m, end
    return faces


def slab(length_m: float, n: int, **graded) -> Grid:
    """1D slab [0, L] (area 1 m² per face)."""
    return Grid("slab", (axis_faces(length_m, n, **graded),))


def cylinder(radius_m: float, n: int, inner_radius_m: float = 0.0, **graded) -> Grid:
    """1D cylinder r ∈ [r_in, R], per metre of length (Krogh cylinder with r_in = vessel radius)."""
    return Grid("cylinder", (axis_faces(radius_m - inner_radius_m, n, start_m=inner_radius_m,
                                        **graded),))


def sphere(radius_m: float, n: int, **graded) -> Grid:
    """1D sphere r ∈ [0, R] (the default tumor geometry)."""
    return Grid("sphere", (axis_faces(radius_m, n, **graded),))


def _origin(origin_m, n_axes: int, name: str) -> tuple[float, ...]:
    """``origin_m`` as n_axes finite floats, or a ValueError naming ``name`` and the value."""
    origin = tuple(float(x) for x in np.atleast_1d(np.asarray(origin_m, dtype=float)))
    if len(origin) != n_axes or not all(np.isfinite(origin)):
        raise ValueError(f"{name} = {origin_m!r}; allowed: {n_axes} finite coordinates (m)")
    return origin


def cartesian2d(lengths_m: tuple[float, float], shape: tuple[int, int],
                origin_m: tuple[float, float] = (0.0, 0.0)) -> Grid:
    """2D Cartesian box [x₀, x₀ + Lx] × [y₀, y₀ + Ly], per metre of depth, with
    (x₀, y₀) = ``origin_m`` (m): e.g. ``origin_m=(-Lx/2, -Ly/2)`` centres the box on 0."""
    origin = _origin(origin_m, 2, "origin_m")
    return Grid("cartesian2d", tuple(axis_faces(l, n, start_m=o)
                                     for l, n, o in zip(lengths_m, shape, origin)))


def axisymmetric(radius_m: float, length_m: float, shape: tuple[int, int],
                 inner_radius_m: float = 0.0, z_origin_m: float = 0.0) -> Grid:
    """2D axisymmetric (r, z) grid: r ∈ [r_in, R], z ∈ [z₀, z₀ + L] with z₀ = ``z_origin_m``
    (m; the radial origin is the axis, r_in = ``inner_radius_m``)."""
    (z0,) = _origin(z_origin_m, 1, "z_origin_m")
    return Grid("axisymmetric", (axis_faces(radius_m - inner_radius_m, shape[0],
                                            start_m=inner_radius_m),
                                 axis_faces(length_m, shape[1], start_m=z0)))


def cartesian3d(lengths_m: tuple[float, float, float], shape: tuple[int, int, int],
                origin_m: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Grid:
    """3D Cartesian box [x₀, x₀ + Lx] × [y₀, y₀ + Ly] × [z₀, z₀ + Lz] with (x₀, y₀, z₀) =
    ``origin_m`` (m): ``cartesian3d((L, L, L), (n, n, n), origin_m=(-L/2,) * 3)`` is
    [−L/2, L/2]³."""
    origin = _origin(origin_m, 3, "origin_m")
    return Grid("cartesian3d", tuple(axis_faces(l, n, start_m=o)
                                     for l, n, o in zip(lengths_m, shape, origin)))
