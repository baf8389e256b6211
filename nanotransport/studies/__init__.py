"""The studies: what is done with the model, each through one adapter (``study``).

``design`` (gradients, sensitivities, optimization of J), ``scan_spec``, ``scan_exec`` and
``scan_result`` (batched, sharded scans and their Dataset), ``cohort`` (virtual patients and
imaging-based selection), ``calibrate`` (fitting a patient to an observed curve), ``validate``
and ``validate_heating`` (the model against published numbers), ``verify`` (the engine against
closed forms).  Imports only from ``model`` and ``engine``; files and folders are the edge's
(docs/architecture.md).
"""
