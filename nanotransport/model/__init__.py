"""The model: the physiology on the engine, and ``simulate``.

``schema`` and ``scenario`` (the validated parameter set, user units, and the files it is read
from), ``properties`` (size-, temperature- and hindrance laws), ``pk`` (systemic
pharmacokinetics), ``tissue`` (geometry, regions, maps), ``fluid`` (interstitial pressure and
flow), ``heat`` (bioheat and focused-ultrasound heating), ``cells`` (drug action),
``transport`` (the local kinetics of the three phases), ``simulate`` (one pure JAX function,
scenario → ``Result``), ``summary`` and ``objective`` (what a result means: metrics and the
design objective J), ``imaging`` (the image of the carrier), ``capillary`` (a resolved
microvessel); vessel networks: ``vessel_network`` (the checked description), ``network_files``,
``network_vtp``, ``network_hdf5`` (reading and writing them), ``network_generator`` (a
synthetic tumor network), ``rheology`` (blood viscosity and red-cell partition) and
``haemodynamics`` (flow and haematocrit in a network).  Imports only from ``engine``
(docs/architecture.md).
"""
