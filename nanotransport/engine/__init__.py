"""The engine: finite-volume numerics with no physiology in them.

``grid`` (cell-centred grids: Cartesian, axisymmetric, spherical), ``fv`` (fluxes and the
boundary conditions as pytrees, tridiagonal axis coefficients), ``linalg`` (line and per-cell
solvers, steady problems), ``fdm`` and ``multigrid`` (preconditioners), ``solver`` (time
integration: SDIRK2 transport and local steps, Strang splitting, checkpointed saving),
``regions`` (sources and sinks on regions and points, probes, region totals and averages),
``graph`` (Kirchhoff's balance on
networks of conductances, differentiable), ``units`` (SI constants).  Imports nothing from ``model``, ``studies`` or the edge
(docs/architecture.md).
"""
