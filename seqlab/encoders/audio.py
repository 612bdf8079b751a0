"""Audio for the speech data module: decoding (soundfile), downmixing and resampling, log-mel features (torchaudio's
Kaldi-compatible fbank or MelSpectrogram + log), deltas, CMVN (none, per utterance or global), and frame labels from
time-aligned phone segments."""

from __future__ import annotations

import contextlib
import functools
import io
import re
from dataclasses import dataclass
from typing import Iterator, Literal, Optional, Sequence, Union

import numpy as np
import soundfile
import torch

from seqlab import SeqlabError
from seqlab.torchaudio_compat import import_torchaudio

torchaudio = import_torchaudio()

#: file name suffixes read as audio (lower case; soundfile/libsndfile decodes them)
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".sph", ".nist")

#: frames whose label is unknown or deleted (ignored by the loss and the frame metrics)
IGNORE_INDEX = -100

#: Kaldi's convention: waveforms at the scale of 16-bit integers, so quiet frames stay above the energy floor
INT16_SCALE = 32768.0

_TRUNCATED = re.compile(r"^\s*data\s*:\s*\d+\s*\(should be", re.MULTILINE)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block. Feature extraction is many small ops per utterance: threads
    gain nothing there, and on a busy machine their synchronisation makes it many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def is_audio_file(name: str) -> bool:
    return name.lower().endswith(AUDIO_SUFFIXES)


def read_audio(source: Union[str, bytes], name: Optional[str] = None) -> tuple[np.ndarray, int]:
    """Decode a file path or the bytes of a file with soundfile: (waveform (N,) float32 in [-1, 1], sample rate).
    Several channels are averaged (downmix). An unreadable, truncated or empty file, or one holding NaN or infinite
    samples, is a SeqlabError naming it."""
    name = name or (source if isinstance(source, str) else "<audio bytes>")
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        info = soundfile.info(handle)
        if _TRUNCATED.search(info.extra_info or ""):  # libsndfile reads a short WAV without complaint
            raise SeqlabError(f"{name}: truncated audio file (its header promises more data than the file holds)")
        if isinstance(handle, io.BytesIO):
            handle.seek(0)
        data, rate = soundfile.read(handle, dtype="float32", always_2d=True)  # (N, C)
    except SeqlabError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        detail = detail.replace(f"Error opening {name!r}: ", "").replace(f"Error opening '{name}': ", "")
        raise SeqlabError(f"{name}: cannot read audio ({detail})") from None
    if data.shape[0] == 0:
        raise SeqlabError(f"{name}: the audio file holds no samples")
    waveform = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)  # (N,)
    if not np.isfinite(waveform).all():  # a float file can hold them; every feature of the utterance would be NaN
        first = int(np.flatnonzero(~np.isfinite(waveform))[0])
        raise SeqlabError(f"{name}: sample {first + 1} of the audio is not a number (NaN or infinite)")
    return np.ascontiguousarray(waveform, dtype=np.float32), int(rate)


def resample(waveform: torch.Tensor, rate: int, target_rate: int) -> torch.Tensor:
    """(..., N) at ``rate`` -> (..., N') at ``target_rate`` with ``torchaudio.functional.resample`` (unchanged when
    the rates are equal)."""
    if rate == target_rate:
        return waveform
    return torchaudio.functional.resample(waveform, rate, target_rate)


def add_deltas(features: torch.Tensor, order: int, window: int = 5) -> torch.Tensor:
    """(T, M) -> (T, M * (1 + order)): the features, then deltas (order >= 1) and delta-deltas (order 2), each with
    ``torchaudio.functional.compute_deltas`` (regression over ``window`` frames, edges replicated)."""
    if order not in (0, 1, 2):
        raise ValueError(f"deltas must be 0, 1 or 2, not {order}")
    parts = [features]
    current = features.T  # (M, T)
    for _ in range(order):
        current = torchaudio.functional.compute_deltas(current, win_length=window)
        parts.append(current.T)
    return torch.cat(parts, dim=1) if order else features


def utterance_cmvn(features: torch.Tensor, variance: bool = True, eps: float = 1e-5) -> torch.Tensor:
    """(T, F) -> (T, F) with zero mean (and unit variance) per feature over the utterance's frames."""
    centred = features - features.mean(dim=0, keepdim=True)
    if not variance:
        return centred
    return centred / (features.std(dim=0, unbiased=False, keepdim=True) + eps)


