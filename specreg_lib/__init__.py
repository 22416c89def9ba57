"""specreg: spectral regularization for diffusion models (arXiv 2603.02447).

Subpackages: ``spectral`` (the losses, Eqs. 14-16, and spectral diagnostics), ``diffusion``
(DDPM/DDIM/EDM formulations and samplers with the spectral hook), ``models``, ``training``,
``toy`` (the checkerboard experiment), and the papermill runner ``reproduce``.
"""

__version__ = "0.1.0"
