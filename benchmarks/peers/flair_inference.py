"""Flair's side of benchmarks/ner_inference_vs_flair.py; runs in .venv-peers (``make bench-peers``), never in
seqlab's venv.

usage: .venv-peers/bin/python benchmarks/peers/flair_inference.py SENTENCES.json [--threads 1]

SENTENCES.json: ``{"sentences": [[token, ...], ...], "words": [...], "labels": [BIOES tags]}``. Builds a
SequenceTagger of the sizes the issue names (BiLSTM-CRF, hidden 256; OneHotEmbeddings 100 over ``words``;
CharacterEmbeddings 25 + 25 over the characters of ``words``; BIOES tags of the entity types in ``labels``) with
random weights, answers one JSON line describing it, then for each command line ``{"count": N, "batch_size": B}``
on stdin builds ``Sentence`` objects of the first N sentences and runs ``tagger.predict(sentences,
mini_batch_size=B)``, answering ``{"sentences_s", "predict_s", "tokens", "spans"}``. Ends at the end of stdin.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

# stdout carries the answers only: Flair's logging (set up at import) and anything else printed go to stderr
answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
sys.stdout = sys.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sentences")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import flair
    import torch
    from flair.data import Dictionary, Sentence
    from flair.embeddings import CharacterEmbeddings, OneHotEmbeddings, StackedEmbeddings
    from flair.models import SequenceTagger

    logging.getLogger("flair").setLevel(logging.WARNING)  # not the whole vocabulary at INFO
    torch.set_num_threads(args.threads)
    flair.device = torch.device("cpu")
    with open(args.sentences, encoding="utf-8") as handle:
        given = json.load(handle)
    sentences: list[list[str]] = given["sentences"]

    words = Dictionary(add_unk=True)
    chars = Dictionary(add_unk=True)  # a given dictionary: Flair's default one would be downloaded
    for word in given["words"]:
        words.add_item(word)
        for char in word:
            chars.add_item(char)
    types = Dictionary(add_unk=False)
    for label in given["labels"]:
        if label != "O":
            types.add_item(label.split("-", 1)[1])
    types.span_labels = True  # entity types: the tagger makes its BIOES tags from them
    torch.manual_seed(0)
    embeddings = StackedEmbeddings([OneHotEmbeddings(words, embedding_length=100),
                                    CharacterEmbeddings(chars, char_embedding_dim=25, hidden_size_char=25)])
    tagger = SequenceTagger(hidden_size=256, embeddings=embeddings, tag_dictionary=types, tag_type="ner",
                            use_crf=True, tag_format="BIOES")
    tagger.eval()
    reply({"flair": flair.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "parameters": sum(p.numel() for p in tagger.parameters()), "vocabulary": len(words),
           "tags": tagger.label_dictionary.get_items()})

    for line in sys.stdin:
        command = json.loads(line)
        start = time.perf_counter()
        batch = [Sentence(tokens) for tokens in sentences[:command["count"]]]
        built = time.perf_counter()
        tagger.predict(batch, mini_batch_size=command["batch_size"])
        done = time.perf_counter()
        reply({"sentences_s": built - start, "predict_s": done - built, "tokens": sum(len(s) for s in batch),
               "spans": sum(len(s.get_labels("ner")) for s in batch)})


def reply(answer: dict) -> None:
    answers.write(json.dumps(answer) + "\n")
    answers.flush()


if __name__ == "__main__":
    main()
