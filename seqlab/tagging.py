"""Tag schemes (IOB1, BIO/IOB2, BIOES): conversion, strict span extraction and allowed transitions.

Pure Python, shared by the readers (conversion), the metrics (spans) and the CRF (transition constraints).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

SCHEMES = ("BIO", "BIOES")


class Span(NamedTuple):
    """An entity of ``label`` over tokens ``start`` .. ``end - 1``."""

    label: str
    start: int
    end: int


def split_tag(tag: str) -> tuple[str, str]:
    """``'B-PER' -> ('B', 'PER')``; ``'O' -> ('O', '')``. Raises ValueError on a malformed tag."""
    if tag == "O":
        return "O", ""
    prefix, sep, label = tag.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S") or not label:
        raise ValueError(f"malformed tag {tag!r} (expected O or B-/I-/E-/S- followed by a type)")
    return prefix, label


def iob1_to_bio(tags: Sequence[str]) -> list[str]:
    """IOB1 (``B-`` only between two adjacent entities of one type) to BIO: an ``I-X`` not continuing an X starts one."""
    out: list[str] = []
    previous = "O"
    for tag in tags:
        prefix, label = split_tag(tag)
        if prefix == "I":
            prev_prefix, prev_label = split_tag(previous)
            if prev_prefix == "O" or prev_label != label:
                tag = f"B-{label}"
        out.append(tag)
        previous = tag
    return out


def bio_to_bioes(tags: Sequence[str]) -> list[str]:
    """BIO to BIOES: single-token entities become ``S-``, entity-final tokens ``E-``."""
    out: list[str] = []
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        following = tags[i + 1] if i + 1 < len(tags) else "O"
        continues = following == f"I-{label}"
        if prefix == "B":
            out.append(tag if continues else f"S-{label}")
        elif prefix == "I":
            out.append(tag if continues else f"E-{label}")
        else:
            out.append(tag)
    return out


def first_malformed(tags: Sequence[str]) -> Optional[tuple[int, str]]:
    """(position, what is wrong) of the first malformed tag, or None when every tag is well formed."""
    for position, tag in enumerate(tags):
        try:
            split_tag(tag)
        except ValueError as error:
            return position, str(error)
    return None


def convert_tags(tags: Sequence[str], tag_format: str, tag_scheme: str) -> list[str]:
    """Well-formed tags in ``tag_format`` (``iob1`` or ``iob2``) -> the ``tag_scheme`` trained (``BIO`` or ``BIOES``)."""
    tags = iob1_to_bio(tags) if tag_format == "iob1" else list(tags)
    return bio_to_bioes(tags) if tag_scheme == "BIOES" else tags


def label_order(tags: set[str]) -> list[str]:
    """``O`` first, then by entity type and prefix (B, I, E, S): stable across runs and readable."""
    rank = {"B": 0, "I": 1, "E": 2, "S": 3}
    return ["O"] + sorted((t for t in tags if t != "O"), key=lambda t: (split_tag(t)[1], rank[split_tag(t)[0]]))


def scheme_tags(tags: set[str], scheme: str) -> set[str]:
    """``tags`` with every tag of the scheme for each entity type among them (B-X, I-X under BIO; also E-X, S-X under
    BIOES): an entity longer than any in training (a 3-token chunk, so I-X under BIOES) is then no unknown tag."""
    prefixes = "BIES" if scheme == "BIOES" else "BI"
    types = {split_tag(t)[1] for t in tags if t != "O"}
    return {"O"} | {f"{prefix}-{kind}" for kind in types for prefix in prefixes}


def unknown_tag_message(tag: str, known: Sequence[str]) -> str:
    """Why ``tag`` is not in ``known``, naming the entity type when the type itself is new."""
    types = {split_tag(t)[1] for t in known} - {""}
    kind = split_tag(tag)[1]
    if kind and kind not in types:
        return f"entity type '{kind}' does not occur in the training data (types: {' '.join(sorted(types))})"
    return f"tag '{tag}' does not occur in the training data (known: {' '.join(known)})"


def detect_scheme(labels: Sequence[str]) -> str:
    """``'BIOES'`` when any label uses E- or S-, else ``'BIO'``."""
    return "BIOES" if any(split_tag(t)[0] in ("E", "S") for t in labels) else "BIO"


def strict_spans(tags: Sequence[str], scheme: str = "BIO") -> list[Span]:
    """Entities under strict matching (seqeval ``mode="strict"``): a BIO entity is ``B-X (I-X)*``; a BIOES entity
    is ``S-X`` or ``B-X (I-X)* E-X``. Tokens that do not form a well-formed entity yield nothing."""
    spans: list[Span] = []
    start, label = -1, ""
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if scheme == "BIO":
            if start >= 0 and not (prefix == "I" and kind == label):
                spans.append(Span(label, start, i))
                start = -1
            if prefix == "B":
                start, label = i, kind
        else:
            if prefix == "S":
                start = -1
                spans.append(Span(kind, i, i + 1))
            elif prefix == "B":
                start, label = i, kind
            elif prefix == "I":
                if start >= 0 and kind != label:
                    start = -1
            elif prefix == "E":
                if start >= 0 and kind == label:
                    spans.append(Span(label, start, i + 1))
                start = -1
            else:
                start = -1
    if scheme == "BIO" and start >= 0:
        spans.append(Span(label, start, len(tags)))
    return spans


def continuation_tags(label: str, scheme: str = "BIO") -> list[str]:
    """The tags that, right after an entity of type ``label``, would extend it (so it is not that entity): ``I-X``
    under BIO; none under BIOES, where ``E-``/``S-`` close an entity."""
    return [f"I-{label}"] if scheme == "BIO" else []


def allowed_transitions(labels: Sequence[str]) -> tuple[list[bool], list[list[bool]], list[bool]]:
    """Which tag sequences are well formed under the labels' scheme: ``(start[j], transition[i][j], end[i])``."""
    scheme = detect_scheme(labels)
    parts = [split_tag(t) for t in labels]

    def may_follow(prev: tuple[str, str] | None, cur: tuple[str, str]) -> bool:
        prefix, kind = cur
        open_entity = prev is not None and prev[0] in ("B", "I")
        if prefix in ("I", "E"):
            return open_entity and prev[1] == kind  # type: ignore[index]
        # O, B, S: only when no entity is left open (BIO entities may end anywhere)
        return scheme == "BIO" or not open_entity

    start = [may_follow(None, p) for p in parts]
    transition = [[may_follow(p, q) for q in parts] for p in parts]
    end = [scheme == "BIO" or p[0] not in ("B", "I") for p in parts]
    return start, transition, end
