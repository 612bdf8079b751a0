"""Audio: features against torchaudio's reference functions (and an independent numpy STFT), deltas against the
regression formula, CMVN maths, the frame-centre labelling rule, resampling from 8 and 44.1 kHz, downmixing, and
one-line errors for unreadable audio."""

import numpy as np
import pytest
import soundfile
import torch

from seqlab import SeqlabError
from seqlab.encoders.audio import (
    IGNORE_INDEX,
    CMVNStats,
    FeatureConfig,
    UtteranceCMVN,
    add_deltas,
    frame_labels,
    read_audio,
    resample,
    utterance_cmvn,
)
from seqlab.torchaudio_compat import import_torchaudio

torchaudio = import_torchaudio()

RATE = 16000
FREQUENCIES = np.linspace(150.0, 3400.0, 30)  # all below 4 kHz, so an 8 kHz file holds the same signal
PHASES = np.random.default_rng(0).uniform(0.0, 2 * np.pi, len(FREQUENCIES))


def tones(rate: int, seconds: float = 0.5) -> np.ndarray:
    """(N,) the same band-limited signal (30 sines, 150..3400 Hz) sampled at ``rate``."""
    t = np.arange(int(round(rate * seconds))) / rate
    return (0.02 * np.sin(2 * np.pi * FREQUENCIES[:, None] * t + PHASES[:, None])).sum(0).astype(np.float32)


