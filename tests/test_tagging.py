"""Tag schemes: IOB1 -> BIO -> BIOES conversion, strict spans against seqeval, CRF transition constraints."""

import random

import pytest
from seqeval.scheme import IOB2, IOBES, Entities

from seqlab.tagging import (
    Span,
    allowed_transitions,
    bio_to_bioes,
    detect_scheme,
    iob1_to_bio,
    split_tag,
    strict_spans,
)


# ----------------------------------------------------------------------------------------------- split_tag
@pytest.mark.parametrize(
    "tag, expected",
    [("O", ("O", "")), ("B-PER", ("B", "PER")), ("I-LOC", ("I", "LOC")), ("E-ORG", ("E", "ORG")),
     ("S-MISC", ("S", "MISC")), ("B-ART-work", ("B", "ART-work"))],
)
def test_split_tag(tag, expected):
    assert split_tag(tag) == expected


@pytest.mark.parametrize("tag", ["X-PER", "B-", "B", "PER", "", "o", "-PER", "BPER", "b-PER", "O-PER", "B_PER"])
def test_split_tag_rejects_malformed(tag):
    with pytest.raises(ValueError, match="malformed tag"):
        split_tag(tag)


# ----------------------------------------------------------------------------------------------- conversions
@pytest.mark.parametrize(
    "iob1, bio",
    [
        ([], []),
        (["O", "O"], ["O", "O"]),
        (["I-PER", "I-PER", "O", "I-LOC"], ["B-PER", "I-PER", "O", "B-LOC"]),
        # B- in IOB1 marks a new entity right after one of the same type
        (["I-PER", "B-PER", "I-PER"], ["B-PER", "B-PER", "I-PER"]),
        # a type change starts a new entity even without B-
        (["I-PER", "I-LOC", "I-LOC"], ["B-PER", "B-LOC", "I-LOC"]),
        (["O", "I-MISC", "I-MISC", "O", "I-MISC"], ["O", "B-MISC", "I-MISC", "O", "B-MISC"]),
        # already-BIO input is unchanged
        (["B-ORG", "I-ORG", "O", "B-PER"], ["B-ORG", "I-ORG", "O", "B-PER"]),
    ],
)
def test_iob1_to_bio(iob1, bio):
    assert iob1_to_bio(iob1) == bio


def test_iob1_to_bio_is_idempotent_on_random_sequences():
    rng = random.Random(1)
    tags = ["O", "I-PER", "I-LOC", "B-PER", "B-LOC"]
    for _ in range(200):
        seq = [rng.choice(tags) for _ in range(rng.randint(0, 10))]
        once = iob1_to_bio(seq)
        assert iob1_to_bio(once) == once
        # every entity in the result starts with B-, so it is valid BIO: strict spans cover all non-O tokens
        covered = {i for s in strict_spans(once, "BIO") for i in range(s.start, s.end)}
        assert covered == {i for i, t in enumerate(once) if t != "O"}


@pytest.mark.parametrize(
    "bio, bioes",
    [
        ([], []),
        (["O"], ["O"]),
        (["B-PER"], ["S-PER"]),
        (["B-PER", "I-PER"], ["B-PER", "E-PER"]),
        (["B-PER", "I-PER", "I-PER", "O"], ["B-PER", "I-PER", "E-PER", "O"]),
        (["B-PER", "B-PER", "I-PER"], ["S-PER", "B-PER", "E-PER"]),
        (["B-PER", "B-LOC"], ["S-PER", "S-LOC"]),
        (["O", "B-LOC", "I-LOC", "B-ORG", "O", "B-MISC"], ["O", "B-LOC", "E-LOC", "S-ORG", "O", "S-MISC"]),
        # I- followed by I- of another type ends the entity
        (["B-PER", "I-PER", "I-LOC"], ["B-PER", "E-PER", "E-LOC"]),
    ],
)
def test_bio_to_bioes(bio, bioes):
    assert bio_to_bioes(bio) == bioes


def test_bio_to_bioes_keeps_the_entities_of_valid_bio():
    rng = random.Random(2)
    for _ in range(200):
        iob1 = [rng.choice(["O", "I-PER", "I-LOC", "B-PER"]) for _ in range(rng.randint(0, 12))]
        bio = iob1_to_bio(iob1)  # valid BIO by construction
        bioes = bio_to_bioes(bio)
        assert strict_spans(bioes, "BIOES") == strict_spans(bio, "BIO")


def test_detect_scheme():
    assert detect_scheme(["O", "B-PER", "I-PER"]) == "BIO"
    assert detect_scheme(["O", "B-PER", "I-PER", "E-PER", "S-PER"]) == "BIOES"
    assert detect_scheme(["O", "S-PER"]) == "BIOES"


