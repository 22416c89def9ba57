"""The two speech corpora of the audio experiment: LJSpeech-1.1 (paper) and an espeak-ng stand-in (smoke).

* LJSpeech-1.1 (keithito.com, 13,100 clips, 22.05 kHz): downloaded (``assets.fetch``) or taken from a local
  archive/folder, extracted under ``data/``, held out as in the paper and in LMNT's checkpoint: LJ001* and LJ002*
  are the evaluation clips, everything else trains.
* The stand-in: a single synthetic speaker, espeak-ng's ``en-us`` voice, reading a fixed list of sentences at
  22.05 kHz (espeak-ng's native rate), generated once into ``data/standin_speech/wavs`` with a manifest
  (sentences, espeak-ng version, voice, SHA-256 per file). It needs no download, only the Debian package.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from ..errors import InputError
from ..io import resolve_repo_path, write_json
from .speech import MelConfig, SpeechCorpus, prepare_corpus

LJSPEECH_ARCHIVE = "LJSpeech-1.1.tar.bz2"
LJSPEECH_HELD_OUT = ("LJ001", "LJ002")  # the paper's (and LMNT's) evaluation clips
STANDIN_VOICE = "en-us"
# Our own sentences (no text taken from elsewhere); the last STANDIN_HELD_OUT are the evaluation clips.
STANDIN_SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A spectral loss compares the frequency content of two signals.",
    "She sells sea shells by the sea shore every summer morning.",
    "Diffusion models turn noise into speech one small step at a time.",
    "The printing press changed how books were made in many countries.",
    "Please call Stella and ask her to bring these things with her.",
    "Seven cold bottles of water stood on the wooden kitchen table.",
    "The old clock on the wall struck twelve as the rain began.",
    "High frequencies carry the crisp edges of consonants like s and t.",
    "Every vocoder must learn the fine structure of the human voice.",
    "The committee met on Tuesday to discuss the annual budget.",
    "A gentle wind moved through the tall grass behind the house.",
    "Numbers such as three hundred and forty two are read aloud.",
    "The museum opens at nine and closes at half past five.",
    "Careful measurements tell us more than hopeful guesses ever could.",
    "He walked slowly along the narrow path toward the lighthouse.",
    "Bright orange leaves covered the ground after the autumn storm.",
    "The library keeps thousands of letters written by hand.",
    "Quiet rooms make it easier to hear small changes in sound.",
    "Train tickets can be bought at the station or on the internet.",
    "Thick fog rolled in from the harbor late in the evening.",
    "The recipe calls for two eggs, a cup of flour and some milk.",
    "Scientists repeat experiments with several different random seeds.",
    "The small boat drifted past the island before sunrise.",
)
STANDIN_HELD_OUT = 4


class MissingToolError(InputError, RuntimeError):
    """A command-line tool the kit needs is not installed; the message says how to install it."""


def require_tool(exe: str, package: str, other_installs: str = "") -> str:
    """The path of command-line tool ``exe``, or a MissingToolError naming the Debian package that provides it."""
    path = shutil.which(exe)
    if path is None:
        raise MissingToolError(f"{exe} is not installed; the offline speech stand-ins need it. Install it with "
                               f"`sudo apt-get install -y --no-install-recommends {package}` (Debian/Ubuntu; "
                               f"`make setup` does it when run as root){other_installs}, or run the paper profile "
                               "on LJSpeech instead")
    return path


def espeak_version() -> str:
    """espeak-ng's version line, or a clear error saying how to install it."""
    exe = require_tool("espeak-ng", "espeak-ng", ", `brew install espeak-ng` (macOS) or "
                       "`conda install -c conda-forge espeak-ng`")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[0]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate_standin(folder: str | os.PathLike = "data/standin_speech", voice: str = STANDIN_VOICE,
                     sentences: tuple[str, ...] = STANDIN_SENTENCES) -> Path:
    """Speak ``sentences`` with espeak-ng into ``folder/wavs`` (once) and write ``folder/manifest.json``.

    An existing set with the same sentences, voice and espeak-ng version whose files still match their SHA-256
    is reused as is; otherwise it is generated again.
    """
    import json

    folder = resolve_repo_path(folder)
    version = espeak_version()
    names = [f"ES{i // 100 + 1:03d}-{i % 100:04d}" for i in range(len(sentences))]
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file():
        m = json.loads(manifest_path.read_text())
        same = (m.get("sentences") == list(sentences) and m.get("voice") == voice
                and m.get("espeak_ng") == version)
        if same and all((folder / "wavs" / f"{n}.wav").is_file()
                        and _sha256(folder / "wavs" / f"{n}.wav") == m["sha256"][n] for n in names):
            return folder
    wavs = folder / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, text in zip(names, sentences, strict=True):
        path = wavs / f"{name}.wav"
        tmp = wavs / f".{name}.tmp.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(tmp), text], check=True, capture_output=True)
        os.replace(tmp, path)
        digests[name] = _sha256(path)
    write_json(manifest_path, {"espeak_ng": version, "voice": voice, "sample_rate": 22050,
                               "held_out": names[-STANDIN_HELD_OUT:], "sentences": list(sentences),
                               "names": names, "sha256": digests})
    return folder


