"""The user's doors: the ``specreg`` CLI, the papermill notebook runner, the HTML report, the environment check
(asset downloads live below, in ``specreg_lib.assets``). Only this package knows notebook names and output folders.

Modules: ``paths`` (repository root, ``resolve_out_dir``), ``outputs`` (the ``metrics.json`` contract and
labelled figures), ``parameters`` (a notebook's parameters cell, ``-p`` type conversion), ``runner`` (one
notebook under papermill), ``reproduce`` (the main job), ``html_report``, ``environment``,
``spectrum`` (``specreg spectrum``) and ``cli``.
"""