# ----------------------------------------------------------------------------------------------- strict spans
def seqeval_spans(tags, scheme):
    entities = Entities([list(tags)], {"BIO": IOB2, "BIOES": IOBES}[scheme], suffix=False).entities[0]
    return sorted((tag, start, end) for _, tag, start, end in (entity.to_tuple() for entity in entities))


def ours(tags, scheme):
    return sorted((s.label, s.start, s.end) for s in strict_spans(tags, scheme))


@pytest.mark.parametrize(
    "tags, expected",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [Span("PER", 0, 2), Span("LOC", 3, 4)]),
        (["O", "I-PER", "I-PER"], []),  # I- without B- is not an entity in strict mode
        (["B-PER", "I-LOC"], [Span("PER", 0, 1)]),  # I- of another type ends it and starts nothing
        (["B-PER", "B-PER"], [Span("PER", 0, 1), Span("PER", 1, 2)]),
        (["B-PER", "I-PER", "I-PER"], [Span("PER", 0, 3)]),  # entity at the end of the sentence
        ([], []),
    ],
)
def test_strict_spans_bio_by_hand(tags, expected):
    assert strict_spans(tags, "BIO") == expected


@pytest.mark.parametrize(
    "tags, expected",
    [
        (["S-PER", "B-LOC", "I-LOC", "E-LOC"], [Span("PER", 0, 1), Span("LOC", 1, 4)]),
        (["B-LOC", "I-LOC"], []),  # never closed
        (["B-LOC", "E-PER"], []),  # closed by another type
        (["I-LOC", "E-LOC"], []),  # never opened
        (["B-LOC", "O", "E-LOC"], []),
        (["B-LOC", "S-PER", "E-LOC"], [Span("PER", 1, 2)]),
        (["B-PER", "B-LOC", "E-LOC"], [Span("LOC", 1, 3)]),
        (["B-LOC", "E-LOC", "E-LOC"], [Span("LOC", 0, 2)]),
    ],
)
def test_strict_spans_bioes_by_hand(tags, expected):
    assert strict_spans(tags, "BIOES") == expected


@pytest.mark.parametrize("scheme, prefixes", [("BIO", "BI"), ("BIOES", "BIES")])
def test_strict_spans_match_seqeval_strict_on_random_sequences(scheme, prefixes):
    rng = random.Random(12345)
    tags = ["O"] + [f"{p}-{kind}" for p in prefixes for kind in ("PER", "LOC", "ORG")]
    malformed_seen = 0
    for trial in range(400):
        length = rng.randint(0, 15)
        if trial % 4 == 0:
            # well-formed by construction (BIO from IOB1), converted for BIOES
            seq = iob1_to_bio([rng.choice(["O", "I-PER", "I-LOC", "B-PER"]) for _ in range(length)])
            if scheme == "BIOES":
                seq = bio_to_bioes(seq)
        else:
            # anything goes: I-X after O, I-X after B-Y, E-X without B-X, ...
            seq = [rng.choice(tags) for _ in range(length)]
        malformed_seen += any(
            split_tag(t)[0] == "I" and (i == 0 or split_tag(seq[i - 1])[1] != split_tag(t)[1])
            for i, t in enumerate(seq)
        )
        assert ours(seq, scheme) == seqeval_spans(seq, scheme), seq
    assert malformed_seen > 50  # the random set really exercised malformed input


@pytest.mark.parametrize(
    "seq",
    [
        ["O", "I-PER", "I-PER", "O"],
        ["B-LOC", "I-PER", "I-PER"],
        ["I-PER"],
        ["B-PER", "I-PER", "B-PER", "I-LOC", "O", "I-ORG", "B-ORG"],
    ],
)
def test_strict_spans_bio_malformed_hand_cases_match_seqeval(seq):
    assert ours(seq, "BIO") == seqeval_spans(seq, "BIO")


# ----------------------------------------------------------------------------------------------- transitions
BIO_LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
BIOES_LABELS = ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-PER", "I-PER", "E-PER", "S-PER"]


def as_dicts(labels):
    start, transition, end = allowed_transitions(labels)
    assert len(start) == len(end) == len(transition) == len(labels)
    assert all(len(row) == len(labels) for row in transition)
    trans = {(a, b): transition[i][j] for i, a in enumerate(labels) for j, b in enumerate(labels)}
    return dict(zip(labels, start)), trans, dict(zip(labels, end))


