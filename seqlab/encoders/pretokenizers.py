"""Pre-tokenizers: a text -> word tokens, each with its character span in the original string. The same object
splits the training text and, stored in the checkpoint (``state_dict``), the users' raw text at prediction.

- ``WhitespacePreTokenizer``: the text is already tokenized (CoNLL columns, GLUE's SST-2): split on whitespace.
- ``TreebankPreTokenizer``: raw text -> Penn Treebank words, as in the training sets (``it's`` -> ``it 's``,
  ``don't`` -> ``do n't``, ``great!`` -> ``great !``, ``U.S.`` kept whole inside a sentence), by NLTK's
  ``TreebankWordTokenizer`` (rule-based; needs no NLTK data download). Already tokenized PTB text comes back
  nearly unchanged (99.9 % of SST-2 train, 99.4 % of CoNLL-2003 train sentences), so one pre-tokenizer can serve a
  pre-tokenized training set and the users' raw text alike.

Invariants (tested): ``text[token.start:token.end]`` is the original characters of every token (a normalised token,
e.g. ``"`` written ``` `` ```, still spans its original character); spans increase and never overlap; only
whitespace lies between them, so the text without whitespace is the spans' characters concatenated.
"""

from __future__ import annotations

import re
from typing import ClassVar, Iterable, NamedTuple, Optional

from seqlab import SeqlabError


class Token(NamedTuple):
    """A word and its character span in the original text: ``text[start:end]`` (``end`` exclusive). ``text`` may be
    normalised (PTB quotes, lower case); the span always covers the original characters."""

    text: str
    start: int
    end: int


class PreTokenizer:
    """Interface: ``tokenize(text) -> list[Token]``, ``words(text) -> list[str]`` and ``state_dict()`` (a dict with
    ``kind``); ``PreTokenizer.from_state_dict(state)`` rebuilds the variant; ``PreTokenizer.named(name)`` gives a
    variant's defaults by its ``kind`` (the data modules' ``pre_tokenizer: whitespace | treebank``)."""

    kind: ClassVar[str]
    kinds: ClassVar[dict[str, type["PreTokenizer"]]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            PreTokenizer.kinds[cls.kind] = cls

    def tokenize(self, text: str) -> list[Token]:
        raise NotImplementedError

    def words(self, text: str) -> list[str]:
        """The tokens' texts."""
        return [token.text for token in self.tokenize(text)]

    def options(self) -> dict:
        """The constructor arguments (JSON-friendly), which ``state_dict`` stores."""
        return {}

    def state_dict(self) -> dict:
        return {"kind": self.kind, **self.options()}

    @staticmethod
    def from_state_dict(state: dict) -> "PreTokenizer":
        options = dict(state)
        kind = options.pop("kind", None)
        if kind not in PreTokenizer.kinds:
            raise SeqlabError(f"unknown pre-tokenizer kind {kind!r} (known: {', '.join(sorted(PreTokenizer.kinds))})")
        return PreTokenizer.kinds[kind](**options)

    @staticmethod
    def named(name: str) -> "PreTokenizer":
        """The pre-tokenizer of kind ``name`` with its default options."""
        return PreTokenizer.from_state_dict({"kind": name})

    def __reduce__(self) -> tuple:
        """Pickled as its state: the same bytes in every process (``datasets`` fingerprints an encoding function by
        pickling it, so a set inside, whose order changes with the process's string hashing, would miss the cache)."""
        return PreTokenizer.from_state_dict, (self.state_dict(),)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PreTokenizer) and self.state_dict() == other.state_dict()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.options().items())
        return f"{type(self).__name__}({options})"


class WhitespacePreTokenizer(PreTokenizer):
    """Pre-tokenized text: every maximal run of non-whitespace characters is a token (``str.split``'s tokens)."""

    kind = "whitespace"
    _WORD = re.compile(r"\S+")

    def tokenize(self, text: str) -> list[Token]:
        return [Token(match.group(), match.start(), match.end()) for match in self._WORD.finditer(text)]


