"""Data sources: the checkerboard family, stand-in natural-image patches (no download needed) with held-out sources,
dead-leaves images, image/WAV folders."""

from .checkerboard import CheckerboardFamily
from .dead_leaves import DeadLeaves, DeadLeavesError, same_leaf_probability
from .folders import FolderError, list_media, load_audio, load_image
from .patches import EVAL_IMAGES, SKIMAGE_IMAGES, ImagePatches, PatchError, load_gray
from .samplers import TensorSampler
from .speech import AudioError, MelConfig, SpeechCorpus, SpeechCrops, log_mel, read_wav, write_wav
from .speech_corpora import MissingToolError, generate_standin, prepare_ljspeech, prepare_standin

__all__ = [
    "CheckerboardFamily",
    "DeadLeaves", "DeadLeavesError", "same_leaf_probability",
    "FolderError",
    "list_media",
    "load_audio",
    "load_image",
    "SKIMAGE_IMAGES",
    "EVAL_IMAGES",
    "PatchError",
    "ImagePatches",
    "load_gray",
    "TensorSampler",
    "AudioError", "MelConfig", "SpeechCorpus", "SpeechCrops", "log_mel", "read_wav", "write_wav",
    "MissingToolError", "generate_standin", "prepare_ljspeech", "prepare_standin",
]
