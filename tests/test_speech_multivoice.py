"""The multivoice speech stand-in: the split rules on the full plan, determinism, reuse, tampering, bad inputs, and
each engine's clip against the engine called directly (espeak-ng: exact; flite: scipy's resampler)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from specreg_lib.data import speech_corpora, speech_multivoice
from specreg_lib.data.speech import MelConfig, SpeechCorpus, read_wav
from specreg_lib.data.speech_corpora import MissingToolError
from specreg_lib.data.speech_multivoice import (
    MULTIVOICE_VOICES,
    PEAK,
    CorpusChecksumError,
    SpeechEngineError,
    UnknownVoiceError,
    Voice,
    generate_multivoice,
    make_sentences,
    plan_clips,
    prepare_multivoice,
    speak,
)
from specreg_lib.errors import InputError
from specreg_lib.experiments import DIFFWAVE

SR = 22050
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (apt-get install flite)")
ES = Voice("es", "espeak-ng", "en-us", "M", (150.0, 190.0), (40.0, 60.0))
FL = Voice("fl", "flite", "slt", "F", (1.0, 1.1), (160.0, 180.0), held_out=True)
SMALL = {"voices": (ES, FL), "n_sentences": 4, "held_out_every": 2, "workers": 1}


def _digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted([folder / "manifest.json", *(folder / "wavs").glob("*.wav")])}


def test_sentences_are_ours_distinct_seeded_and_prefix_stable() -> None:
    s = make_sentences(500)
    assert len(set(s)) == 500 and s == make_sentences(500)
    assert make_sentences(7) == s[:7] and make_sentences(7, seed=23) != s[:7]
    assert all(x[0].isupper() and x[-1] in ".?!" and 6 <= len(x.split()) <= 25 for x in s)
    with pytest.raises(InputError, match="n_sentences"):
        make_sentences(0)


def test_full_plan_holds_out_speakers_and_sentences() -> None:
    plan = plan_clips(make_sentences(500), MULTIVOICE_VOICES)
    held_voices = {v.name for v in MULTIVOICE_VOICES if v.held_out}
    train = [c for c in plan if c["split"] == "train"]
    evals = [c for c in plan if c["split"] == "eval"]
    assert (len(train), len(evals)) == (900, 100)
    assert not held_voices & {c["voice"] for c in train}  # held-out speakers never heard in training
    assert not {c["sentence_id"] for c in evals} & {c["sentence_id"] for c in train}  # nor held-out text
    assert {c["sentence_id"] for c in evals} == set(range(9, 500, 10))
    assert Counter(c["held_out"] for c in evals) == {"speaker+sentence": 50, "sentence": 50}
    assert [c["held_out"] for c in evals[:2]] == ["sentence", "speaker+sentence"]  # eval_set(2) holds both kinds
    per_voice = Counter(c["voice"] for c in train)
    assert len(per_voice) == 7 and max(per_voice.values()) - min(per_voice.values()) <= 1  # balanced rotation
    assert len({v.gender for v in MULTIVOICE_VOICES}) == 2 and len(MULTIVOICE_VOICES) >= 6
    assert len({(c["speed"], c["pitch"]) for c in train if c["voice"] == "es-us-m"}) == 9  # 3 speeds x 3 pitches
    assert [c["name"] for c in plan] == sorted(c["name"] for c in plan)
    with pytest.raises(InputError, match="held_out=False"):
        plan_clips(["a b c."] * 4, (FL,), held_out_every=2)
    with pytest.raises(InputError, match="held_out_every"):
        plan_clips(["a b c."] * 4, (ES,), held_out_every=5)


@needs_espeak
@needs_flite
def test_build_is_byte_identical_reused_and_split_as_planned(tmp_path, monkeypatch) -> None:
    a = generate_multivoice(tmp_path / "a", **SMALL)
    b = generate_multivoice(tmp_path / "b", **SMALL)
    assert _digests(a) == _digests(b) and len(_digests(a)) == 1 + 6  # 2 train + 2 x 2 eval clips
    m = json.loads((a / "manifest.json").read_text())
    for c in m["clips"]:
        assert {"voice", "engine", "engine_version", "speed", "pitch", "sentence_id", "text", "split", "samples",
                "sha256"} <= set(c)
        assert sf.info(str(a / "wavs" / f"{c['name']}.wav")).frames == c["samples"]
    assert {c["voice"] for c in m["clips"] if c["split"] == "train"} == {"es"}
    assert m["summary"]["eval"]["clips"] == 4 and m["spec"]["engines"]["flite"].startswith("version: flite")

    def no_engine(*args, **kwargs):
        raise AssertionError("a matching folder must be reused, not spoken again")

    monkeypatch.setattr(speech_multivoice, "speak", no_engine)
    assert generate_multivoice(tmp_path / "a", **SMALL) == a
    monkeypatch.undo()

    prepared = prepare_multivoice(MelConfig(n_mels=20), tmp_path / "a", **SMALL)
    corpus = SpeechCorpus(prepared, MelConfig(n_mels=20))
    evals = [c for c in m["clips"] if c["split"] == "eval"]
    assert corpus.names("eval") == [c["name"] for c in evals]
    audio, mels = corpus.eval_set()
    for x, c in zip(audio, evals, strict=True):
        np.testing.assert_array_equal(x, read_wav(a / "wavs" / f"{c['name']}.wav", SR))
    assert all(mel.shape[0] == 20 for mel in mels)

    generate_multivoice(tmp_path / "a", **{**SMALL, "seed": 5})  # other settings: rebuilt, not refused
    assert json.loads((a / "manifest.json").read_text())["spec"]["seed"] == 5


@needs_espeak
def test_tampered_or_foreign_folders_are_refused(tmp_path) -> None:
    small = {**SMALL, "voices": (ES, dataclasses.replace(ES, name="es2", held_out=True))}
    folder = generate_multivoice(tmp_path / "c", **small)
    wav = sorted((folder / "wavs").glob("*.wav"))[1]
    data = bytearray(wav.read_bytes())
    data[-1] ^= 1
    wav.write_bytes(bytes(data))
    with pytest.raises(CorpusChecksumError, match=rf"{wav.stem}\.wav.*delete the folder"):
        generate_multivoice(tmp_path / "c", **small)
    wav.unlink()
    with pytest.raises(CorpusChecksumError, match="missing or differ"):
        generate_multivoice(tmp_path / "c", **small)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a multivoice corpus"):
        generate_multivoice(tmp_path / "other", **small)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match="22050 Hz"):
        prepare_multivoice(MelConfig(sample_rate=16000), tmp_path / "c", **small)


@needs_espeak
def test_espeak_clip_is_the_engine_output_peak_normalised() -> None:
    ours = speak(ES, "Seven boats arrived on Tuesday.", 150.0, 60.0)
    raw = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-p", "60", "--stdout",
                          "Seven boats arrived on Tuesday."], capture_output=True, check=True).stdout
    x = np.frombuffer(raw[44:], dtype="<i2").astype(np.float64)  # 44-byte RIFF header, 22.05 kHz int16 mono
    assert ours.dtype == np.int16 and np.abs(ours).max() == round(PEAK * 32767)
    np.testing.assert_array_equal(ours, np.round(x * (PEAK * 32767 / np.abs(x).max())).astype(np.int16))


@needs_flite
def test_flite_clip_is_resampled_from_16k_without_changing_its_content(tmp_path) -> None:
    ours = speak(FL, "Seven boats arrived on Tuesday.", 1.0, 170.0).astype(np.float64)
    subprocess.run(["flite", "-voice", "slt", "--setf", "duration_stretch=1", "--setf", "int_f0_target_mean=170",
                    "-t", "Seven boats arrived on Tuesday.", "-o", str(tmp_path / "f.wav")], check=True)
    x, sr = sf.read(str(tmp_path / "f.wav"), dtype="float64")
    assert sr == 16000
    ref = resample_poly(x, 441, 320)  # 22050 / 16000 = 441 / 320, scipy's own polyphase filter
    assert abs(len(ours) - len(ref)) <= 1
    n = min(len(ours), len(ref))
    corr = np.corrcoef(ours[:n], ref[:n])[0, 1]
    assert corr > 0.99, corr  # same waveform, same timing: a wrong rate would stretch it and decorrelate


@needs_espeak
@needs_flite
def test_unknown_voices_and_engines_are_refused_by_name() -> None:
    for bad, what in ((dataclasses.replace(ES, voice="xx-nope"), "xx-nope"),
                      (dataclasses.replace(ES, voice="en-us+nope"), r"\+nope"),
                      (dataclasses.replace(FL, voice="nosuch"), "nosuch"),  # flite would fall back silently
                      (dataclasses.replace(ES, engine="say"), "unknown speech engine")):
        with pytest.raises(UnknownVoiceError, match=what):
            speech_multivoice.check_voices((bad,))


@needs_espeak
@needs_flite
@pytest.mark.parametrize("voice", [ES, FL], ids=["espeak-ng", "flite"])
def test_empty_engine_output_is_an_error(voice) -> None:
    with pytest.raises(SpeechEngineError, match=f"voice {voice.name} .*no audible speech"):
        speak(voice, "", voice.speeds[0], voice.pitches[0])


@pytest.mark.parametrize("tool", ["espeak-ng", "flite"])
def test_missing_engine_names_its_debian_package(monkeypatch, tool) -> None:
    real = shutil.which
    monkeypatch.setattr(speech_corpora.shutil, "which", lambda name: None if name == tool else real(name))
    with pytest.raises(MissingToolError, match=f"apt-get install -y --no-install-recommends {tool}"):
        speech_multivoice.engine_version(tool)


@needs_espeak
def test_experiment_reads_the_multivoice_corpus(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPECREG_ROOT", str(tmp_path))
    small = {**SMALL, "voices": (ES, dataclasses.replace(ES, name="es2", held_out=True))}
    from specreg_lib.experiments.audio import experiment

    monkeypatch.setattr(experiment, "prepare_multivoice", lambda cfg, **kw: prepare_multivoice(cfg, **small))
    cfg = DIFFWAVE.config("smoke", {"data.corpus": "multivoice"})
    corpus = DIFFWAVE.corpus(cfg)
    assert corpus.folder == tmp_path / "data" / "multivoice_speech" / "prepared-20mel"
    assert corpus.names("eval") == ["mv0001-es", "mv0001-es2", "mv0003-es", "mv0003-es2"]
    with pytest.raises(InputError, match="ljspeech, standin, multivoice"):
        DIFFWAVE.config("smoke", {"data.corpus": "voices"})
