"""specreg: spectral regularization for diffusion models (arXiv 2603.02447).

Layers, each importing only the ones above it in this list:
``spectral`` (the losses, Eqs. 14-16), ``diffusion`` (DDPM/DDIM/EDM formulations, samplers, the spectral hook
and its ``Regularizer`` value), ``models`` (networks), ``data`` (data sources), ``metrics`` (spectral
diagnostics, checkerboard structure), ``training`` (the distributed-ready loop), ``experiments`` (typed configs,
run folders, sweeps, the toy experiments), and ``kit`` (the user's doors: ``specreg`` CLI, notebook runner,
HTML report, environment check, asset downloads).
"""

__version__ = "0.1.0"