#: Typographic quotes read as their ASCII forms (one character each, so offsets are unchanged).
_QUOTE_FORMS = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
                              "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"'})
#: Where the Treebank tokenizer's quote tokens (``"`` written `` or '') came from in the text.
_QUOTE = re.compile(r"``|''|\"")
#: Letters with periods: ``U.S``, ``a.m``, ``D.C`` (the stem of ``U.S.``).
_ACRONYM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")
#: A currency's letters before ``$``: ``C``, ``US``, ``HK``.
_CURRENCY = re.compile(r"[A-Z]{1,3}")

#: Words whose period is theirs (compared lower-cased, without the period): titles, company forms, months, Latin.
ABBREVIATIONS = (
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "rev", "gen", "lt", "col", "sgt", "capt", "gov", "sen",
    "rep", "inc", "corp", "co", "ltd", "bros", "vs", "etc", "al", "no", "vol", "fig", "jan", "feb", "mar", "apr",
    "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
)


class TreebankPreTokenizer(PreTokenizer):
    """Raw text -> Penn Treebank tokens (NLTK's ``TreebankWordTokenizer``): clitics split (``it 's``, ``do n't``,
    ``ca n't``, ``can not``, ``I 'm``), punctuation split off (``great !``, ``book ,``, ``50 %``), hyphenated words
    and numbers (``3.88``) kept whole. Typographic quotes count as ASCII ones (``it’s`` -> ``it 's``), and the
    one-character ellipsis ``…`` as ``...``.

    Three small rules on top of the Treebank tokenizer, each where it departs from the conventions of the training
    sets (CoNLL-2003, SST):

    - Periods. The Treebank tokenizer reads one sentence and splits only its final period. Here a word's final
      period is split off wherever it is (``left. Then`` -> ``left . Then``, ``$5.50.`` -> ``$ 5.50 .``) unless the
      word is an abbreviation: letters with periods (``U.S.``, ``a.m.``, ``J.K.``), one letter (the initial ``J.``),
      a word of ``abbreviations`` (``Mr.``, ``Inc.``, ``vs.``; case-insensitive), or a number opening the text (the
      list item ``1.`` of CoNLL's results tables). The final period of the text is always a token of its own, even
      after an abbreviation (``He lives in the U.S.`` -> ``U.S .``): one character cannot be two tokens, and this is
      CoNLL-2003's convention (``U.S .``, ``Inc .`` end its sentences; ``U.S.`` never does).
    - ``&`` and ``@`` inside a word stay in it (``S&P``, ``AT&T``, ``name@reuters.com``), as in the PTB and
      CoNLL; between spaces they are tokens.
    - A currency's letters stay with ``$`` (``C$``, ``US$``, ``HK$``), as in CoNLL.

    ``ptb_quotes``: ``"`` becomes ``` `` ``` or ``''`` (opening/closing), as in the PTB and SST; False keeps ``"``
    (CoNLL-2003). Quotes already written ``` `` ``` or ``''`` stay as written (the Treebank tokenizer alone turns a
    ``''`` after a space into ``` `` ```, which would break already tokenized text). ``lowercase``: the token texts
    lower-cased (SST-2 is). The spans always point at the original text.
    """

    kind = "treebank"

    def __init__(self, lowercase: bool = False, ptb_quotes: bool = True,
                 abbreviations: Optional[Iterable[str]] = None) -> None:
        from nltk.tokenize.treebank import TreebankWordTokenizer  # nltk's import is slow: only when used

        self.lowercase = lowercase
        self.ptb_quotes = ptb_quotes
        self.abbreviations = tuple(sorted({a.lower().rstrip(".") for a in (
            ABBREVIATIONS if abbreviations is None else abbreviations)}))
        self._abbreviations = frozenset(self.abbreviations)
        self._treebank = TreebankWordTokenizer()

    def options(self) -> dict:
        return {"lowercase": self.lowercase, "ptb_quotes": self.ptb_quotes, "abbreviations": list(self.abbreviations)}

    def tokenize(self, text: str) -> list[Token]:
        ascii_quotes = text.translate(_QUOTE_FORMS)  # same length: spans in it are spans in text
        tokens = self._periods(self._ellipses(self._glued(self._aligned(ascii_quotes))))
        if self.lowercase:
            tokens = [token._replace(text=token.text.lower()) for token in tokens]
        return tokens

    def is_abbreviation(self, stem: str, first: bool = False) -> bool:
        """Whether ``stem + "."`` is one word: letters with periods, one letter, a listed abbreviation, or (``first``:
        at the start of the text) a number."""
        return (_ACRONYM.fullmatch(stem) is not None or (len(stem) == 1 and stem.isalpha())
                or stem.lower() in self._abbreviations or (first and stem.isdigit()))

    def _aligned(self, text: str) -> list[Token]:
        """The Treebank tokens with their spans: each found at or after the previous one, only whitespace between."""
        tokens, position = [], 0
        for word in self._treebank.tokenize(text):
            if word in ("``", "''", '"'):  # a quote the tokenizer may have rewritten
                match = _QUOTE.search(text, position)
                start, end = (match.start(), match.end()) if match else (-1, -1)
                if match and (match.group() != '"' or not self.ptb_quotes):
                    word = match.group()  # `` and '' keep their direction; " is rewritten only with ptb_quotes
            else:
                start = text.find(word, position)
                end = start + len(word)
            if start < 0 or text[position:start].strip():
                raise SeqlabError(f"pre-tokenizer: cannot align token {word!r} at character {position} of {text!r}")
            tokens.append(Token(word, start, end))
            position = end
        if text[position:].strip():
            raise SeqlabError(f"pre-tokenizer: characters after the last token were dropped in {text!r}")
        return tokens

    @staticmethod
    def _glued(tokens: list[Token]) -> list[Token]:
        """``S & P`` -> ``S&P``, ``a @ b.com`` -> ``a@b.com`` and ``C $`` -> ``C$`` where the text has no space
        between them."""
        out: list[Token] = []
        index = 0
        while index < len(tokens):
            token, previous = tokens[index], out[-1] if out else None
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            touches = previous is not None and previous.end == token.start
            if (touches and token.text in ("&", "@") and following is not None and following.start == token.end
                    and previous.text[-1].isalnum() and following.text[0].isalnum()):
                out[-1] = Token(previous.text + token.text + following.text, previous.start, following.end)
                index += 2
                continue
            if touches and token.text == "$" and _CURRENCY.fullmatch(previous.text):
                out[-1] = Token(previous.text + "$", previous.start, token.end)
            else:
                out.append(token)
            index += 1
        return out

    @staticmethod
    def _ellipses(tokens: list[Token]) -> list[Token]:
        """``\u2026`` (one character) split off as a token of its own, written ``...``."""
        out: list[Token] = []
        for token in tokens:
            if "\u2026" not in token.text or token.text == "\u2026":
                out.append(token._replace(text="...") if token.text == "\u2026" else token)
                continue
            start = token.start
            for piece in re.split("(\u2026)", token.text):
                if piece:
                    out.append(Token("..." if piece == "\u2026" else piece, start, start + len(piece)))
                    start += len(piece)
        return out

    def _periods(self, tokens: list[Token]) -> list[Token]:
        """A word's final period split off (``left.`` -> ``left .``), unless the word is an abbreviation."""
        out: list[Token] = []
        for token in tokens:
            word = token.text
            if (len(word) > 1 and word.endswith(".") and not word.endswith("..")
                    and not self.is_abbreviation(word[:-1], first=not out)):
                out += [Token(word[:-1], token.start, token.end - 1), Token(".", token.end - 1, token.end)]
            else:
                out.append(token)
        return out