def noise(samples: int, seed: int = 1) -> torch.Tensor:
    """(N,) white noise plus a tone, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / RATE
    values = 0.05 * rng.standard_normal(samples) + 0.3 * np.sin(2 * np.pi * 440 * t)
    return torch.from_numpy(values.astype(np.float32))


# --------------------------------------------------------------------------------------------- features
def test_fbank_equals_kaldi_fbank_at_int16_scale():
    waveform = noise(8000)
    config = FeatureConfig("fbank", num_mel_bins=40)
    features = config(waveform)
    reference = torchaudio.compliance.kaldi.fbank(
        waveform.unsqueeze(0) * 32768.0, num_mel_bins=40, frame_length=25.0, frame_shift=10.0, dither=0.0,
        sample_frequency=16000.0, window_type="povey", preemphasis_coefficient=0.97, snip_edges=True,
    )
    torch.testing.assert_close(features, reference, rtol=0, atol=1e-5)
    # Kaldi's snip_edges framing: 1 + (N - 400) // 160 frames of 400 samples every 160
    assert features.shape == (1 + (8000 - 400) // 160, 40) == (config.num_frames(8000), config.feature_size)
    assert (config.window, config.hop) == (400, 160)
    np.testing.assert_array_equal(config.frame_centres(3), [200.0, 360.0, 520.0])
    # at [-1, 1] scale the energies would differ by log(32768^2) in every bin: the scaling matters
    unscaled = torchaudio.compliance.kaldi.fbank(waveform.unsqueeze(0), num_mel_bins=40, dither=0.0)
    assert (features - unscaled).mean().item() == pytest.approx(2 * np.log(32768.0), abs=0.1)


def test_mel_equals_melspectrogram_and_an_independent_stft():
    waveform = noise(6000, seed=2)
    config = FeatureConfig("mel", num_mel_bins=24)
    features = config(waveform)  # (T, 24)
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=400, win_length=400, hop_length=160, f_min=20.0, n_mels=24, center=False, power=2.0,
    )
    reference = torch.log(transform(waveform.unsqueeze(0) * 32768.0)[0] + 1e-6).T
    torch.testing.assert_close(features, reference, rtol=0, atol=1e-4)

    # the same numbers from first principles: frame i = samples [160 i, 160 i + 400), periodic Hann, |rfft|^2, HTK mel
    samples = waveform.double().numpy() * 32768.0
    frames = np.stack([samples[i * 160:i * 160 + 400] for i in range(config.num_frames(6000))])  # (T, 400)
    power = np.abs(np.fft.rfft(frames * np.hanning(401)[:400], n=400)) ** 2  # (T, 201)
    banks = torchaudio.functional.melscale_fbanks(201, 20.0, 8000.0, 24, 16000).double().numpy()  # (201, 24)
    np.testing.assert_allclose(features.numpy(), np.log(power @ banks + 1e-6), atol=1e-3)


def test_deltas_equal_compute_deltas_and_the_regression_formula():
    rng = np.random.default_rng(3)
    base = torch.from_numpy(rng.standard_normal((9, 4)).astype(np.float32))  # (T, M)
    both = add_deltas(base, 2)
    assert both.shape == (9, 12)
    torch.testing.assert_close(both[:, :4], base)
    first = torchaudio.functional.compute_deltas(base.T, win_length=5).T
    torch.testing.assert_close(both[:, 4:8], first)
    torch.testing.assert_close(both[:, 8:], torchaudio.functional.compute_deltas(first.T, win_length=5).T)

    # d_t = sum_{n=1..2} n (c_{t+n} - c_{t-n}) / (2 (1 + 4)), edge frames replicated
    padded = np.concatenate([base[:1].numpy()] * 2 + [base.numpy()] + [base[-1:].numpy()] * 2)  # (T + 4, M)
    by_hand = sum(n * (padded[2 + n:11 + n] - padded[2 - n:11 - n]) for n in (1, 2)) / 10.0
    np.testing.assert_allclose(both[:, 4:8].numpy(), by_hand, atol=1e-5)
    assert torch.equal(add_deltas(base, 0), base)
    with pytest.raises(ValueError):
        add_deltas(base, 3)


def test_feature_config_stacks_deltas_and_the_utterance_cmvn_step_normalises_each_utterance():
    waveform = noise(4000)
    plain = FeatureConfig(num_mel_bins=20)(waveform)
    config = FeatureConfig(num_mel_bins=20, deltas=2)
    features = torch.from_numpy(UtteranceCMVN()(config(waveform).numpy()))
    assert features.shape == (config.num_frames(4000), 60) and config.feature_size == 60
    torch.testing.assert_close(features, utterance_cmvn(add_deltas(plain, 2)))
    np.testing.assert_allclose(features.mean(0).numpy(), 0.0, atol=1e-4)
    spread = add_deltas(plain, 2).std(0, unbiased=False).numpy()  # unit variance, up to the 1e-5 added to the std
    np.testing.assert_allclose(features.std(0, unbiased=False).numpy(), spread / (spread + 1e-5), atol=1e-4)


def test_utterance_cmvn_and_global_statistics_match_numpy():
    rng = np.random.default_rng(4)
    values = rng.standard_normal((30, 5)) * [1, 2, 3, 4, 5] + [10, -3, 0, 7, 1]
    utterance = torch.from_numpy(values.astype(np.float32))
    normalised = utterance_cmvn(utterance)
    np.testing.assert_allclose(normalised.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalised.numpy().std(0), 1.0, atol=1e-4)
    centred = utterance_cmvn(utterance, variance=False)
    np.testing.assert_allclose(centred.numpy(), utterance.numpy() - utterance.numpy().mean(0), atol=1e-5)

    arrays = [rng.standard_normal((n, 3)) * 4 + 2 for n in (5, 17, 1)]
    stats = CMVNStats.fit(arrays)
    frames = np.concatenate(arrays)  # statistics over frames, not a mean of per-utterance means
    np.testing.assert_allclose(stats.mean, frames.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.std, frames.std(0), rtol=1e-4)
    np.testing.assert_allclose(stats.apply(frames).mean(0), 0.0, atol=1e-4)
    restored = CMVNStats.from_state_dict(stats.state_dict())
    np.testing.assert_array_equal(restored.mean, stats.mean)
    np.testing.assert_array_equal(restored.std, stats.std)
    with pytest.raises(ValueError):
        CMVNStats.fit([])


# --------------------------------------------------------------------------------------------- frame labels
def test_frame_labels_take_the_segment_under_the_frame_centre():
    centres = FeatureConfig().frame_centres(9)  # 200, 360, 520, 680, 840, 1000, 1160, 1320, 1480
    starts = np.array([0.0, 520.0, 1160.0])  # A [0, 520), B [520, 1000), gap [1000, 1160), C [1160, 1300)
    ends = np.array([520.0, 1000.0, 1300.0])
    labels = np.array([7, 8, 9])
    # a centre on a boundary belongs to the segment that starts there (start <= centre < end); 1000 ends B and
    # starts nothing; 1320 and 1480 lie past the last segment
    expected = [7, 7, 8, 8, 8, IGNORE_INDEX, 9, IGNORE_INDEX, IGNORE_INDEX]
    assert frame_labels(starts, ends, labels, centres).tolist() == expected
    uncovered = frame_labels(starts, ends, labels, centres, uncovered=3)
    assert uncovered.tolist() == [3 if e == IGNORE_INDEX else e for e in expected]
    assert uncovered.dtype == np.int64
    # a frame centred before the first segment is uncovered too; no segments at all -> all uncovered
    assert frame_labels(np.array([300.0]), np.array([900.0]), np.array([1]), centres[:4]).tolist() == [
        IGNORE_INDEX, 1, 1, 1]
    assert frame_labels(np.array([]), np.array([]), np.array([]), centres[:2], uncovered=5).tolist() == [5, 5]


# --------------------------------------------------------------------------------------------- decoding, rates
@pytest.mark.parametrize("rate,suffix", [(8000, "wav"), (44100, "flac")])
def test_other_sample_rates_are_resampled_to_the_configured_rate(tmp_path, rate, suffix):
    path = tmp_path / f"tones.{suffix}"
    soundfile.write(path, tones(rate), rate)
    waveform, read_rate = read_audio(str(path))
    assert read_rate == rate and waveform.dtype == np.float32 and len(waveform) == int(0.5 * rate)
    config = FeatureConfig()
    resampled = resample(torch.from_numpy(waveform), rate, config.sample_rate)
    assert len(resampled) == 8000  # 0.5 s at 16 kHz
    features = config(resampled)
    reference = config(torch.from_numpy(tones(RATE)))  # the same signal generated at 16 kHz
    assert features.shape == reference.shape == (config.num_frames(8000), 40)
    # mel bins whose upper edge is below the highest tone (27 of 40); above it there is no signal to compare
    mel = np.linspace(1127.0 * np.log1p(20 / 700), 1127.0 * np.log1p(8000 / 700), 42)  # Kaldi's bin edges
    upper = 700.0 * np.expm1(mel[2:] / 1127.0)
    bands = torch.from_numpy(upper < 3400.0)
    assert int(bands.sum()) == 27
    gap = (features - reference)[2:-2][:, bands].abs().max().item()  # the resampler's edge effects left out
    assert gap < 0.1, gap
    # not resampling (reading the file as if it were 16 kHz) would be far off
    assert (config(torch.from_numpy(waveform))[:10] - reference[:10]).abs().max() > 1.0
    assert resample(resampled, 16000, 16000) is resampled


def test_stereo_is_downmixed_to_the_channel_mean(tmp_path):
    left = tones(RATE, 0.1)
    right = noise(len(left)).numpy()
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    waveform, rate = read_audio(str(path))
    assert rate == RATE and waveform.shape == left.shape
    np.testing.assert_allclose(waveform, (left + right) / 2, atol=1e-7)
    # bytes decode the same as the file
    again, _ = read_audio(path.read_bytes(), name="stereo bytes")
    np.testing.assert_array_equal(again, waveform)


def test_unreadable_truncated_and_empty_audio_are_one_line_errors_naming_the_file(tmp_path):
    good = tmp_path / "good.wav"
    soundfile.write(good, tones(RATE, 0.2), RATE)
    flac = tmp_path / "good.flac"
    soundfile.write(flac, tones(RATE, 0.2), RATE)
    cases = {
        "truncated.wav": (good.read_bytes()[: len(good.read_bytes()) // 2], "truncated audio file"),
        "truncated.flac": (flac.read_bytes()[: len(flac.read_bytes()) // 2], "cannot read audio"),
        "garbage.flac": (b"this is not audio at all" * 20, "cannot read audio"),
        "empty.wav": (b"", "cannot read audio"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(SeqlabError) as error:
            read_audio(str(path))
        message = str(error.value)
        assert message.startswith(f"{path}: ") and expected in message and "\n" not in message, message
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(SeqlabError, match="holds no samples"):
        read_audio(str(silent))
    with pytest.raises(SeqlabError, match="^some bytes: cannot read audio"):
        read_audio(b"junk" * 10, name="some bytes")
    for bad in (np.nan, np.inf):  # a float WAV can hold them; each would turn the whole utterance's features to NaN
        samples = tones(RATE, 0.2).astype(np.float32)
        samples[1000] = bad
        corrupt = tmp_path / "corrupt.wav"
        soundfile.write(corrupt, samples, RATE, subtype="FLOAT")
        with pytest.raises(SeqlabError) as error:
            read_audio(str(corrupt))
        assert str(error.value) == f"{corrupt}: sample 1001 of the audio is not a number (NaN or infinite)"


@pytest.mark.parametrize("kind", ["fbank", "mel"])
def test_audio_shorter_than_one_frame_gives_no_frames(kind):
    # torchaudio's fbank asserts on it (an AssertionError, not a one-line error); the data module reports it
    config = FeatureConfig(kind, deltas=1)
    for samples in (0, 1, 399):
        assert config(torch.zeros(samples)).shape == (0, 80) == (config.num_frames(samples), config.feature_size)
    assert config(noise(400)).shape == (1, 80)