def prepare_standin(cfg: MelConfig, folder: str | os.PathLike = "data/standin_speech",
                    progress: bool = False) -> SpeechCorpus:
    """The espeak-ng corpus prepared for ``cfg`` (generated and prepared on first use, then re-read)."""
    import json

    folder = generate_standin(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    out = folder / f"prepared-{cfg.n_mels}mel"
    source = {"corpus": "espeak-ng stand-in", "espeak_ng": manifest["espeak_ng"], "voice": manifest["voice"],
              "sha256": manifest["sha256"]}
    try:
        corpus = SpeechCorpus(out, cfg)
        if corpus.source.get("sha256") == manifest["sha256"]:
            return corpus
    except (FileNotFoundError, ValueError):
        pass
    held = set(manifest["held_out"])
    prepare_corpus([folder / "wavs" / f"{n}.wav" for n in manifest["names"]], out, cfg,
                   lambda name: "eval" if name in held else "train", source, progress)
    return SpeechCorpus(out, cfg)


def ljspeech_split(name: str) -> str:
    """The paper's split: LJ001*/LJ002* are held out for evaluation."""
    return "eval" if name.startswith(LJSPEECH_HELD_OUT) else "train"


def prepare_ljspeech(cfg: MelConfig | None = None, root: str | os.PathLike = "data",
                     local_path: str | os.PathLike | None = None, allow_download: bool = True,
                     progress: bool = True) -> SpeechCorpus:
    """LJSpeech-1.1 prepared for ``cfg`` under ``root``: from an extracted folder, a local archive, or a download."""
    cfg = cfg or MelConfig()
    root = resolve_repo_path(root)
    extracted = root / "LJSpeech-1.1"
    out = root / f"LJSpeech-1.1-prepared-{cfg.n_mels}mel"
    if (out / "index.json").is_file():
        return SpeechCorpus(out, cfg)
    if local_path is not None and Path(local_path).is_dir():
        extracted = Path(local_path)
    elif not (extracted / "wavs").is_dir():
        from ..assets import fetch

        archive = fetch(LJSPEECH_ARCHIVE, local_path=local_path, allow_download=allow_download, progress=progress)
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")  # "data": no absolute paths, links or devices from the archive
    wavs = sorted((extracted / "wavs").glob("*.wav"))
    if len(wavs) != 13100:
        raise FileNotFoundError(f"{extracted / 'wavs'} holds {len(wavs)} WAV files, LJSpeech-1.1 has 13,100; "
                                "delete the folder and extract the archive again")
    prepare_corpus(wavs, out, cfg, ljspeech_split, {"corpus": "LJSpeech-1.1"}, progress)
    return SpeechCorpus(out, cfg)