@functools.lru_cache(maxsize=8)
def _mel_spectrogram(sample_rate: int, window: int, hop: int, num_mel_bins: int) -> torch.nn.Module:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=window, win_length=window, hop_length=hop, f_min=20.0, n_mels=num_mel_bins,
        center=False, power=2.0,
    )


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel features of one utterance.

    ``kind="fbank"``: ``torchaudio.compliance.kaldi.fbank`` (Kaldi's defaults: Povey window, pre-emphasis 0.97, DC
    removal, no dither); ``kind="mel"``: ``torchaudio.transforms.MelSpectrogram`` (Hann window, FFT size = window)
    and ``log(x + 1e-6)``. Both see the waveform at 16-bit integer scale and frame it the same way (no padding: frame
    ``i`` covers samples ``[i * hop, i * hop + window)``, its centre is ``i * hop + window / 2``). ``deltas`` appends
    deltas (1) and delta-deltas (2). Normalisation is a separate step: ``UtteranceCMVN`` or ``GlobalCMVN``.
    """

    kind: Literal["fbank", "mel"] = "fbank"
    sample_rate: int = 16000
    num_mel_bins: int = 40
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    deltas: int = 0

    def __post_init__(self) -> None:
        """Each ValueError's message starts with the option it is about (the data module's option of that name)."""
        if self.kind not in ("fbank", "mel"):
            raise ValueError(f"features must be 'fbank' or 'mel', got {self.kind!r}")
        if self.deltas not in (0, 1, 2):
            raise ValueError(f"deltas must be 0, 1 or 2, got {self.deltas}")
        if self.sample_rate < 1:
            raise ValueError(f"sample_rate must be at least 1 Hz, got {self.sample_rate}")
        fewest_bins = 4 if self.kind == "fbank" else 1  # Kaldi's filterbank needs more than 3
        if self.num_mel_bins < fewest_bins:
            raise ValueError(f"num_mel_bins must be at least {fewest_bins} for {self.kind} features, got "
                             f"{self.num_mel_bins}")
        if self.window < 2:
            raise ValueError(f"frame_length_ms {self.frame_length_ms} is {self.window} samples at {self.sample_rate} "
                             "Hz; a frame needs at least 2")
        if self.hop < 1:
            raise ValueError(f"frame_shift_ms {self.frame_shift_ms} is {self.hop} samples at {self.sample_rate} Hz; "
                             "frames must move by at least 1")

    @property
    def window(self) -> int:
        """Frame length in samples."""
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def hop(self) -> int:
        """Frame shift in samples."""
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    @property
    def feature_size(self) -> int:
        return self.num_mel_bins * (1 + self.deltas)

    def num_frames(self, num_samples: int) -> int:
        return 0 if num_samples < self.window else 1 + (num_samples - self.window) // self.hop

    def frame_centres(self, num_frames: int) -> np.ndarray:
        """(T,) the centre of each frame in samples (at ``sample_rate``)."""
        return np.arange(num_frames, dtype=np.float64) * self.hop + self.window / 2

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """(N,) float waveform in [-1, 1] at ``sample_rate`` -> (T, num_mel_bins) log mel energies; T = 0 for
        audio shorter than one frame (torchaudio would fail on it with an assertion)."""
        if self.num_frames(waveform.numel()) == 0:
            return waveform.new_zeros((0, self.num_mel_bins))
        scaled = waveform.reshape(1, -1) * INT16_SCALE  # (1, N)
        if self.kind == "fbank":
            return torchaudio.compliance.kaldi.fbank(
                scaled, num_mel_bins=self.num_mel_bins, frame_length=self.frame_length_ms,
                frame_shift=self.frame_shift_ms, dither=0.0, sample_frequency=float(self.sample_rate),
            )
        mel = _mel_spectrogram(self.sample_rate, self.window, self.hop, self.num_mel_bins)
        return torch.log(mel(scaled)[0] + 1e-6).T  # (M, T) -> (T, M)

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        """(N,) waveform at ``sample_rate`` -> (T, feature_size): log mel and deltas (T = 0, no features, for audio
        shorter than one frame)."""
        if self.num_frames(waveform.numel()) == 0:
            return waveform.new_zeros((0, self.feature_size))
        return add_deltas(self.log_mel(waveform), self.deltas)

    def extract(self, audio: Union[str, bytes], name: str) -> tuple[np.ndarray, float, int]:
        """An audio file (path or bytes; ``name`` for messages) -> ((T, feature_size) features, seconds, its sample
        rate); audio shorter than one frame is a SeqlabError."""
        waveform, rate = read_audio(audio, name)
        duration = len(waveform) / rate
        features = self(resample(torch.from_numpy(waveform), rate, self.sample_rate)).numpy()  # (T, F)
        if features.shape[0] == 0:
            raise SeqlabError(f"{name}: {duration:.3f} s of audio is shorter than one "
                              f"{self.frame_length_ms:g} ms frame")
        return features, duration, rate

    def targets(self, starts: Sequence[float], ends: Sequence[float], labels: Sequence[int], units: float,
                duration: float, num_frames: int, uncovered: int = IGNORE_INDEX
                ) -> tuple[np.ndarray, np.ndarray, float]:
        """Segments (K,) in ``units`` per second with their label ids -> the label of each of ``num_frames`` frames
        (``frame_labels``), the utterance's phone sequence (deleted phones left out) and the overrun: the seconds the
        alignment runs past the end of ``duration`` s of audio (segments are clipped there; those starting past it
        are dropped)."""
        starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
        limit = duration * units
        overrun = max(0.0, float(ends.max()) - limit) / units if len(ends) else 0.0
        keep = starts < limit
        kept = np.asarray(labels, dtype=np.int64).reshape(-1)[keep]
        scale = self.sample_rate / units  # segment units -> samples at sample_rate
        frames = frame_labels(starts[keep] * scale, np.minimum(ends[keep], limit) * scale, kept,
                              self.frame_centres(num_frames), uncovered)
        return frames, kept[kept >= 0], overrun


class NoCMVN:
    """``cmvn: none``. A CMVN step maps each utterance's (T, F) features to (T, F) as batches are collated (the features
    stay in the ``datasets`` cache); ``fit`` sees the training utterances' features; ``state_dict`` is what
    checkpoints keep."""

    fitted = True

    def fit(self, arrays: Sequence[np.ndarray]) -> None:
        pass

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return features

    def state_dict(self) -> Optional[dict]:
        return None

    def load_state_dict(self, state: Optional[dict]) -> None:
        pass


class UtteranceCMVN(NoCMVN):
    """``cmvn: utterance``: zero mean and unit variance per feature over the utterance's own frames."""

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return utterance_cmvn(torch.tensor(features)).numpy()


