"""Seq2SeqTranslation: loss and gradients, decoding through the task, and BLEU/chrF exactly as sacrebleu's command
line computes them, each sentence counted once, also when gathered from two (forked, gloo) processes."""

from __future__ import annotations

import functools
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seqlab.data_modules import TranslationData
from seqlab.models import (
    AdditiveAttention,
    BeamSearch,
    BiLSTMEncoder,
    GreedySearch,
    LSTMDecoder,
    PretrainedWordEmbedding,
    WordEmbedding,
)
from seqlab.tasks import Seq2SeqTranslation
from seqlab.tasks.translation import corpus_scores, gather_once
from tests.data_modules.test_translation import ENGLISH, GERMAN, write

SACREBLEU = Path(sys.executable).parent / "sacrebleu"
# the task logs outside a Trainer here
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


@pytest.fixture
def tiny_data(tmp_path) -> TranslationData:
    write(tmp_path / "train.de", GERMAN)
    write(tmp_path / "train.en", ENGLISH)
    write(tmp_path / "val.de", GERMAN[:3])
    write(tmp_path / "val.en", ENGLISH[:3])
    data = TranslationData(path=str(tmp_path), cache_dir=str(tmp_path / "cache"), max_vocab_size=200, batch_size=6)
    data.setup("fit")
    return data


def task_for(data: TranslationData, attention=True, tie=False, **kwargs) -> Seq2SeqTranslation:
    torch.manual_seed(0)
    kwargs.setdefault("source_embedding", functools.partial(WordEmbedding, embedding_dim=16))
    task = Seq2SeqTranslation(
        data.source_vocab_size, data.target_vocab_size, data.source_padding_idx, data.target_padding_idx,
        data.bos_index, data.eos_index,
        encoder=functools.partial(BiLSTMEncoder, hidden_size=16),
        decoder=functools.partial(LSTMDecoder, embedding_dim=16, hidden_size=24, tie_embeddings=tie,
                                  attention=functools.partial(AdditiveAttention, attention_size=8) if attention
                                  else None),
        search=GreedySearch(1.0, 3), beam_search=BeamSearch(3, max_length_ratio=1.0, max_length_offset=3),
        target_encoder=data.target_encoder, **kwargs,
    )
    return task


@pytest.mark.parametrize("attention,tie", [(True, False), (False, True)])
def test_loss_is_label_smoothed_and_gradients_reach_every_parameter(tiny_data, attention, tie):
    task = task_for(tiny_data, attention, tie)
    batch = next(iter(tiny_data.train_dataloader()))
    loss = task.shared_step(batch, "train")
    gold = batch["target_ids"][:, 1:]
    assert torch.isfinite(loss)
    loss.backward()
    for name, parameter in task.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    # label smoothing: the loss is (1 - e) NLL + e * mean over the vocabulary of -log p
    task.eval()
    with torch.no_grad():
        logits = task(batch).logits
        log_probs = logits.log_softmax(-1)
        real = gold != task.model.target_padding_idx
        nll = -log_probs.gather(-1, gold.unsqueeze(-1)).squeeze(-1)[real].mean()
        uniform = -log_probs.mean(-1)[real].mean()
        expected = (1 - 0.1) * nll + 0.1 * uniform
        assert float(task.shared_step(batch, "train")) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_network_loss_is_the_training_step_loss(tiny_data, mode):
    """The plain-torch network's loss on a real batch is the task's training loss: the same value under the same
    seed, dropout active (train) or not (eval)."""
    task = task_for(tiny_data).train(mode == "train")
    batch = next(iter(tiny_data.train_dataloader()))
    torch.manual_seed(3)
    step = task.training_step(batch, 0)
    torch.manual_seed(3)
    plain = task.model.loss(task.model(batch), batch)
    assert torch.equal(step, plain)  # and test_loss_is_label_smoothed... checks that loss against its formula


def test_the_network_holds_every_weight_and_old_weight_names_move_into_it(tiny_data):
    """``self.model`` holds all of the task's parameters; a state dict saved with the names of before (``embedder.``,
    ``encoder.``, ``decoder.`` at the top) loads into it through ``state_key_moves``."""
    task = task_for(tiny_data)
    assert {name for name, _ in task.named_parameters()} == {f"model.{n}" for n, _ in task.model.named_parameters()}
    old = {name[len("model."):]: torch.randn_like(value) for name, value in task.state_dict().items()}
    checkpoint = {"state_dict": old}
    fresh = task_for(tiny_data)
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    for name, value in old.items():
        assert torch.equal(fresh.state_dict()[f"model.{name}"], value), name


def test_linked_word_vectors_start_the_networks_source_embedding(tiny_data):
    vectors = torch.randn(tiny_data.source_vocab_size, 16, generator=torch.Generator().manual_seed(0))  # (V, D)
    vectors[tiny_data.source_padding_idx] = 0.0
    task = task_for(tiny_data, source_embedding=functools.partial(PretrainedWordEmbedding, embedding_dim=16),
                    word_vectors=vectors)
    assert task.word_embedder is task.model.embedder.words
    assert torch.equal(task.model.embedder.words.embedding.weight, vectors)


