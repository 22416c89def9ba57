"""A richer offline speech stand-in: 500 sentences of our own text, nine synthetic voices, held-out speakers.

Why: one espeak-ng voice reading 24 sentences (``prepare_standin``) shows the pipeline runs, but a vocoder that
memorises one formant synthesiser tells nothing about a loss. Here two Debian engines speak: espeak-ng (formant
synthesis, 22.05 kHz, male voices and its female ``+fN`` variants) and flite (CMU statistical-parametric and
diphone voices trained on real speakers, 16 kHz, resampled to 22.05 kHz), each clip at its own speed and pitch.

Sentences come from a small seeded grammar (:func:`make_sentences`), no text taken from anywhere. The split holds
out both SPEAKERS and SENTENCES: every ``held_out_every``-th sentence is never spoken in training, and the held-out
voices speak only those sentences; each held-out sentence is also spoken by one training voice, so the eval split
mixes "new voice, new text" with "known voice, new text" (alternating in name order, so the first ``n_clips`` of
``SpeechCorpus.eval_set`` hold both). The manifest records, per clip, voice, engine, engine version, speed, pitch,
sentence id, text, split, sample count and SHA-256; a rebuild with the same engines is byte-identical.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import resolve_repo_path, write_json
from .speech import MelConfig, SpeechCorpus, prepare_corpus
from .speech_corpora import _sha256, espeak_version, require_tool

MULTIVOICE_RATE = 22050  # LMNT's rate; espeak-ng's native rate, flite's 16 kHz is resampled to it
PEAK = 0.9  # every clip is peak-normalised to -0.9 dBFS, so voices differ in timbre, not in level
ENGINES = ("espeak-ng", "flite")


class UnknownVoiceError(InputError, ValueError):
    """A voice (or engine) the installed text-to-speech engine does not have; the message lists what it has."""


class SpeechEngineError(InputError, RuntimeError):
    """The engine failed, or returned no audible audio, for one voice and sentence."""


class CorpusChecksumError(InputError, ValueError):
    """A built corpus folder whose files no longer match its manifest (edited, truncated or deleted)."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an engine's voice and the speeds/pitches its clips draw from (engine-native units)."""

    name: str  # our id, part of every clip name
    engine: str  # "espeak-ng" | "flite"
    voice: str  # the engine's voice: espeak-ng "en-gb+f3" (language + variant), flite "slt"
    gender: str  # "F" | "M", as the engine labels the voice
    speeds: tuple[float, ...]  # espeak-ng: -s words per minute (175 default); flite: duration_stretch (>1 slower)
    pitches: tuple[float | None, ...]  # espeak-ng: -p 0..99 (50 default); flite: int_f0_target_mean Hz; None: default
    held_out: bool = False  # True: never heard in training


ESPEAK_SPEEDS = (150.0, 175.0, 200.0)
ESPEAK_PITCHES = (35.0, 50.0, 65.0)
FLITE_STRETCH = (1.15, 1.0, 0.87)
# flite F0 means around each voice's own (measured: slt ~170 Hz, awb ~128 Hz, kal16 ~95 Hz); rms ignores the
# setting (measured: identical output), so it varies in speed only.
MULTIVOICE_VOICES = (
    Voice("es-us-m", "espeak-ng", "en-us", "M", ESPEAK_SPEEDS, ESPEAK_PITCHES),
    Voice("es-gb-f", "espeak-ng", "en-gb+f3", "F", ESPEAK_SPEEDS, ESPEAK_PITCHES),
    Voice("es-sc-m", "espeak-ng", "en-gb-scotland", "M", ESPEAK_SPEEDS, ESPEAK_PITCHES),
    Voice("es-cb-f", "espeak-ng", "en-029+f2", "F", ESPEAK_SPEEDS, ESPEAK_PITCHES),
    Voice("fl-slt-f", "flite", "slt", "F", FLITE_STRETCH, (150.0, 170.0, 190.0)),
    Voice("fl-kal-m", "flite", "kal16", "M", FLITE_STRETCH, (85.0, 100.0, 115.0)),
    Voice("fl-rms-m", "flite", "rms", "M", FLITE_STRETCH, (None,)),
    Voice("fl-awb-m", "flite", "awb", "M", FLITE_STRETCH, (112.0, 128.0, 145.0), held_out=True),
    Voice("es-ny-f", "espeak-ng", "en-us-nyc+f4", "F", ESPEAK_SPEEDS, ESPEAK_PITCHES, held_out=True),
)

