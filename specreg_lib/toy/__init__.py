"""The checkerboard toy of the paper's section 5.1: data family, metrics, and the experiment driver."""

from .checkerboard import CheckerboardFamily, binariness, is_valid, match_error, peak_energy, structure_metrics

__all__ = ["CheckerboardFamily", "binariness", "is_valid", "match_error", "peak_energy", "structure_metrics"]
