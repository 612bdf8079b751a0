"""Speech speed, measured in one run on the TIMIT sample: (a) seqlab's FrameClassification trained by the Lightning
Trainer vs a raw PyTorch loop on the same model, (b) seqlab's feature extraction vs torchaudio's Kaldi fbank, on one
core.

(a) Models: the sizes of configs/speech/timit_sample_bilstm.yaml (Kaldi fbank 40 + per-utterance CMVN, BiLSTM
3 x 256 per direction over every frame, dropout 0.3, a softmax per frame over the 39 phones, Adam 2e-3, clip 5,
batch 8) and of the MLP baseline timit_sample_mlp.yaml (+-5 frame context window, 2 x 1024, dropout 0.3, Adam
1e-3). The configs' ReduceLROnPlateau steps once per epoch on validation: left out (no validation runs). The raw
loop calls the task's plain-torch network, ``task.model(batch)`` (with its optional parts: SpecAugment in training,
stacking) and ``task.model.loss``; it is checked equal to the task's ``training_step`` (same RNG state, same masks)
before timing.
Steps interleaved on identical pre-collated batches (``paired.py``); ratio = geometric mean of the medians of
raw_s/seqlab_s over steps with the raw loop first and second; frames/s counts real frames (``mask.sum()``).

(b) Feature extraction on one thread (``torch.set_num_threads(1)``, as the data module computes features) over all
TIMIT sample waveforms, decoded beforehand, so only feature computation is timed: seqlab's ``FeatureConfig`` (fbank
40, 25 ms / 10 ms, per-utterance CMVN; the data module's path: resample (a no-op at 16 kHz) -> fbank -> CMVN) vs
``torchaudio.compliance.kaldi.fbank`` called directly with the same parameters (the reference, no CMVN), utterance by
utterance interleaved, the order swapped every other utterance. Speeds are x real time (audio seconds / compute
seconds); the issue's target is >= 500x. A second row adds decoding (soundfile, timed in the same passes) to both.

Prints ratios and appends one JSON row per comparison to results/bench/speech_speed.jsonl; never asserts on timings.
Example: ``python benchmarks/speech_speed.py --windows 3 --window-batches 8 --feature-passes 5 --threads 1``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

if str(Path(__file__).resolve().parent) not in sys.path:  # benchmarks/ is not a package: find paired.py beside us
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import (  # noqa: E402
    NoCheckpoints,
    Row,
    add_common_arguments,
    append_rows,
    banner,
    check_same_loss,
    collate_windows,
    paired_training,
    print_table,
    quiet_setup,
    row,
    training_row,
)
from seqlab.data_modules import SpeechFrameData  # noqa: E402
from seqlab.encoders.audio import (  # noqa: E402
    INT16_SCALE, FeatureConfig, UtteranceCMVN, read_audio, resample, single_thread,
)
from seqlab.models import BiLSTMEncoder, ContextWindowMLP, FrameClassifier  # noqa: E402
from seqlab.tasks import FrameClassification  # noqa: E402
from seqlab.torchaudio_compat import import_torchaudio  # noqa: E402

BATCH_SIZE = 8  # the configs' data.batch_size
TARGET_X_REAL_TIME = 500.0  # feature extraction target quoted in the issue, on one core
#: variant -> (task parts, description); sizes of configs/speech/timit_sample_<variant>.yaml
VARIANTS: dict[str, tuple[dict, str]] = {
    "bilstm": (dict(
        encoder=functools.partial(BiLSTMEncoder, hidden_size=256, num_layers=3, dropout=0.3),
        head=functools.partial(FrameClassifier, dropout=0.0),
        optimizer=functools.partial(torch.optim.Adam, lr=2e-3),
    ), "TIMIT sample, fbank 40 -> BiLSTM 3x256 -> softmax/frame, timit_sample_bilstm.yaml"),
    "mlp": (dict(
        encoder=functools.partial(ContextWindowMLP, context=5, hidden_size=1024, num_layers=2, dropout=0.3),
        head=functools.partial(FrameClassifier, dropout=0.0),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
    ), "TIMIT sample, fbank 40 -> +-5 frame window MLP 2x1024 -> softmax/frame, timit_sample_mlp.yaml"),
}


class BenchFrameClassification(NoCheckpoints, FrameClassification):
    """FrameClassification without its ModelCheckpoint callbacks (the benchmark times training steps)."""


# ----------------------------------------------------------------------------- (a) training steps
def build_data(data_root: Path, batch_size: int = BATCH_SIZE) -> SpeechFrameData:
    """The TIMIT sample as the configs read it: fbank 40, per-utterance CMVN, trained and scored on 39 phones."""
    data = SpeechFrameData(path=str(data_root / "speech" / "timit_sample"), features="fbank", num_mel_bins=40,
                           cmvn="utterance", train_labels="39", score_labels="39", batch_size=batch_size)
    data.setup("fit")
    return data


def build_task(data: SpeechFrameData, parts: dict) -> BenchFrameClassification:
    """Sizes linked from the data module as the CLI links them; the parts are the configs' factories."""
    return BenchFrameClassification(
        feature_size=data.feature_size, labels=data.labels, scoring_labels=data.scoring_labels,
        silence_labels=data.silence_labels, frame_shift=data.frame_shift, frame_length=data.frame_length,
        write_confusion=False, **parts,
    )