# ------------------------------------------------------------------ our own sentences

_NAMES = ("Anna", "Boris", "Clara", "Daniel", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Liam",
          "Maya", "Nikolai", "Olivia", "Pablo", "Rosa", "Samuel", "Tara", "Victor", "Wendy", "Yusuf", "Zoe")
_PEOPLE = ("the old farmer", "a young teacher", "the night nurse", "our neighbour", "the bus driver",
           "a tired student", "the station manager", "my grandmother", "the new baker", "a quiet engineer",
           "the ship captain", "her little brother")
_VERBS = (("painted", "paint"), ("repaired", "repair"), ("counted", "count"), ("carried", "carry"),
          ("delivered", "deliver"), ("measured", "measure"), ("cleaned", "clean"), ("ordered", "order"),
          ("found", "find"), ("sold", "sell"), ("borrowed", "borrow"), ("packed", "pack"), ("wrapped", "wrap"),
          ("checked", "check"))
_THINGS = ("boxes", "lanterns", "bicycles", "letters", "tomatoes", "blankets", "wooden chairs", "glass bottles",
           "maps", "tickets", "silver spoons", "umbrellas", "notebooks", "bricks", "candles", "kettles")
_ADJECTIVES = ("green", "heavy", "broken", "bright", "tiny", "rusty", "yellow", "shiny", "dusty", "square",
               "striped", "enormous")
_PLACES = ("the harbour", "the market", "the old mill", "the school hall", "the train station", "the library",
           "the bakery", "the village square", "the hospital", "the garden shed", "the museum", "the post office")
_TIMES = ("on Monday", "on Tuesday", "on Thursday", "on Saturday morning", "before dawn", "after lunch",
          "in the evening", "at midnight", "last winter", "in early spring", "yesterday", "every Sunday")
_CITIES = ("Boston", "Lisbon", "Oslo", "Denver", "Cairo", "Dublin", "Perth", "Madrid", "Quebec", "Nairobi",
           "Seattle", "Glasgow", "Vienna", "Santiago")
_MANNERS = ("slowly", "carefully", "quickly", "quietly", "twice", "without a word", "with great care",
            "for the first time")
_CLAUSES = ("because the road was closed", "while it was raining", "although nobody had asked",
            "so that everyone could see them", "before the shop closed", "when the bell rang",
            "as the sun went down", "after the storm had passed")
_TEMPLATES = (
    "{Who} {did} {n} {adj} {things} at {place} {when}.",
    "{Who} {did} the {adj} {things} {how} {because}.",
    "Did {who} really {do} {n} {things} in {city} {when}?",
    "In {year}, {who} moved from {city} to {city2} with {n} {things}.",
    "The {adj} {things} at {place} cost {n} dollars and {m} cents.",
    "{Who} said that {who2} {did} {n} {things} {when}.",
    "Please ask {who} to {do} the {adj} {things} before {hour} o'clock.",
    "How many {things} did {who} {do} at {place} {when}?",
    "{When}, {n} {adj} {things} were {did} near {place}.",
    "{Who} {did} {n} {things}, {m} {things2} and a few {adj} {things3}.",
    "What a lot of {things} {who} {did} {when}!",
    "{Because}, {who} {did} the {things} {how} and went home to {city}.",
)


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def make_sentences(n: int, seed: int = 22) -> list[str]:
    """``n`` distinct sentences from the seeded grammar above; the first k of n are the k of k (prefix-stable)."""
    if not 1 <= n <= 5000:
        raise InputError(f"n_sentences must be in 1..5000, got {n}")
    rng, out, seen = random.Random(seed), [], set()
    while len(out) < n:
        who, who2 = rng.choice(_NAMES + _PEOPLE), rng.choice(_NAMES + _PEOPLE)
        did, do = rng.choice(_VERBS)
        things, things2, things3 = rng.sample(_THINGS, 3)
        city, city2 = rng.sample(_CITIES, 2)
        when, because = rng.choice(_TIMES), rng.choice(_CLAUSES)
        words = {"who": who, "Who": _cap(who), "who2": who2, "did": did, "do": do, "things": things,
                 "things2": things2, "things3": things3, "adj": rng.choice(_ADJECTIVES), "place": rng.choice(_PLACES),
                 "when": when, "When": _cap(when), "city": city, "city2": city2, "how": rng.choice(_MANNERS),
                 "because": because, "Because": _cap(because), "n": rng.randint(2, 99), "m": rng.randint(2, 99),
                 "year": rng.randint(1890, 2025), "hour": rng.randint(1, 12)}
        text = rng.choice(_TEMPLATES).format(**words)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


