"""Where the kit reads and writes: the repository root, and the one rule that turns ``out_dir`` into a folder.

A notebook declares ``out_dir: str = "figures/{profile}/NN_name"`` (a template) and calls
``out = resolve_out_dir(out_dir, profile)``. The runner and the HTML report call the same function to know
where each notebook writes, so the notebook, a ``-p out_dir=...`` override and the report never disagree.
Relative paths are resolved against the repository root, not the working directory: JupyterLab started in
``notebooks/`` still writes to ``<repo>/figures/<profile>/...``.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from ..experiments.core.config import PROFILES, check_profile
from ..io import DISK_FULL, REPO_ROOT, output_root, resolve_repo_path  # noqa: F401  (the kit's path API)
from ..text import OptionError

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PROFILE_DIR = "figures/{profile}"  # a profile's report.html and summary.json (a template like out_dir)


def resolve_out_dir(out_dir: str | os.PathLike, profile: str, root: str | os.PathLike | None = None) -> Path:
    """Fill ``{profile}`` into the ``out_dir`` template, validate the profile, resolve it like ``resolve_repo_path``.

    Refuses a template that names another profile's figures folder (``figures/smoke/...`` with ``profile="cpu"``),
    so cpu results never land among the smoke ones.
    """
    check_profile(profile)
    template = str(out_dir)
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        if fields - {"profile"}:
            raise KeyError(", ".join(sorted(fields - {"profile"})))
        text = template.format(profile=profile)
    except (KeyError, ValueError, IndexError) as err:
        raise ValueError(f"out_dir {template!r} is not a valid template: only {{profile}} may be filled in "
                         f"({type(err).__name__}: {err}); write a literal brace as {{{{ or }}}}") from None
    parts = Path(text).parts
    for parent, child in zip(parts, parts[1:]):
        if parent == "figures" and child in PROFILES and child != profile:
            raise ValueError(f"out_dir {text!r} is the {child!r} profile's folder but profile is {profile!r}; "
                             f"write the template as 'figures/{{profile}}/...'")
    return resolve_repo_path(text, root)


def escape_template(path: str | os.PathLike) -> str:
    """A literal path as an ``out_dir`` template that ``resolve_out_dir`` turns back into the same path."""
    return str(path).replace("{", "{{").replace("}", "}}")


def make_output_folder(folder: str | os.PathLike, option: str) -> Path:
    """Create a door's output folder before any work; one that cannot be made is an OptionError naming ``option``
    (a full disk stays an OSError, which the door reports as such)."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.errno in DISK_FULL:
            raise
        raise OptionError(f"{option} {folder}: cannot create the folder ({err.strerror}); pick another path") from None
    return folder
