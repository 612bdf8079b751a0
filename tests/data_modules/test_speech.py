"""SpeechFrameData on tiny synthetic corpora written into tmp_path: frame labels from alignments (centre rule, gaps,
deleted phones, folding), other sample rates, per-utterance and global CMVN (fitted on train, kept in the state
dict), collate, the other sources (folder, JSONL manifest in seconds), and one-line errors naming the file."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from seqlab import SeqlabError
from seqlab.data.utterances import entry_kind
from seqlab.data_modules import SpeechFrameData
from seqlab.encoders.audio import IGNORE_INDEX, FeatureConfig, read_audio

RATE = 16000
#: a tiny folding table in the format of phones.60-48-39.map: phone, 48-label, 39-label; q deleted
PHONE_MAP = "h#\th#\tsil\naa\taa\taa\nao\tao\taa\nb\tb\tb\nq\n"
LABELS_48 = ["aa", "ao", "b", "h#"]  # sorted training labels at the 48 level
AA, AO, B, H = range(4)


def signal(samples: int, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """(N,) noise plus two tones: some structure for the features, different per seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    return (0.05 * rng.standard_normal(samples) + 0.2 * np.sin(2 * np.pi * (300 + 50 * seed) * t)
            + 0.1 * np.sin(2 * np.pi * 1200 * t)).astype(np.float32)


def write_corpus(root: Path, utterances: list[tuple], phone_map: str | None = PHONE_MAP) -> Path:
    """``utterances``: (utt_id, split, waveform, rate, phn text); files as in the TIMIT sample (audio/, phn/,
    utterances.tsv, phones.60-48-39.map)."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "phn").mkdir(exist_ok=True)
    rows = ["utt_id\tsplit"]
    for utterance, split, waveform, rate, phn in utterances:
        soundfile.write(root / "audio" / f"{utterance}.wav", waveform, rate)
        (root / "phn" / f"{utterance}.phn").write_text(phn)
        rows.append(f"{utterance}\t{split}")
    (root / "utterances.tsv").write_text("\n".join(rows) + "\n")
    if phone_map is not None:
        (root / "phones.60-48-39.map").write_text(phone_map)
    return root


def simple(utterance: str, split: str, samples: int = 4000, seed: int = 0) -> tuple:
    """An utterance with h# / aa / b / h# segments covering it all."""
    third = samples // 3
    phn = f"0 400 h#\n400 {third} aa\n{third} {2 * third} b\n{2 * third} {samples} h#\n"
    return utterance, split, signal(samples, seed=seed), RATE, phn


def data(root: Path, **options) -> SpeechFrameData:
    options.setdefault("train_labels", "48")
    return SpeechFrameData(str(root), cache_dir=str(root / "cache"), batch_size=2, **options)


def encoded(module: SpeechFrameData, split: str = "train") -> dict:
    return module.encoded(split).columns


# --------------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("uncovered", [None, "h#"])
def test_frame_labels_from_an_alignment_follow_the_centre_rule(tmp_path, uncovered):
    # 1800 samples: 9 frames centred at 200, 360, ..., 1480. aa [0, 520), b [520, 1000), a gap, ao [1160, 1300),
    # the deleted q [1300, 1400), then nothing: frame 2 is centred exactly on the aa/b boundary, frame 5 on the end
    # of b (in the gap), frame 6 on the start of ao, frame 7 in q, frame 8 past the last segment
    phn = "0 520 aa\n520 1000 b\n1160 1300 ao\n1300 1400 q\n"
    root = write_corpus(tmp_path, [("u1", "train", signal(1800), RATE, phn), simple("d1", "dev")])
    module = data(root, uncovered_label=uncovered)
    columns = encoded(module)
    gap = IGNORE_INDEX if uncovered is None else H
    assert columns["length"][0] == 9
    assert columns["label_ids"][0].tolist() == [AA, AA, B, B, B, gap, AO, IGNORE_INDEX, gap]
    assert columns["phone_ids"][0].tolist() == [AA, B, AO]  # q is left out of the reference phones
    assert module.labels == LABELS_48
    assert module.scoring_labels == ["aa", "aa", "b", "sil"]  # ao folds to aa at the 39-phone level
    assert module.silence_labels == ["sil"]
    assert columns["duration"][0] == pytest.approx(1800 / RATE)


