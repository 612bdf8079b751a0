"""FrameClassification: gradients reach every parameter with SpecAugment + stacking + BiLSTM + attention, logits for
real frames unchanged by extra padding, frame accuracy and PER on the scoring label set against hand-computed
values, and predict segments (boundaries between frame centres, tiling [0, duration])."""

import pytest
import torch
import torch.nn.functional as F

from seqlab.models import BiLSTMEncoder, ContextWindowMLP, FrameClassifier, FrameStacking, MultiHeadSelfAttention
from seqlab.models import SpecAugment
from seqlab.models.frames import IGNORE_INDEX
from seqlab.tasks import FrameClassification

LABELS = ["aa", "ao", "b", "h#"]  # training labels (48-phone style)
SCORING = ["aa", "aa", "b", "sil"]  # ao folds to aa; h# is silence
AA, AO, B, H = range(4)


def model(stacking=True, attention=True, augment=True, encoder=None, **options) -> FrameClassification:
    torch.manual_seed(0)
    return FrameClassification(
        feature_size=6, labels=LABELS, scoring_labels=SCORING, silence_labels=["sil"],
        augment=(lambda size: SpecAugment(size, freq_masks=1, freq_mask_width=2, time_masks=1, time_mask_width=2))
        if augment else None,
        stacking=(lambda size: FrameStacking(size, stack=2)) if stacking else None,
        encoder=encoder or (lambda size: BiLSTMEncoder(size, hidden_size=8, num_layers=2, dropout=0.0)),
        attention=(lambda size: MultiHeadSelfAttention(size, num_heads=2, dropout=0.0)) if attention else None,
        head=lambda size, labels: FrameClassifier(size, labels, hidden_size=5),
        **options,
    )