def test_target_encoder_detokenizes_and_stays_out_of_the_hyperparameters(tiny_data):
    task = task_for(tiny_data).eval()
    assert "target_encoder" not in task.hparams and "word_vectors" not in task.hparams
    batch = next(iter(tiny_data.val_dataloader()))
    with torch.no_grad():
        hypotheses = task.model.translate(batch, task.search)
    tokens, lengths = hypotheses.tokens[:, 0].tolist(), hypotheses.lengths[:, 0].tolist()
    assert task.detokenize(hypotheses) == [tiny_data.target_encoder.decode(row[:n]) for row, n in zip(tokens, lengths)]
    task.target_encoder = None
    with pytest.raises(RuntimeError, match="no target_encoder"):
        task.detokenize(hypotheses)


def test_evaluation_steps_collect_one_hypothesis_per_sentence(tiny_data):
    task = task_for(tiny_data).eval()
    with torch.no_grad():
        for batch in tiny_data.val_dataloader():
            task.shared_step(batch, "test")
    greedy, beam = task._outputs["test_greedy"], task._outputs["test_beam"]
    assert sorted(i for i, _, _ in greedy) == sorted(i for i, _, _ in beam) == [0, 1, 2]
    assert {r for _, _, r in greedy} == set(ENGLISH[:3])
    for records in (greedy, beam):
        assert all(isinstance(h, str) for _, h, _ in records)
    records = task.predict_step(next(iter(tiny_data.val_dataloader())))
    assert {r["source"] for r in records} == set(GERMAN[:3]) and all("translation" in r for r in records)


def perturbed(references: list[str], seed: int = 0) -> list[str]:
    """Hypotheses of mid-range BLEU: words dropped, swapped or replaced at random."""
    rng = random.Random(seed)
    out = []
    for reference in references:
        words = reference.split()
        words = [w for w in words if rng.random() > 0.15] or words[:1]
        if len(words) > 3 and rng.random() < 0.5:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        out.append(" ".join("the" if rng.random() < 0.1 else w for w in words))
    return out


@pytest.fixture(scope="module")
def scored_files(tmp_path_factory):
    import gzip
    import itertools

    from tests.conftest import require_shared_data

    source = require_shared_data("translation/multi30k/raw") / "val.en.gz"
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        references = [line.rstrip("\n") for line in itertools.islice(handle, 300)]
    hypotheses = perturbed(references)
    folder = tmp_path_factory.mktemp("bleu")
    (folder / "ref.txt").write_text("\n".join(references) + "\n", encoding="utf-8")
    (folder / "hyp.txt").write_text("\n".join(hypotheses) + "\n", encoding="utf-8")
    return folder, hypotheses, references


def test_bleu_and_chrf_equal_the_sacrebleu_command_line(scored_files):
    folder, hypotheses, references = scored_files
    result = subprocess.run([str(SACREBLEU), str(folder / "ref.txt"), "-i", str(folder / "hyp.txt"), "-m", "bleu",
                             "chrf", "-b", "-w", "4"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    command_bleu, command_chrf = (float(v.strip(" ,")) for v in result.stdout.strip().strip("[]").split())
    # records out of order and with duplicates (a padded shard), as the evaluation steps may leave them
    records = [(i, h, r) for i, (h, r) in enumerate(zip(hypotheses, references))]
    shuffled = records[::-1] + records[:7]
    pairs = gather_once(shuffled)
    bleu, chrf, bleu_lowercase, signature = corpus_scores([h for h, _ in pairs], [r for _, r in pairs])
    assert 20 < bleu.score < 80
    assert round(bleu.score, 4) == pytest.approx(command_bleu, abs=1e-4)
    assert round(chrf.score, 4) == pytest.approx(command_chrf, abs=1e-4)
    assert "tok:13a" in signature and "smooth:exp" in signature and "case:mixed" in signature
    lowercased = subprocess.run([str(SACREBLEU), str(folder / "ref.txt"), "-i", str(folder / "hyp.txt"), "-m", "bleu",
                                 "-lc", "-b", "-w", "4"], capture_output=True, text=True, timeout=120)
    assert lowercased.returncode == 0, lowercased.stderr
    assert round(bleu_lowercase.score, 4) == pytest.approx(float(lowercased.stdout.strip()), abs=1e-4)
    assert bleu_lowercase.score > bleu.score  # "the" put where a reference starts with "The" only counts lower-cased


def _gather_worker(rank: int, world: int, port: int, records: list, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        # each rank its share, and both ranks the first record again (as a padded shard would)
        mine = records[rank::world] + records[:1]
        pairs = gather_once(mine)
        Path(out_dir, f"{rank}.txt").write_text("\n".join(h for h, _ in pairs), encoding="utf-8")
    finally:
        dist.destroy_process_group()


def test_gathering_over_two_processes_counts_each_sentence_once(tmp_path, scored_files):
    import socket

    _, hypotheses, references = scored_files
    records = [(i, h, r) for i, (h, r) in enumerate(zip(hypotheses[:50], references[:50]))]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the workers start with this process' imports instead of importing everything again
    mp.start_processes(_gather_worker, args=(2, port, records, str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    for rank in (0, 1):
        assert (tmp_path / f"{rank}.txt").read_text(encoding="utf-8").split("\n") == hypotheses[:50]