def test_eight_khz_audio_is_resampled_and_its_alignment_read_at_its_own_rate(tmp_path):
    # the same utterance at 16 kHz and at 8 kHz, each with the alignment in its own samples
    seconds, boundary = 0.4, 0.205
    high = signal(int(seconds * RATE))
    low = high[::2].copy()  # 8 kHz (aliased noise: fine for labels; features are checked in test_audio)
    phn = lambda rate: f"0 {int(boundary * rate)} aa\n{int(boundary * rate)} {int(seconds * rate)} b\n"  # noqa: E731
    root = write_corpus(tmp_path, [("high", "train", high, RATE, phn(RATE)), ("low", "train", low, 8000, phn(8000)),
                                   simple("d1", "dev")])
    columns = encoded(data(root, cmvn="none"))
    frames = FeatureConfig().num_frames(int(seconds * RATE))
    assert columns["length"] == [frames, frames]
    assert columns["duration"] == pytest.approx([seconds, seconds])
    centres = FeatureConfig().frame_centres(frames) / RATE
    expected = np.where(centres < boundary, AA, B)
    for labels in columns["label_ids"]:
        np.testing.assert_array_equal(labels, expected)


# --------------------------------------------------------------------------------------------- CMVN
def test_per_utterance_cmvn_over_real_frames_and_zero_padding(tmp_path):
    root = write_corpus(tmp_path, [simple("t1", "train", 4000), simple("t2", "train", 6400, seed=1),
                                   simple("d1", "dev", 3000), simple("d2", "dev", 5000, seed=2)])
    module = data(root, cmvn="utterance", deltas=1)
    module.setup("fit")
    batch = next(iter(module.val_dataloader()))
    features, mask, lengths = batch["features"], batch["mask"], batch["lengths"]
    assert features.shape[-1] == 80 and module.feature_size == 80
    assert mask.dtype == torch.bool and mask.sum(1).tolist() == lengths.tolist()
    assert sorted(lengths.tolist()) == [FeatureConfig().num_frames(3000), FeatureConfig().num_frames(5000)]
    assert min(lengths) < max(lengths)
    for row, length in enumerate(lengths.tolist()):
        real = features[row, :length].double()
        torch.testing.assert_close(real.mean(0), torch.zeros(80, dtype=torch.float64), atol=1e-4, rtol=0)
        assert ((real.std(0, unbiased=False) - 1).abs() < 2e-3).all()
        assert (features[row, length:] == 0).all()
        assert (batch["label_ids"][row, length:] == IGNORE_INDEX).all()