class GlobalCMVN(NoCMVN):
    """``cmvn: global``: the mean and standard deviation of all training frames (``CMVNStats``), kept in checkpoints."""

    def __init__(self, stats: Optional["CMVNStats"] = None) -> None:
        self.stats = stats

    @property
    def fitted(self) -> bool:
        return self.stats is not None

    def fit(self, arrays: Sequence[np.ndarray]) -> None:
        self.stats = CMVNStats.fit(arrays)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return self.stats.apply(features)

    def state_dict(self) -> Optional[dict]:
        return self.stats.state_dict() if self.stats is not None else None

    def load_state_dict(self, state: Optional[dict]) -> None:
        if state:
            self.stats = CMVNStats.from_state_dict(state)


#: the ``cmvn`` option's variants
CMVN = {"none": NoCMVN, "utterance": UtteranceCMVN, "global": GlobalCMVN}


class CMVNStats:
    """Global mean and standard deviation per feature, accumulated over (T, F) arrays (the training set), stored in
    checkpoints; ``apply`` normalises (B, T, F) or (T, F)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def fit(cls, arrays: Sequence[np.ndarray], eps: float = 1e-5) -> "CMVNStats":
        count, total, squares = 0, 0.0, 0.0
        for array in arrays:
            values = np.asarray(array, dtype=np.float64)  # (T, F)
            count, total, squares = count + values.shape[0], total + values.sum(0), squares + (values ** 2).sum(0)
        if not count:
            raise ValueError("CMVN statistics need at least one frame")
        mean = total / count
        variance = np.maximum(squares / count - mean ** 2, 0.0)
        return cls(mean, np.sqrt(variance) + eps)

    def apply(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.std

    def state_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "CMVNStats":
        return cls(state["mean"], state["std"])


def frame_labels(starts: np.ndarray, ends: np.ndarray, labels: np.ndarray, centres: np.ndarray,
                 uncovered: int = IGNORE_INDEX) -> np.ndarray:
    """The label of each frame: that of the segment covering the frame's centre (``start <= centre < end``), or
    ``uncovered`` where none does. Segments sorted and non-overlapping, all in the same unit as ``centres``.
    (K,), (K,), (K,), (T,) -> (T,) int64."""
    if len(starts) == 0:
        return np.full(len(centres), uncovered, dtype=np.int64)
    segment = np.searchsorted(starts, centres, side="right") - 1  # the last segment starting at or before the centre
    inside = (segment >= 0) & (centres < ends[np.clip(segment, 0, None)])
    return np.where(inside, labels[np.clip(segment, 0, None)], uncovered).astype(np.int64)
