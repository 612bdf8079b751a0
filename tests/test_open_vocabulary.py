"""Open vocabulary at predict time: a word that training never saw but GloVe knows gets its GloVe vector (mapped into
the fine-tuned space), not the UNK row."""

from __future__ import annotations

import pytest
import torch

import seqlab
from seqlab.cli import main
from seqlab.encoders.vectors import KUMO, PretrainedVectors
from seqlab.models import PretrainedWordEmbedding, StackedWordEmbedding, WordEmbedding
from tests.cli_helpers import CONFIGS, run_options


def reference_rows(vocab: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    known = torch.rand(vocab, generator=generator) < 0.8
    known[0] = False  # padding
    return torch.randn(vocab, dim, generator=generator), known


def test_fine_tuned_rows_get_new_words_through_the_map_training_implies():
    reference, known = reference_rows(40, 6)
    embedding = PretrainedWordEmbedding(40, embedding_dim=6)
    mapping = torch.randn(6, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # "fine-tuning" moved every known row by one linear map; unknown rows are noise
        embedding.embedding.weight.copy_(torch.where(known.unsqueeze(1), reference @ mapping, torch.randn(40, 6) * 9))
    new = torch.randn(3, 6)
    embedding.append_rows(new, reference, known)
    assert embedding.embedding.weight.shape == (43, 6)
    torch.testing.assert_close(embedding(torch.tensor([[40, 41, 42]]))[0], new @ mapping, atol=1e-4, rtol=1e-4)


def test_frozen_rows_get_the_vectors_themselves_and_random_rows_the_unk_row():
    reference, known = reference_rows(30, 5)
    frozen = PretrainedWordEmbedding(30, embedding_dim=5, freeze=True)
    frozen.load_vectors(reference)
    random = WordEmbedding(30, embedding_dim=4, unk_index=1)
    stacked = StackedWordEmbedding(30, embeddings=[lambda v, p: frozen, lambda v, p: random])
    new = torch.randn(2, 5)
    stacked.append_rows(new, reference, known)
    out = stacked(torch.tensor([[30, 31]]))[0]  # (2, 9)
    torch.testing.assert_close(out[:, :5], new, atol=1e-5, rtol=1e-5)
    assert torch.equal(out[:, 5:], random.embedding.weight[1].expand(2, -1))
    assert not frozen.embedding.weight.requires_grad  # still frozen


@pytest.mark.slow
def test_a_glove_word_unseen_in_training_gets_its_vector_at_predict_time(conll_slice, tmp_path):
    main(["fit", "--config", str(CONFIGS / "ner" / "conll2003_bilstm_crf_glove.yaml"),
          *run_options(tmp_path, conll_slice), "--data.init_args.vocab_splits", "[train]",
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2"])
    (checkpoint,) = sorted(tmp_path.rglob("best*.ckpt"))[-1:]
    closed = seqlab.load(checkpoint, open_vocabulary=False)
    model = seqlab.load(checkpoint)
    trained_size = len(closed.data.words)
    unseen, unknown_to_glove = "zucchini", "qzxvbk"
    assert unseen not in closed.data.words and unknown_to_glove not in closed.data.words
    text = f"Peter ate a {unseen} and a {unknown_to_glove} in Berlin ."
    (opened,) = model.predict([text], marginals=True)
    (shut,) = closed.predict([text], marginals=True)

    words = model.data.words
    assert words.index(unseen) >= trained_size  # admitted, after the training words
    assert words.index(unknown_to_glove) == words.unk_index  # no vector: UNK as before
    row = model.task.word_embedder.embedding.weight[words.index(unseen)]
    glove = torch.from_numpy(PretrainedVectors(KUMO).vector(unseen).copy())
    assert torch.allclose(row, glove, atol=0.05)  # three Adam steps barely moved the map from the identity
    assert not torch.allclose(row, closed.task.word_embedder.embedding.weight[words.unk_index], atol=0.05)
    position = opened["tokens"].index(unseen)
    assert opened["marginals"][position] != shut["marginals"][position]  # the model saw a different input
    # a second call admits nothing new and predicts the same
    assert model.open_vocabulary.admit([unseen, "Peter"]) == 0
    assert model.predict([text], marginals=True) == [opened]