def frame_loss(model: FrameClassification, batch: dict) -> torch.Tensor:
    """FrameClassification's training loss: its plain-torch network's (``seqlab.models.frame_network.FrameNetwork``:
    SpecAugment in training, stacking, encoder, head), which its ``shared_step`` calls too."""
    return model.model.loss(model.model(batch), batch)  # logits (B, T, K)


def compare_training(data: SpeechFrameData, variant: str, args: argparse.Namespace) -> Row:
    parts, subject = VARIANTS[variant]
    torch.manual_seed(0)
    task = build_task(data, parts)
    windows = collate_windows(data.train_dataloader(), args.windows + 1, args.window_batches)
    check_same_loss(task, frame_loss, windows[0][0], variant)
    result = paired_training(task, frame_loss, windows, args.block)
    return training_row(f"train_step_timit_{variant}", subject, result, args, unit="frames", batch_size=args.batch_size)


# ----------------------------------------------------------------------------- (b) feature extraction
def compare_features(data_root: Path, args: argparse.Namespace) -> list[Row]:
    """seqlab FeatureConfig vs torchaudio.compliance.kaldi.fbank on one thread, x real time; see the docstring."""
    torchaudio = import_torchaudio()
    config = FeatureConfig("fbank", 16000, 40, 25.0, 10.0, 0)  # the configs' data init_args
    cmvn = UtteranceCMVN()
    files = sorted((data_root / "speech" / "timit_sample" / "audio").glob("*.flac"))
    if not files:
        raise SystemExit(f"no .flac files under {data_root / 'speech' / 'timit_sample' / 'audio'}")

    def seqlab_features(waveform: torch.Tensor, rate: int) -> torch.Tensor:
        features = config(resample(waveform, rate, config.sample_rate)).numpy()  # (T, 40), as SpeechFrameData.encode
        return torch.from_numpy(cmvn(features))  # per-utterance CMVN, as the configs

    def torchaudio_fbank(waveform: torch.Tensor, rate: int) -> torch.Tensor:
        return torchaudio.compliance.kaldi.fbank(
            waveform.reshape(1, -1) * INT16_SCALE, num_mel_bins=40, frame_length=25.0, frame_shift=10.0, dither=0.0,
            sample_frequency=float(rate),
        )

    with single_thread():
        decoded = []
        for path in files:
            waveform, rate = read_audio(str(path))
            decoded.append((torch.from_numpy(waveform), rate))
        audio_s = sum(len(w) / rate for w, rate in decoded)
        same = all(torch.equal(config.log_mel(w), torchaudio_fbank(w, rate)) for w, rate in decoded[:5])
        print(f"features check: seqlab's log-mel (before CMVN) {'identical to' if same else 'DIFFERS from'} "
              f"torchaudio.compliance.kaldi.fbank on the first 5 utterances")
        for w, rate in decoded[:10]:  # warm-up
            seqlab_features(w, rate), torchaudio_fbank(w, rate)
        passes = []  # per pass: (decode s, seqlab s, torchaudio s)
        for p in range(args.feature_passes):
            decode_s = seqlab_s = reference_s = 0.0
            for i, (path, (w, rate)) in enumerate(zip(files, decoded)):
                start = time.perf_counter()
                read_audio(str(path))
                decode_s += time.perf_counter() - start
                sides = [(seqlab_features, "seqlab"), (torchaudio_fbank, "torchaudio")][:: 1 if (i + p) % 2 else -1]
                for function, side in sides:
                    start = time.perf_counter()
                    function(w, rate)
                    elapsed = time.perf_counter() - start
                    if side == "seqlab":
                        seqlab_s += elapsed
                    else:
                        reference_s += elapsed
            passes.append((decode_s, seqlab_s, reference_s))
        threads = torch.get_num_threads()

    seqlab_x = statistics.median(audio_s / s for _, s, _ in passes)
    reference_x = statistics.median(audio_s / r for _, _, r in passes)
    ratio = statistics.median(r / s for _, s, r in passes)
    with_decode = statistics.median(audio_s / (d + s) for d, s, _ in passes)
    reference_with_decode = statistics.median(audio_s / (d + r) for d, _, r in passes)
    ratio_with_decode = statistics.median((d + r) / (d + s) for d, s, r in passes)
    decode_x = statistics.median(audio_s / d for d, _, _ in passes)
    common = dict(utterances=len(files), audio_seconds=round(audio_s, 3), passes=args.feature_passes,
                  feature_threads=threads, fbank_identical=same, target_x_real_time=TARGET_X_REAL_TIME)
    scope = (f"feature extraction on 1 thread over all {len(files)} TIMIT sample waveforms ({audio_s:.0f} s of "
             "audio), utterances interleaved, order swapped every other one; x real time = audio s / compute s")
    return [
        row("features_fbank40_cmvn", f"{scope}; waveforms decoded beforehand: seqlab FeatureConfig (Kaldi fbank 40, "
            "25/10 ms, per-utterance CMVN) vs torchaudio.compliance.kaldi.fbank alone (same parameters, no CMVN), "
            "median over passes; ratio = seqlab/torchaudio", seqlab_x, reference_x, "x realtime", args,
            batches=args.feature_passes, ratio=ratio, meets_target=seqlab_x >= TARGET_X_REAL_TIME, **common),
        row("features_fbank40_cmvn_decode", f"{scope}; decoding (soundfile FLAC) included on both sides: seqlab "
            "read_audio + FeatureConfig vs read_audio + torchaudio kaldi.fbank; ratio = seqlab/torchaudio",
            with_decode, reference_with_decode, "x realtime", args, batches=args.feature_passes,
            ratio=ratio_with_decode, decode_x_real_time=round(decode_x, 1),
            meets_target=with_decode >= TARGET_X_REAL_TIME, **common),
        row("features_vs_target", f"seqlab FeatureConfig x real time on 1 thread (decoded beforehand, as "
            f"features_fbank40_cmvn) vs the issue's target of {TARGET_X_REAL_TIME:.0f}x (a target, not measured); "
            "ratio = seqlab/target (>= 1 meets it)", seqlab_x, TARGET_X_REAL_TIME, "x realtime", args,
            batches=args.feature_passes, reference_kind="target", meets_target=seqlab_x >= TARGET_X_REAL_TIME,
            **common),
    ]


# ----------------------------------------------------------------------------- command line
def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "root holding speech/timit_sample", "speech_speed.jsonl")
    parser.set_defaults(windows=3, window_batches=8)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help=f"training batch size (default {BATCH_SIZE}: the configs'; smaller only for smoke tests)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"training comparisons, comma-separated, of: {', '.join(VARIANTS)} (empty: none)")
    parser.add_argument("--no-features", dest="features", action="store_false", help="skip (b) feature extraction")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> list[Row]:
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    quiet_setup(args)
    banner(args, args.batch_size)
    rows: list[Row] = []
    if variants:
        data = build_data(args.data, args.batch_size)
        rows += [compare_training(data, variant, args) for variant in variants]
    if args.features:
        rows += compare_features(args.data, args)
    print_table(rows)
    append_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