def batch(lengths=(7, 4), seed=0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    time = max(lengths)
    mask = torch.arange(time).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    label_ids = torch.randint(0, 4, (len(lengths), time), generator=generator).masked_fill(~mask, IGNORE_INDEX)
    return {
        "features": torch.randn(len(lengths), time, 6, generator=generator) * mask.unsqueeze(-1),
        "mask": mask, "lengths": torch.tensor(lengths), "label_ids": label_ids,
        "index": torch.arange(len(lengths)), "ids": [f"u{i}" for i in range(len(lengths))],
        "phone_ids": [[AA, B]] * len(lengths), "durations": torch.tensor([0.1] * len(lengths), dtype=torch.float64),
    }


def test_gradients_reach_every_parameter_with_stacking_bilstm_and_attention():
    task = model().train()
    example = batch()
    logits = task(example)
    assert logits.shape == (2, 7, 4)  # every input frame, at the input rate despite stacking by 2
    task.model.loss(logits, example).backward()
    names = [name for name, _ in task.named_parameters()]
    assert any(n.startswith("model.attention.") for n in names) and any(n.startswith("model.encoder.") for n in names)
    for name, parameter in task.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_network_loss_is_the_training_step_loss(mode):
    """The plain-torch network's loss is the task's training loss: the same value under the same seed, with
    SpecAugment's random masks and dropout (train) or without (eval); in eval mode also the cross-entropy over the
    labelled real frames, computed here from the logits."""
    task = model(encoder=lambda size: BiLSTMEncoder(size, hidden_size=8, num_layers=2, dropout=0.3),
                 input_dropout=0.2).train(mode == "train")
    example = batch(lengths=(7, 4, 5))
    example["label_ids"][0, 2] = IGNORE_INDEX  # a real frame without a label
    torch.manual_seed(3)
    step = task.training_step(example, 0)
    torch.manual_seed(3)
    logits = task.model(example)
    plain = task.model.loss(logits, example)
    assert torch.equal(step, plain)
    if mode == "eval":
        labelled = example["mask"] & (example["label_ids"] != IGNORE_INDEX)  # (B, T)
        expected = F.cross_entropy(logits[labelled], example["label_ids"][labelled])
        torch.testing.assert_close(plain, expected)


def test_the_network_holds_every_weight_and_old_weight_names_move_into_it():
    """``self.model`` holds all of the task's parameters; a state dict saved with the names of before (``encoder.``,
    ``attention.``, ``head.`` at the top) loads into it through ``state_key_moves``."""
    task = model()
    assert {name for name, _ in task.named_parameters()} == {f"model.{n}" for n, _ in task.model.named_parameters()}
    old = {name[len("model."):]: torch.randn_like(value) for name, value in task.state_dict().items()
           if name.startswith("model.")}
    assert {name.split(".")[0] for name in old} == {"encoder", "attention", "head"}
    checkpoint = {"state_dict": old}
    fresh = model()
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    for name, value in old.items():
        assert torch.equal(fresh.state_dict()[f"model.{name}"], value), name


@pytest.mark.parametrize("parts", [
    {"stacking": True, "attention": True},
    {"stacking": False, "attention": False, "encoder": lambda size: ContextWindowMLP(size, 2, 8, dropout=0.0)},
])
def test_logits_of_real_frames_unchanged_by_extra_padding(parts):
    task = model(**parts).eval()  # eval: SpecAugment is the identity
    example = batch(lengths=(7, 3))
    longer = dict(example)
    extra = 5
    longer["features"] = torch.cat([example["features"], torch.zeros(2, extra, 6)], 1)
    longer["mask"] = torch.cat([example["mask"], torch.zeros(2, extra, dtype=torch.bool)], 1)
    with torch.no_grad():
        short, long = task(example), task(longer)
    torch.testing.assert_close(long[:, :7][example["mask"]], short[example["mask"]], atol=1e-5, rtol=1e-5)


def test_frame_accuracy_and_per_are_scored_on_the_folded_labels():
    task = model(augment=False)
    gold = torch.tensor([[H, AA, AO, AO, B, H, IGNORE_INDEX], [AA, B, B, IGNORE_INDEX, IGNORE_INDEX,
                                                                IGNORE_INDEX, IGNORE_INDEX]])
    predicted = torch.tensor([[H, AO, AA, B, B, H, B], [B, B, B, AA, AA, AA, AA]])
    mask = torch.tensor([[1] * 7, [1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    example = {"features": torch.zeros(2, 7, 6), "mask": mask, "lengths": torch.tensor([7, 3]), "label_ids": gold,
               "phone_ids": [[H, AA, AO, B, H], [AA, B]], "index": torch.arange(2), "ids": ["a", "b"],
               "durations": torch.tensor([0.085, 0.045], dtype=torch.float64)}
    task.forward = lambda _: F.one_hot(predicted, 4).float() * 10  # the predictions above
    assert task.score_names == ["aa", "b", "sil"]
    assert task.to_scoring(gold[0]).tolist() == [2, 0, 0, 0, 1, 2, IGNORE_INDEX]
    hypotheses, references = task.phone_sequences(task.to_scoring(predicted), example)
    # utterance 1: reference h# aa ao b h# -> sil aa aa b sil -> (collapsed, no silence) aa b; hypothesis per frame
    # sil aa aa b b sil b -> aa b b (an insertion). Utterance 2: reference aa b; hypothesis b b b -> b (a deletion)
    assert references == [[0, 1], [0, 1]] and hypotheses == [[0, 1, 1], [1]]
    with pytest.warns(UserWarning):  # self.log without a trainer: only the metric states matter here
        task.shared_step(example, "val")
    # frames: utterance 1 has 6 labelled, 5 right once folded (ao for aa counts as right, b for aa does not);
    # utterance 2 has 3, 2 right
    assert task.metrics["val_metrics"].compute()["val/frame_accuracy"].item() == pytest.approx(7 / 9)
    assert task.phone_error["val_per"].compute().item() == pytest.approx(2 / 4)


def test_predict_segments_tile_the_utterance_with_boundaries_between_frame_centres():
    task = model(augment=False, frame_shift=0.01, frame_length=0.025)
    predicted = torch.tensor([[H, H, AA, AA, AA, B], [B, B, B, B, H, H]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    task.forward = lambda _: F.one_hot(predicted, 4).float()
    example = {"mask": mask, "lengths": torch.tensor([6, 4]), "index": torch.tensor([3, 4]), "ids": ["x", "y"],
               "durations": torch.tensor([0.0751, 0.055], dtype=torch.float64)}
    first, second = task.predict_step(example)
    assert first["id"] == "x" and first["index"] == 3 and first["frame_shift"] == 0.01
    assert first["frames"] == ["h#", "h#", "aa", "aa", "aa", "b"]
    # frame i is centred on i * 0.01 + 0.0125: the h#/aa boundary is halfway between frames 1 and 2 (0.0275 s)
    assert first["segments"] == [{"label": "h#", "start": 0.0, "end": 0.0275},
                                 {"label": "aa", "start": 0.0275, "end": 0.0575},
                                 {"label": "b", "start": 0.0575, "end": 0.0751}]
    assert second["frames"] == ["b"] * 4  # padding frames are not reported
    assert second["segments"] == [{"label": "b", "start": 0.0, "end": 0.055}]
