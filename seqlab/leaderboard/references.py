"""Published reference numbers shown beside ours, each with its paper. Only numbers checked against the paper's own
results table are listed; values are in percent on the standard test set.

Not listed, on purpose:
- TIMIT: published frame accuracies and PERs are for the full corpus (3,696 training utterances, core test set);
  ``speech/timit_sample`` is 160 utterances of the NLTK sample, so no published number is comparable.
- Multi30k de-en: published BLEU depends on the test year, tokenisation and casing; none is listed until a
  translation config fixes them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    task: str
    dataset: str
    metric: str
    value: float  # percent
    model: str
    source: str
    note: str = ""


REFERENCES: tuple[Reference, ...] = (
    Reference("ner", "CoNLL-2003 English", "test/f1", 90.94, "LSTM-CRF (char BiLSTM + pretrained word embeddings)",
              "Lample et al. 2016, Neural Architectures for Named Entity Recognition (NAACL)",
              "skip-n-gram embeddings, dropout; test F1"),
    Reference("ner", "CoNLL-2003 English", "test/f1", 91.21, "BiLSTM-CNN-CRF (char CNN + GloVe 100d)",
              "Ma & Hovy 2016, End-to-end Sequence Labeling via Bi-directional LSTM-CNNs-CRF (ACL)", "test F1"),
    Reference("sentiment", "SST-2", "test/accuracy", 87.5, "Bidirectional LSTM (GloVe 300d)",
              "Tai et al. 2015, Improved Semantic Representations From Tree-Structured LSTM Networks (ACL), Table 2",
              "SST binary, trained with phrase labels; test accuracy"),
    Reference("sentiment", "SST-2", "test/accuracy", 84.9, "LSTM (GloVe 300d)",
              "Tai et al. 2015, Improved Semantic Representations From Tree-Structured LSTM Networks (ACL), Table 2",
              "SST binary; test accuracy"),
    Reference("sentiment", "SST-5", "test/accuracy", 49.1, "Bidirectional LSTM (GloVe 300d)",
              "Tai et al. 2015, Improved Semantic Representations From Tree-Structured LSTM Networks (ACL), Table 2",
              "SST fine-grained (5 classes), trained with phrase labels; test accuracy"),
    Reference("sentiment", "SST-5", "test/accuracy", 46.4, "LSTM (GloVe 300d)",
              "Tai et al. 2015, Improved Semantic Representations From Tree-Structured LSTM Networks (ACL), Table 2",
              "SST fine-grained (5 classes); test accuracy"),
)


def references_for(task: str, dataset: str, metric: str) -> list[Reference]:
    return [r for r in REFERENCES if r.task == task and r.dataset == dataset and r.metric == metric]