# ------------------------------------------------------------------ the engines


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    except subprocess.CalledProcessError as err:
        raise SpeechEngineError(f"{what}: `{' '.join(cmd[:3])} ...` failed with exit code {err.returncode}: "
                                f"{(err.stderr or err.stdout).strip()[:300]}") from err
    except subprocess.TimeoutExpired as err:
        raise SpeechEngineError(f"{what}: the engine did not finish within 120 s") from err


def engine_version(engine: str) -> str:
    """The installed engine's version (without paths, so manifests compare across machines); MissingToolError if
    it is not installed."""
    if engine == "espeak-ng":
        return espeak_version().split("Data at")[0].strip()  # "eSpeak NG text-to-speech: 1.51"
    if engine == "flite":
        done = subprocess.run([require_tool("flite", "flite"), "--version"], capture_output=True, text=True)
        lines = [ln.split("(")[0].strip() for ln in (done.stdout + done.stderr).splitlines() if "version" in ln]
        if not lines:  # flite exits 1 after printing its version, so the text decides, not the exit code
            raise SpeechEngineError(f"flite --version printed no version: {(done.stdout + done.stderr)[:200]!r}")
        return lines[0]  # "version: flite-2.2-current Sep 2018"
    raise UnknownVoiceError(f"unknown speech engine {engine!r}; choose one of {', '.join(ENGINES)}")


def engine_voices(engine: str) -> set[str]:
    """The voices an engine has: flite's ``-lv``; espeak-ng's languages, voice names and ``+variant`` names."""
    if engine == "flite":
        out = _run([require_tool("flite", "flite"), "-lv"], "flite -lv").stdout
        return set(out.split(":", 1)[-1].split())
    if engine == "espeak-ng":
        espeak_version()  # MissingToolError first
        names = set()
        for listing, variant in (("--voices", False), ("--voices=variant", True)):
            for line in _run(["espeak-ng", listing], f"espeak-ng {listing}").stdout.splitlines()[1:]:
                cols = line.split()
                if len(cols) >= 5:
                    names.add("+" + cols[4].removeprefix("!v/") if variant else cols[1])
                    if not variant:
                        names.add(cols[3])
        return names
    raise UnknownVoiceError(f"unknown speech engine {engine!r}; choose one of {', '.join(ENGINES)}")


def check_voices(voices: tuple[Voice, ...]) -> dict[str, str]:
    """Refuse voices the installed engines lack (flite falls back silently to its default voice); return the
    engine versions used."""
    versions, available = {}, {}
    for v in voices:
        if v.engine not in ENGINES:
            raise UnknownVoiceError(f"voice {v.name}: unknown speech engine {v.engine!r}; choose one of "
                                    f"{', '.join(ENGINES)}")
        if v.engine not in versions:
            versions[v.engine], available[v.engine] = engine_version(v.engine), engine_voices(v.engine)
        base, _, variant = v.voice.partition("+")
        missing = [p for p in (base, "+" + variant if variant else "") if p and p not in available[v.engine]]
        if missing:
            have = sorted(n for n in available[v.engine] if not n.startswith("+"))
            raise UnknownVoiceError(f"voice {v.name}: {v.engine} has no voice {' '.join(missing)!r}; it has "
                                    f"{', '.join(have[:40])} (see `{v.engine} --voices` / `flite -lv`)")
        if not v.speeds or not v.pitches:
            raise UnknownVoiceError(f"voice {v.name}: speeds and pitches need at least one value each")
    return versions