def test_allowed_transitions_bio():
    start, trans, end = as_dicts(BIO_LABELS)
    assert start == {"O": True, "B-LOC": True, "I-LOC": False, "B-PER": True, "I-PER": False}
    assert not trans["O", "I-PER"]
    assert not trans["B-LOC", "I-PER"]
    assert not trans["I-LOC", "I-PER"]
    assert trans["B-PER", "I-PER"] and trans["I-PER", "I-PER"]
    # O and B- may follow anything; BIO entities may end anywhere
    for prev in BIO_LABELS:
        assert trans[prev, "O"] and trans[prev, "B-LOC"] and trans[prev, "B-PER"]
    assert all(end.values())
    # exactly the forbidden ones: I-X after anything but B-X / I-X
    forbidden = {pair for pair, ok in trans.items() if not ok}
    expected = {(p, f"I-{k}") for k in ("LOC", "PER") for p in BIO_LABELS if p not in (f"B-{k}", f"I-{k}")}
    assert forbidden == expected


def test_allowed_transitions_bioes():
    start, trans, end = as_dicts(BIOES_LABELS)
    for label in BIOES_LABELS:
        prefix = split_tag(label)[0]
        assert start[label] == (prefix in ("O", "B", "S")), label
        assert end[label] == (prefix in ("O", "E", "S")), label
    assert not trans["O", "I-PER"] and not trans["O", "E-PER"]
    assert not trans["B-LOC", "I-PER"] and not trans["B-LOC", "E-PER"]
    assert trans["B-PER", "I-PER"] and trans["B-PER", "E-PER"] and trans["I-PER", "E-PER"]
    assert not trans["B-PER", "O"] and not trans["I-PER", "B-LOC"] and not trans["B-PER", "S-PER"]
    assert trans["E-PER", "B-LOC"] and trans["S-PER", "S-PER"] and trans["E-LOC", "O"]
    assert not trans["E-PER", "I-PER"] and not trans["S-PER", "E-PER"]


@pytest.mark.parametrize("labels, scheme", [(BIO_LABELS, "BIO"), (BIOES_LABELS, "BIOES")])
def test_allowed_paths_are_exactly_the_well_formed_ones(labels, scheme):
    """Brute force over all short paths: a path is allowed iff it is well formed, i.e. strict span extraction
    accounts for every non-O tag and conversion round trips."""
    import itertools

    start, transition, end = allowed_transitions(labels)
    index = {label: i for i, label in enumerate(labels)}
    for length in (1, 2, 3):
        for path in itertools.product(labels, repeat=length):
            ids = [index[t] for t in path]
            allowed = start[ids[0]] and end[ids[-1]] and all(transition[a][b] for a, b in zip(ids, ids[1:]))
            covered = {i for s in strict_spans(path, scheme) for i in range(s.start, s.end)}
            well_formed = covered == {i for i, t in enumerate(path) if t != "O"}
            assert allowed == well_formed, path


def test_first_malformed_names_the_position_and_the_problem():
    from seqlab.tagging import first_malformed

    assert first_malformed(["O", "B-PER", "I-PER"]) is None
    position, problem = first_malformed(["O", "B-PER", "X-PER", "PER"])
    assert position == 2 and "X-PER" in problem


def test_convert_tags_iob1_to_bioes_and_label_order():
    from seqlab.tagging import convert_tags, label_order, unknown_tag_message

    assert convert_tags(["I-ORG", "O", "I-PER", "I-PER", "B-PER"], "iob1", "BIOES") == [
        "S-ORG", "O", "B-PER", "E-PER", "S-PER"]
    assert convert_tags(["B-LOC", "I-LOC"], "iob2", "BIO") == ["B-LOC", "I-LOC"]
    assert label_order({"S-PER", "B-ORG", "O", "E-ORG", "B-PER", "E-PER"}) == [
        "O", "B-ORG", "E-ORG", "B-PER", "E-PER", "S-PER"]
    assert "entity type 'GPE'" in unknown_tag_message("B-GPE", ["O", "B-PER"])
    assert "tag 'I-PER' does not occur" in unknown_tag_message("I-PER", ["O", "B-PER"])


def test_scheme_tags_complete_each_type_seen():
    from seqlab.tagging import scheme_tags

    assert scheme_tags({"O", "B-NP", "S-SBAR"}, "BIOES") == {"O", "B-NP", "I-NP", "E-NP", "S-NP", "B-SBAR", "I-SBAR",
                                                            "E-SBAR", "S-SBAR"}
    assert scheme_tags({"B-PER"}, "BIO") == {"O", "B-PER", "I-PER"}
    assert scheme_tags({"O"}, "BIO") == {"O"}