def test_global_cmvn_is_fitted_on_train_and_kept_in_the_state_dict(tmp_path):
    utterances = [simple("t1", "train", 4000), simple("t2", "train", 6400, seed=1), simple("t3", "train", 2400, 3),
                  simple("d1", "dev", 3000, seed=4)]
    root = write_corpus(tmp_path, utterances)
    module = data(root, cmvn="global")
    module.setup("fit")
    config = FeatureConfig()
    train = np.concatenate([config(torch.from_numpy(read_audio(str(root / "audio" / f"{u[0]}.wav"))[0])).numpy()
                            for u in utterances if u[1] == "train"])  # (all train frames, 40)
    stats = module.cmvn_stats
    np.testing.assert_allclose(stats.mean, train.mean(0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(stats.std, train.std(0), rtol=1e-4, atol=1e-4)

    # the batches are normalised with the train statistics (dev is not itself zero-mean), padding stays 0
    batch = module.collate([module.encoded("validation")[0], module.encoded("train")[1]])
    dev = config(torch.from_numpy(read_audio(str(root / "audio" / "d1.wav"))[0])).numpy()
    np.testing.assert_allclose(batch["features"][0, :len(dev)].numpy(), (dev - train.mean(0)) / train.std(0),
                               atol=1e-3)
    assert (batch["features"][0, len(dev):] == 0).all()

    # restored from the state dict, the statistics are used as they are, not fitted again
    state = module.state_dict()
    assert state["cmvn"]["mean"] == pytest.approx(stats.mean.tolist())
    state["cmvn"]["mean"] = [m + 1.0 for m in state["cmvn"]["mean"]]
    restored = data(root, cmvn="global")
    restored.load_state_dict(json.loads(json.dumps(state)))  # as stored in a checkpoint: plain lists
    restored.setup("fit")
    np.testing.assert_allclose(restored.cmvn_stats.mean, stats.mean + 1.0, rtol=1e-6)
    assert restored.labels == module.labels
    shifted = restored.collate([restored.encoded("validation")[0]])
    torch.testing.assert_close(shifted["features"][0], batch["features"][0, :len(dev)] - torch.from_numpy(
        1.0 / stats.std), atol=1e-3, rtol=0)
    # per-utterance CMVN keeps no statistics
    per_utterance = data(root, cmvn="utterance")
    per_utterance.prepare_encoders()
    assert per_utterance.state_dict()["cmvn"] is None


# --------------------------------------------------------------------------------------------- sources
def test_jsonl_manifest_in_seconds_and_split_folders_label_like_the_table(tmp_path):
    table = write_corpus(tmp_path / "table", [simple("t1", "train", 4800), simple("d1", "dev", 3200, seed=1)])
    expected = encoded(data(table))
    # the same audio, alignments in seconds in JSONL manifests
    manifests = tmp_path / "manifest"
    manifests.mkdir()
    for split, name in (("train", "t1"), ("dev", "d1")):
        segments = [[int(a) / RATE, int(b) / RATE, p] for a, b, p in
                    (line.split() for line in (table / "phn" / f"{name}.phn").read_text().splitlines())]
        row = {"audio": str(table / "audio" / f"{name}.wav"), "segments": segments, "id": name}
        (manifests / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    from_manifest = encoded(data(manifests, segment_units="seconds", phone_map=str(table / "phones.60-48-39.map")))
    assert from_manifest["id"] == ["t1"]
    np.testing.assert_array_equal(from_manifest["label_ids"][0], expected["label_ids"][0])
    np.testing.assert_array_equal(from_manifest["features"][0], expected["features"][0])
    # split folders with each .phn beside its audio
    folders = tmp_path / "folders"
    for split, name in (("train", "t1"), ("dev", "d1")):
        (folders / split).mkdir(parents=True)
        for suffix, kind in ((".wav", "audio"), (".phn", "phn")):
            (folders / split / f"{name}{suffix}").write_bytes((table / kind / f"{name}{suffix}").read_bytes())
    (folders / "phones.60-48-39.map").write_text(PHONE_MAP)
    from_folders = encoded(data(folders))
    np.testing.assert_array_equal(from_folders["label_ids"][0], expected["label_ids"][0])


def test_split_folders_and_manifests_without_an_extension_are_found_by_the_split_source(tmp_path):
    table = write_corpus(tmp_path / "table", [simple("t1", "train", 4800), simple("d1", "dev", 3200, seed=1)])
    expected = encoded(data(table))
    # folders named like split files (train.16k/, dev.16k/), each .phn beside its audio
    folders = tmp_path / "folders"
    for split, name in (("train.16k", "t1"), ("dev.16k", "d1")):
        (folders / split).mkdir(parents=True)
        for suffix, kind in ((".wav", "audio"), (".phn", "phn")):
            (folders / split / f"{name}{suffix}").write_bytes((table / kind / f"{name}{suffix}").read_bytes())
    from_folders = data(folders, phone_map=str(table / "phones.60-48-39.map"))
    assert from_folders.source.files("validation") == [folders / "dev.16k"]
    np.testing.assert_array_equal(encoded(from_folders)["label_ids"][0], expected["label_ids"][0])
    # JSONL manifests named "train" and "dev", audio relative to them: recognised by their content
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for split, name in (("train", "t1"), ("dev", "d1")):
        segments = [line.split() for line in (table / "phn" / f"{name}.phn").read_text().splitlines()]
        row = {"audio": f"../table/audio/{name}.wav", "segments": [[int(a), int(b), p] for a, b, p in segments]}
        (manifests / split).write_text(json.dumps(row) + "\n")
    assert entry_kind(manifests / "train") == "manifest" and entry_kind(table / "utterances.tsv") == "table"
    from_manifest = data(manifests, phone_map=str(table / "phones.60-48-39.map"))
    assert from_manifest.source.files("train") == [manifests / "train"]
    columns = encoded(from_manifest)
    np.testing.assert_array_equal(columns["label_ids"][0], expected["label_ids"][0])
    np.testing.assert_array_equal(columns["features"][0], expected["features"][0])


# --------------------------------------------------------------------------------------------- bad input
def one_line_error(module: SpeechFrameData) -> str:
    with pytest.raises(SeqlabError) as error:
        module.setup("fit")
    message = str(error.value)
    assert "\n" not in message, message
    return message


def test_alignment_past_the_end_of_the_audio_follows_on_bad_row(tmp_path, caplog):
    # 4000 samples (0.25 s); b runs to 4500 and a last aa segment lies wholly past the end
    phn = "0 2000 aa\n2000 4500 b\n4500 5000 aa\n"
    root = write_corpus(tmp_path, [("long", "train", signal(4000), RATE, phn), simple("t2", "train", seed=1),
                                   simple("d1", "dev")])
    message = one_line_error(data(root, on_bad_row="error"))
    alignment = root / "phn" / "long.phn"
    assert message.startswith(f"{alignment}: the alignment runs 0.0625 s past the end of the audio (0.2500 s)")
    assert "on_bad_row" in message

    # warn (the default, as alignment_overrun: clip was): clipped at the end of the audio, with a warning
    for options in ({"on_bad_row": "warn"}, {}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            columns = encoded(data(root, **options))
        assert any("clipped 1 alignments" in str(w.message) and str(alignment) in str(w.message) for w in caught)
        assert columns["id"] == ["long", "t2"]
        centres = FeatureConfig().frame_centres(columns["length"][0])
        np.testing.assert_array_equal(columns["label_ids"][0], np.where(centres < 2000, AA, B))
        assert columns["phone_ids"][0].tolist() == [AA, B]  # the segment past the end is gone

    # skip: the utterance is dropped, and the count logged
    with caplog.at_level("INFO"):
        columns = encoded(data(root, on_bad_row="skip"))
    assert columns["id"] == ["t2"]
    assert "dropped 1 bad rows of 2" in caplog.text and str(alignment) in caplog.text


def test_checkpoints_with_alignment_overrun_load_as_on_bad_row():
    assert SpeechFrameData.migrate_options({"alignment_overrun": "clip", "cmvn": "global"}) == {
        "on_bad_row": "warn", "cmvn": "global"}
    assert SpeechFrameData.migrate_options({"alignment_overrun": "error"}) == {"on_bad_row": "error"}


def test_phone_missing_from_the_phone_map_names_the_alignment_line(tmp_path):
    phn = "0 2000 aa\n2000 3000 zz\n3000 4000 b\n"
    root = write_corpus(tmp_path, [("odd", "train", signal(4000), RATE, phn), simple("d1", "dev")])
    message = one_line_error(data(root))
    assert message == (f"{root / 'phn' / 'odd.phn'}:2: phone 'zz' is not in the phone map "
                       f"{root / 'phones.60-48-39.map'}")


def test_unreadable_or_truncated_audio_in_the_corpus_names_the_file(tmp_path):
    root = write_corpus(tmp_path, [simple("t1", "train"), simple("bad", "train"), simple("d1", "dev")])
    audio = root / "audio" / "bad.wav"
    audio.write_bytes(audio.read_bytes()[:3000])
    message = one_line_error(data(root))
    assert message.startswith(f"{audio}: truncated audio file")
    audio.write_bytes(b"RIFF garbage")
    message = one_line_error(data(root))
    assert message.startswith(f"{audio}: cannot read audio")


def test_malformed_alignments_and_too_short_audio_are_one_line_errors(tmp_path):
    cases = {
        "0 2000\n": ":1: expected 'start_sample end_sample phone'",
        "0 2000 aa\n1500 3000 b\n": ":2: segment starts at 1500, before the previous one ends (2000)",
        "0 x aa\n": ":1: start and end must be sample numbers",
        "100 100 aa\n": ":1: segment end 100 is not after its start 100",
    }
    for number, (phn, expected) in enumerate(cases.items()):
        root = write_corpus(tmp_path / f"case{number}", [("u", "train", signal(4000), RATE, phn), simple("d", "dev")])
        message = one_line_error(data(root))
        assert message.startswith(f"{root / 'phn' / 'u.phn'}{expected}"), message
    root = write_corpus(tmp_path / "short", [("s", "train", signal(300), RATE, "0 300 aa\n"), simple("d", "dev")])
    assert one_line_error(data(root)).startswith(f"{root / 'audio' / 's.wav'}: 0.019 s of audio is shorter than")