def speak(voice: Voice, text: str, speed: float, pitch: float | None) -> np.ndarray:
    """One sentence from the engine as int16 (T,) at 22.05 kHz, peak-normalised to ``PEAK`` (float64 throughout,
    so the rounding to 16 bits does not depend on the CPU's vector units)."""
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    what = f"voice {voice.name} ({voice.engine} {voice.voice}) speaking {text!r}"
    with tempfile.TemporaryDirectory(prefix="specreg-tts-") as tmp:
        wav = str(Path(tmp) / "out.wav")
        if voice.engine == "espeak-ng":
            cmd = ["espeak-ng", "-v", voice.voice, "-s", f"{speed:g}", "-w", wav]
            cmd += [] if pitch is None else ["-p", f"{pitch:g}"]
        elif voice.engine == "flite":
            cmd = ["flite", "-voice", voice.voice, "--setf", f"duration_stretch={speed:g}", "-o", wav]
            cmd += [] if pitch is None else ["--setf", f"int_f0_target_mean={pitch:g}"]
        else:
            raise UnknownVoiceError(f"{what}: unknown speech engine {voice.engine!r}; choose one of "
                                    f"{', '.join(ENGINES)}")
        _run(cmd + ["-t" if voice.engine == "flite" else "--", text], what)
        try:
            x, sr = sf.read(wav, dtype="float64", always_2d=True)
        except Exception as err:  # soundfile raises several types for broken files
            raise SpeechEngineError(f"{what}: the engine wrote no readable WAV ({err})") from err
    x = x.mean(axis=1)
    if sr != MULTIVOICE_RATE and x.size:
        x = AF.resample(torch.from_numpy(x), sr, MULTIVOICE_RATE).numpy()  # (T_sr,) -> (T_22050,), float64
    peak = float(np.abs(x).max()) if x.size else 0.0
    if x.size < MULTIVOICE_RATE // 4 or peak < 0.02:  # flite speaks "" as 0.19 s of hiss peaking at 0.0025
        raise SpeechEngineError(f"{what}: the engine returned no audible speech ({x.size} samples, peak "
                                f"{peak:.2g}); check the text has words and the voice speaks this language")
    return np.round(x * (PEAK * 32767.0 / peak)).astype(np.int16)


# ------------------------------------------------------------------ the corpus


def plan_clips(sentences: list[str], voices: tuple[Voice, ...], held_out_every: int = 10,
               voices_per_sentence: int = 2, seed: int = 22) -> list[dict]:
    """Who speaks what, at which speed and pitch, in which split (no audio; the split rules in the module doc)."""
    train = [v for v in voices if not v.held_out]
    held = [v for v in voices if v.held_out]
    if not train:
        raise InputError("the multivoice corpus needs at least one voice with held_out=False to train on")
    if len({v.name for v in voices}) != len(voices):
        raise InputError(f"voice names must be unique, got {[v.name for v in voices]}")
    if held_out_every < 2 or len(sentences) < held_out_every:
        raise InputError(f"held_out_every={held_out_every} must be >= 2 and <= the number of sentences "
                         f"({len(sentences)}), so that both splits have sentences")
    k = max(1, min(voices_per_sentence, len(train)))
    clips, n_train, n_eval = [], 0, 0
    for sid, text in enumerate(sentences):
        if sid % held_out_every == held_out_every - 1:  # a held-out sentence
            speakers = ([held[n_eval % len(held)]] if held else []) + [train[n_eval % len(train)]]
            n_eval += 1
        else:
            speakers = [train[(n_train * k + j) % len(train)] for j in range(k)]
            n_train += 1
        for v in speakers:
            rng = random.Random(f"{seed}/{sid}/{v.name}")  # str seeds hash with SHA-512: stable everywhere
            eval_clip = v.held_out or sid % held_out_every == held_out_every - 1
            clips.append({"name": f"mv{sid:04d}-{v.name}", "voice": v.name, "engine": v.engine,
                          "engine_voice": v.voice, "gender": v.gender, "speed": rng.choice(v.speeds),
                          "pitch": rng.choice(v.pitches), "sentence_id": sid, "text": text,
                          "split": "eval" if eval_clip else "train",
                          "held_out": ("speaker+sentence" if v.held_out else "sentence") if eval_clip else ""})
    return sorted(clips, key=lambda c: c["name"])  # prepare_corpus orders clips by file name


def _check_built(folder: Path, manifest: dict) -> None:
    bad = [c["name"] for c in manifest["clips"]
           if not (folder / "wavs" / f"{c['name']}.wav").is_file()
           or _sha256(folder / "wavs" / f"{c['name']}.wav") != c["sha256"]]
    if bad:
        raise CorpusChecksumError(f"{folder}: {len(bad)} WAV files are missing or differ from the SHA-256 in "
                                  f"manifest.json (first: {bad[0]}.wav); delete the folder (rm -r {folder}) and "
                                  "run again to rebuild it")


