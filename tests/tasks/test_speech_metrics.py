"""Speech scoring: edit distance and phone error rate on hand-made sequences against hand-computed values, phone
sequences from frame labels (runs collapsed, silence dropped), and the confusion matrix files."""

import csv
import random

import pytest
import torch

from seqlab.tasks.speech_metrics import PhoneErrorRate, edit_distance, phone_sequence, write_confusion_matrix

SIL = 0


def brute_force_distance(hypothesis, reference):
    """The fewest edits, by trying every alignment (small inputs only): recursion over the three operations."""
    if not hypothesis:
        return len(reference)
    if not reference:
        return len(hypothesis)
    return min(brute_force_distance(hypothesis[1:], reference) + 1,
               brute_force_distance(hypothesis, reference[1:]) + 1,
               brute_force_distance(hypothesis[1:], reference[1:]) + (hypothesis[0] != reference[0]))


@pytest.mark.parametrize("hypothesis,reference,distance", [
    ("abc", "abc", 0),
    ("axc", "abc", 1),  # substitution
    ("abxc", "abc", 1),  # insertion
    ("ac", "abc", 1),  # deletion
    ("", "abc", 3),
    ("abc", "", 3),
    ("kitten", "sitting", 3),
    ("ba", "ab", 2),  # a swap is two edits
])
def test_edit_distance_on_hand_made_sequences(hypothesis, reference, distance):
    assert edit_distance(list(hypothesis), list(reference)) == distance


def test_edit_distance_equals_brute_force():
    rng = random.Random(0)
    for _ in range(200):
        h = [rng.randrange(3) for _ in range(rng.randrange(6))]
        r = [rng.randrange(3) for _ in range(rng.randrange(6))]
        assert edit_distance(h, r) == brute_force_distance(h, r) == edit_distance(r, h)


def test_phone_sequence_collapses_runs_then_drops_silence():
    frames = [SIL, SIL, 1, 1, 1, 2, 2, SIL, 2, 2, 3, SIL, SIL]
    assert phone_sequence(frames) == [SIL, 1, 2, SIL, 2, 3, SIL]
    # runs are collapsed before silence is dropped: 2 sil 2 stays two phones
    assert phone_sequence(frames, frozenset({SIL})) == [1, 2, 2, 3]
    assert phone_sequence([], {SIL}) == [] and phone_sequence([SIL, SIL], {SIL}) == []
    assert phone_sequence(iter([4, 4, 5]), {SIL}) == [4, 5]  # any iterable


def test_phone_error_rate_against_a_hand_computed_value():
    silence = frozenset({SIL})
    # utterance 1: reference a b c d (frames with silence at the ends); hypothesis substitutes c -> e and inserts f
    reference_1 = phone_sequence([SIL, 1, 1, 2, 3, 3, 4, SIL], silence)  # [1, 2, 3, 4]
    hypothesis_1 = phone_sequence([SIL, SIL, 1, 2, 2, 5, 4, 6, 6, SIL], silence)  # [1, 2, 5, 4, 6]: 1 sub + 1 ins
    # utterance 2: reference a a (two phones of the same label, split by a pause); hypothesis one run of a:
    # 1 deletion; the silence in the hypothesis counts for nothing
    reference_2 = [1, 1]
    hypothesis_2 = phone_sequence([1, 1, 1, 1, SIL], silence)  # [1]
    # utterance 3: perfect, but with extra silence frames and longer runs
    reference_3 = phone_sequence([2, 3, SIL, 7], silence)
    hypothesis_3 = phone_sequence([SIL, 2, 2, 2, 3, 3, SIL, SIL, 7, 7], silence)
    metric = PhoneErrorRate()
    metric.update([hypothesis_1], [reference_1])
    metric.update([hypothesis_2, hypothesis_3], [reference_2, reference_3])
    # errors 2 + 1 + 0 over reference phones 4 + 2 + 3
    assert metric.compute().item() == pytest.approx(3 / 9)
    assert metric.errors.item() == 3 and metric.reference_length.item() == 9
    empty = PhoneErrorRate()
    empty.update([[1, 2]], [[]])  # no reference phones: the insertions over a length clamped to 1
    assert empty.compute().item() == pytest.approx(2.0)


def test_confusion_matrix_files(tmp_path):
    matrix = torch.tensor([[5, 1, 0], [0, 3, 2], [0, 0, 0]])
    csv_path, png_path = write_confusion_matrix(matrix, ["aa", "b", "sil"], tmp_path / "sub" / "confusion_test")
    rows = list(csv.reader(csv_path.open()))
    assert rows == [["reference\\predicted", "aa", "b", "sil"], ["aa", "5", "1", "0"], ["b", "0", "3", "2"],
                    ["sil", "0", "0", "0"]]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert csv_path.parent == png_path.parent == tmp_path / "sub"  # the folder is created
