"""The CLI with the speech task on the real TIMIT sample: links, checkpoints carry the labels, phone map and global
CMVN statistics, predict with only the checkpoint writes frame labels and phone segments, one-line errors naming the
file, and (slow) 1- and 2-process validation of the same checkpoint agree."""

import shutil
from pathlib import Path

import pytest
import torch

from seqlab.cli import SeqlabCLI, main
from seqlab.encoders.audio import FeatureConfig
from seqlab.tasks import FrameClassification
from tests.cli_helpers import CONFIGS, read_rows, run_options, seqlab
from tests.conftest import require_shared_data

BILSTM = str(CONFIGS / "speech" / "timit_sample_bilstm.yaml")
TINY = ["--model.init_args.encoder.init_args.hidden_size", "32", "--model.init_args.encoder.init_args.num_layers", "1"]


def corpus_slice(source: Path, target: Path, ids: list[str]) -> Path:
    """A TIMIT-sample folder with only the utterances ``ids`` (their table rows, audio, alignments, the map)."""
    (target / "audio").mkdir(parents=True)
    (target / "phn").mkdir()
    lines = (source / "utterances.tsv").read_text().splitlines()
    keep = [lines[0]] + [line for line in lines[1:] if line.split("\t")[0] in ids]
    (target / "utterances.tsv").write_text("\n".join(keep) + "\n")
    for utterance in ids:
        shutil.copy(source / "audio" / f"{utterance}.flac", target / "audio")
        shutil.copy(source / "phn" / f"{utterance}.phn", target / "phn")
    shutil.copy(source / "phones.60-48-39.map", target)
    return target