def generate_multivoice(folder: str | os.PathLike = "data/multivoice_speech",
                        voices: tuple[Voice, ...] = MULTIVOICE_VOICES, n_sentences: int = 500,
                        held_out_every: int = 10, voices_per_sentence: int = 2, seed: int = 22, workers: int = 2,
                        progress: bool = False) -> Path:
    """Speak the corpus into ``folder/wavs`` and write ``folder/manifest.json`` (once; then reused as is).

    A folder built with other settings or engine versions is rebuilt; one whose WAVs no longer match their
    SHA-256 is refused (CorpusChecksumError), since reusing it silently would train on unknown audio.
    """
    from tqdm.auto import tqdm

    folder = resolve_repo_path(folder)
    versions = check_voices(voices)
    spec = {"seed": seed, "n_sentences": n_sentences, "held_out_every": held_out_every,
            "voices_per_sentence": voices_per_sentence, "sample_rate": MULTIVOICE_RATE, "peak": PEAK,
            "engines": versions, "voices": [asdict(v) for v in voices]}
    spec = json.loads(json.dumps(spec))  # tuples -> lists, as read back from the file
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("corpus") != "multivoice":
            raise InputError(f"{folder} holds another corpus (its manifest.json is not a multivoice one); "
                             "choose another folder")
        if manifest.get("spec") == spec:
            _check_built(folder, manifest)
            return folder
    elif folder.exists() and any(folder.iterdir()):
        raise InputError(f"{folder} exists and is not a multivoice corpus (no manifest.json); delete it or "
                         "choose another folder")
    clips = plan_clips(make_sentences(n_sentences, seed), voices, held_out_every, voices_per_sentence, seed)
    by_name = {v.name: v for v in voices}
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "wavs").mkdir(parents=True)

    def build(clip: dict) -> dict:
        import soundfile as sf

        x = speak(by_name[clip["voice"]], clip["text"], clip["speed"], clip["pitch"])
        path = tmp / "wavs" / f"{clip['name']}.wav"
        sf.write(str(path), x, MULTIVOICE_RATE, subtype="PCM_16", format="WAV")
        return {**clip, "engine_version": versions[clip["engine"]], "samples": int(x.size), "sha256": _sha256(path)}

    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:  # engine subprocesses run in parallel; order is kept
            built = list(tqdm(pool.map(build, clips), total=len(clips), desc="speaking", disable=not progress))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary = {split: {"clips": sum(c["split"] == split for c in built),
                       "hours": round(sum(c["samples"] for c in built if c["split"] == split) / MULTIVOICE_RATE
                                      / 3600, 4),
                       "voices": sorted({c["voice"] for c in built if c["split"] == split}),
                       "sentences": len({c["sentence_id"] for c in built if c["split"] == split})}
               for split in ("train", "eval")}
    write_json(tmp / "manifest.json", {"corpus": "multivoice", "spec": spec, "summary": summary, "clips": built})
    if folder.exists():
        shutil.rmtree(folder)  # ours (its manifest said so), built with other settings
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, folder)
    return folder


def prepare_multivoice(cfg: MelConfig, folder: str | os.PathLike = "data/multivoice_speech", *,
                       voices: tuple[Voice, ...] = MULTIVOICE_VOICES, n_sentences: int = 500,
                       held_out_every: int = 10, voices_per_sentence: int = 2, seed: int = 22, workers: int = 2,
                       progress: bool = False) -> Path:
    """The multivoice corpus prepared for ``cfg`` (spoken and prepared on first use, then re-read): the folder
    ``SpeechCorpus`` opens, whose eval split is the held-out clips of the manifest."""
    if cfg.sample_rate != MULTIVOICE_RATE:
        raise InputError(f"the multivoice corpus is spoken at {MULTIVOICE_RATE} Hz; the mel config asks for "
                         f"{cfg.sample_rate} Hz: use sample_rate={MULTIVOICE_RATE} (LMNT's rate)")
    folder = generate_multivoice(folder, voices, n_sentences, held_out_every, voices_per_sentence, seed, workers,
                                 progress)
    manifest_sha = _sha256(folder / "manifest.json")
    out = folder / f"prepared-{cfg.n_mels}mel"
    try:
        if SpeechCorpus(out, cfg).source.get("manifest_sha256") == manifest_sha:
            return out
    except (FileNotFoundError, ValueError):
        pass
    clips = json.loads((folder / "manifest.json").read_text())["clips"]
    split = {c["name"]: c["split"] for c in clips}
    prepare_corpus([folder / "wavs" / f"{c['name']}.wav" for c in clips], out, cfg, split.__getitem__,
                   {"corpus": "multivoice", "manifest_sha256": manifest_sha}, progress)
    return out