def table(source: Path) -> list[dict]:
    lines = (source / "utterances.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny BiLSTM (1 x 32) fitted briefly in-process on the whole TIMIT sample, with global CMVN."""
    data = require_shared_data("speech/timit_sample")
    root = tmp_path_factory.mktemp("speech_run")
    cli = SeqlabCLI(args=["fit", "--config", BILSTM, *run_options(root, data), *TINY,
                          "--data.init_args.cmvn", "global", "--trainer.max_epochs", "1",
                          "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2"])
    return cli, next((root / "runs").rglob("last.ckpt")), data


def test_each_link_takes_effect(tmp_path, timit_sample):
    cli = SeqlabCLI(run=False, args=["--config", BILSTM, *run_options(tmp_path, timit_sample), *TINY,
                                     "--data.init_args.num_mel_bins", "24", "--data.init_args.deltas", "1",
                                     "--data.init_args.train_labels", "48", "--data.init_args.frame_shift_ms", "20",
                                     "--data.init_args.frame_length_ms", "30"])
    data, model = cli.datamodule, cli.model
    # each linked value differs from the task's default, so a dropped link would show
    assert model.hparams.feature_size == data.feature_size == 48
    assert model.model.stacking is None and model.model.encoder.input_size == 48
    assert model.labels == data.labels and len(data.labels) == 48 and model.model.head.num_labels == 48
    assert model.hparams.scoring_labels == data.scoring_labels and len(set(data.scoring_labels)) == 39
    assert len(model.score_names) == 39
    assert model.hparams.silence_labels == data.silence_labels == ["sil"]
    assert model.frame_shift == data.frame_shift == pytest.approx(0.02)
    assert model.frame_length == data.frame_length == pytest.approx(0.03)


def test_checkpoint_round_trip_and_predict_audio_without_config(tmp_path, trained):
    cli, last, data = trained
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    state = checkpoint["SpeechFrameData"]
    assert state["labels"] == cli.datamodule.labels and len(state["labels"]) == 39
    assert state["phone_map"]["table"]["q"] is None
    assert state["cmvn"]["mean"] == pytest.approx(cli.datamodule.cmvn_stats.mean.tolist())

    trained_model = cli.model.eval()
    restored = FrameClassification.load_from_checkpoint(last, map_location="cpu").eval()
    batch = next(iter(cli.datamodule.test_dataloader()))
    with torch.no_grad():
        torch.testing.assert_close(restored(batch), trained_model(batch))
        expected = {r["id"]: r for r in trained_model.predict_step(batch)}
    assert {r["id"]: r for r in restored.predict_step(batch)} == expected

    # predict with only the checkpoint (in-process for speed; a fresh CLI that sees no config), the training data
    # gone, a folder of audio files
    rows = {row["utt_id"]: row for row in table(data)}
    chosen = list(expected)[:3]
    audio = tmp_path / "incoming"
    audio.mkdir()
    for utterance in chosen:
        shutil.copy(data / "audio" / f"{utterance}.flac", audio)
    moved = tmp_path / "elsewhere.ckpt"
    shutil.copy(last, moved)
    out = tmp_path / "predictions.jsonl"
    SeqlabCLI(args=["predict", "--ckpt_path", str(moved), "--data.init_args.path", str(tmp_path / "gone"),
                    "--data.init_args.predict_path", str(audio), "--prediction_writer.output_path", str(out),
                    "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                    "--trainer.default_root_dir", str(tmp_path)])
    predictions = read_rows(out)
    assert sorted(Path(p["id"]).stem for p in predictions) == sorted(chosen)
    labels = set(cli.datamodule.labels)
    for prediction in predictions:
        utterance = Path(prediction["id"]).stem
        assert set(prediction) == {"id", "frame_shift", "frames", "segments"}
        samples = int(rows[utterance]["num_samples"])
        duration = samples / 16000
        assert len(prediction["frames"]) == FeatureConfig().num_frames(samples)
        assert set(prediction["frames"]) <= labels
        # the same frames as the in-process model: global CMVN and labels restored from the checkpoint
        assert prediction["frames"] == expected[utterance]["frames"]
        segments = prediction["segments"]
        assert segments[0]["start"] == 0.0 and segments[-1]["end"] == pytest.approx(duration, abs=1e-4)
        for before, after in zip(segments, segments[1:]):
            assert before["end"] == after["start"] and before["label"] != after["label"]
        assert all(s["start"] < s["end"] and s["label"] in labels for s in segments)
        # one segment per run of equal frame labels
        runs = [label for k, label in enumerate(prediction["frames"]) if k == 0 or label != prediction["frames"][k - 1]]
        assert [s["label"] for s in segments] == runs


def run_main(args: list[str], capsys) -> str:
    """``seqlab ARGS`` in-process: asserts exit status 2 and returns the one line on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("seqlab: error: ") and "Traceback" not in "\n".join(lines), lines
    return lines[-1]


def test_bad_inputs_give_one_line_errors_naming_the_file(tmp_path, timit_sample, capsys):
    ids = [row["utt_id"] for row in table(timit_sample) if row["split"] == "train"][:2]
    ids += [row["utt_id"] for row in table(timit_sample) if row["split"] == "dev"][:1]

    def fit(folder: Path, *extra: str) -> list[str]:
        return ["fit", "--config", BILSTM, *TINY, "--data.init_args.path", str(folder), "--trainer.fast_dev_run", "1",
                "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                "--trainer.default_root_dir", str(tmp_path), *extra]

    truncated = corpus_slice(timit_sample, tmp_path / "truncated", ids)
    audio = truncated / "audio" / f"{ids[1]}.flac"
    audio.write_bytes(audio.read_bytes()[:5000])
    line = run_main(fit(truncated), capsys)
    assert line.startswith(f"seqlab: error: {audio}: cannot read audio"), line

    # an alignment 0.5 s past the end of its audio, with on_bad_row=error
    overrun = corpus_slice(timit_sample, tmp_path / "overrun", ids)
    alignment = overrun / "phn" / f"{ids[0]}.phn"
    lines = alignment.read_text().splitlines()
    start, end, phone = lines[-1].split()
    lines[-1] = f"{start} {int(end) + 8000} {phone}"
    alignment.write_text("\n".join(lines) + "\n")
    line = run_main(fit(overrun, "--data.init_args.on_bad_row", "error"), capsys)
    assert line.startswith(f"seqlab: error: {alignment}: the alignment runs 0.5"), line
    assert "past the end of the audio" in line
    # (a phone missing from the phone map and on_bad_row=warn/skip: tests/data_modules/test_speech.py)


@pytest.mark.slow
def test_validation_agrees_on_one_and_two_processes(tmp_path, trained):
    _, last, data = trained
    results = tmp_path / "results.jsonl"
    common = ["validate", "--ckpt_path", str(last), "--results_path", str(results), "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path),
              "--trainer.accelerator", "cpu"]
    for extra in (["--trainer.devices", "1"], ["--trainer.devices", "2", "--trainer.strategy", "ddp"]):
        run = seqlab(*common, *extra)
        assert run.returncode == 0, run.stderr[-4000:]
    single, double = read_rows(results)
    assert single["world_size"] == 1 and double["world_size"] == 2
    # all 20 dev utterances counted once on 1 or 2 processes: identical frame accuracy and phone error rate
    for key in ("val/frame_accuracy", "val/per"):
        assert single["metrics"][key] == pytest.approx(double["metrics"][key], abs=1e-6), key
    assert 0.0 < single["metrics"]["val/frame_accuracy"] < 1.0 and single["metrics"]["val/per"] > 0.0
