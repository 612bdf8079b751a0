"""Sequence-to-sequence decoding: bridges from the encoder's summary to the decoder's initial state, an LSTM decoder
with input feeding and pluggable attention, and batched greedy / beam search (plain torch, no Python loop over
sentences or beams; one loop over output steps)."""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from seqlab import SeqlabError
from seqlab.models.attention import DecoderAttention
from seqlab.models.cells import LSTMCellStack, RecurrentCell
from seqlab.models.dropout import Dropout
from seqlab.models.embeddings import WordEmbedding
from seqlab.models.encoders import EncoderOutput


# --------------------------------------------------------------------------- bridges
class Bridge(nn.Module):
    """Interface: ``forward(final (B, F)) -> (h0, c0)``, each (num_layers, B, H): the decoder's initial LSTM state
    from the encoder's summary (``EncoderOutput.final``)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers

    def forward(self, final: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError


class LinearBridge(Bridge):
    """h0 = tanh(W_h final + b_h), c0 = W_c final + b_c, one slice per decoder layer (Bahdanau et al.'s init)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        self.projection = nn.Linear(input_size, 2 * num_layers * hidden_size)

    def forward(self, final: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = final.shape[0]
        projected = self.projection(final).view(batch, 2, self.num_layers, self.hidden_size)  # (B, 2, L, H)
        hidden = torch.tanh(projected[:, 0]).transpose(0, 1).contiguous()  # (L, B, H)
        cell = projected[:, 1].transpose(0, 1).contiguous()  # (L, B, H)
        return hidden, cell


class ZeroBridge(Bridge):
    """Zero initial state: the decoder learns about the source through attention only."""

    def forward(self, final: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = final.new_zeros(self.num_layers, final.shape[0], self.hidden_size)
        return zeros, zeros


# --------------------------------------------------------------------------- the decoder
class DecoderState(NamedTuple):
    """The decoder between steps, N rows (sentences, or sentences x beams): hidden, cell (L, N, H); feed (N, O) the
    previous attentional vector (input feeding); memory (N, S, M) encoder states; mask (N, S) bool; keys: the
    attention's projection of the memory (N, S, K), or None without attention; noise: per layer, the per-sequence
    draws of the decoder's cells (variational dropout masks (N, .), drawn once per batch of sentences), () for
    nn.LSTM."""

    hidden: torch.Tensor
    cell: torch.Tensor
    feed: torch.Tensor
    memory: torch.Tensor
    mask: torch.Tensor
    keys: Optional[torch.Tensor]
    noise: tuple = ()

    def _noise_rows(self, rows: torch.Tensor) -> tuple:
        return tuple(tuple(draw.index_select(0, rows) for draw in layer) for layer in self.noise)

    def select(self, rows: torch.Tensor) -> "DecoderState":
        """The rows ``rows`` (N',) of every part, e.g. each sentence repeated beam-size times."""
        return DecoderState(
            self.hidden.index_select(1, rows), self.cell.index_select(1, rows), self.feed.index_select(0, rows),
            self.memory.index_select(0, rows), self.mask.index_select(0, rows),
            None if self.keys is None else self.keys.index_select(0, rows), self._noise_rows(rows),
        )

    def reorder(self, rows: torch.Tensor) -> "DecoderState":
        """Like ``select`` for the recurrent parts only: for beams reordered within their sentence, whose memory
        rows are all the same."""
        return self._replace(hidden=self.hidden.index_select(1, rows), cell=self.cell.index_select(1, rows),
                             feed=self.feed.index_select(0, rows), noise=self._noise_rows(rows))


class StepOutput(NamedTuple):
    """logits (N, V) of the next token; state after the step; weights (N, S) attention, or None."""

    logits: torch.Tensor
    state: DecoderState
    weights: Optional[torch.Tensor]


class DecoderOutput(NamedTuple):
    """logits (B, T, V); weights (B, T, S) attention of each step, or None without attention."""

    logits: torch.Tensor
    weights: Optional[torch.Tensor]


class LSTMDecoder(nn.Module):
    """Unidirectional LSTM decoder over the target, conditioned on the encoder's states.

    Each step (Luong et al. 2015): embed the previous token y_{t-1}, concatenated with the previous attentional
    vector when ``input_feeding`` (so the decoder knows what it attended to); LSTM step -> h_t; with ``attention``
    (a factory ``(query_size = hidden_size, memory_size) -> DecoderAttention``): context c_t = attention(h_t,
    memory) and the attentional vector h~_t = tanh(W_c [c_t; h_t]); without it h~_t = h_t (input feeding is then
    off: the decoder sees the source only through ``bridge``'s initial state, as Sutskever et al. 2014). Logits =
    W_out dropout(h~_t). ``tie_embeddings`` shares W_out with the target embedding (h~_t then has embedding_dim
    units). ``bridge(memory_size, hidden_size, num_layers)`` maps the encoder's final summary to (h_0, c_0).
    ``cell(input_size, hidden_size)``, an LSTM-family cell of ``seqlab.models.cells`` (peephole, CIFG, variational),
    replaces nn.LSTM (``LSTMCellStack``); a variational cell's masks are drawn once per batch of sentences, at
    ``start``, and kept in the decoder state.
    """

    def __init__(
        self,
        vocab_size: int,
        padding_idx: int,
        memory_size: int,
        embedding_dim: int = 256,
        hidden_size: int = 512,
        num_layers: int = 1,
        attention: Optional[Callable[[int, int], DecoderAttention]] = None,
        bridge: Callable[[int, int, int], Bridge] = LinearBridge,
        input_feeding: bool = True,
        dropout: float = 0.3,
        tie_embeddings: bool = False,
        cell: Optional[Callable[[int, int], RecurrentCell]] = None,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.padding_idx = padding_idx
        self.memory_size = memory_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.embedding = WordEmbedding(vocab_size, padding_idx, embedding_dim)
        self.attention = attention(hidden_size, memory_size) if attention is not None else None
        self.input_feeding = input_feeding and self.attention is not None
        #: size of the attentional vector h~_t, what the output layer reads
        self.output_size = embedding_dim if tie_embeddings else hidden_size
        self.bridge = bridge(memory_size, hidden_size, num_layers)
        input_size = embedding_dim + (self.output_size if self.input_feeding else 0)
        between_layers = dropout if num_layers > 1 else 0.0
        self.lstm: nn.Module = (nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, dropout=between_layers)
                                if cell is None else LSTMCellStack(cell, input_size, hidden_size, num_layers,
                                                                   between_layers))
        if self.attention is not None:
            self.combine = nn.Linear(self.attention.output_size + hidden_size, self.output_size, bias=False)
        elif self.output_size != hidden_size:
            self.combine = nn.Linear(hidden_size, self.output_size, bias=False)
        else:
            self.combine = None
        self.dropout = Dropout(dropout)
        self.output = nn.Linear(self.output_size, vocab_size)
        if tie_embeddings:
            self.output.weight = self.embedding.embedding.weight

    def start(self, encoded: EncoderOutput) -> DecoderState:
        hidden, cell = self.bridge(encoded.final)  # (L, B, H) each
        keys = self.attention.prepare(encoded.states) if self.attention is not None else None
        batch = encoded.states.shape[0]
        feed = encoded.states.new_zeros(batch, self.output_size)  # (B, O)
        noise = self.lstm.draw_noise(batch, feed) if isinstance(self.lstm, LSTMCellStack) else ()
        return DecoderState(hidden, cell, feed, encoded.states, encoded.mask, keys, noise)

    def _recur(self, inputs: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The LSTM over inputs (N, T, I) from the state's (h, c): top states (N, T, H) and the new (h, c)."""
        if state.noise:
            return self.lstm(inputs, (state.hidden, state.cell), state.noise)
        return self.lstm(inputs, (state.hidden, state.cell))

    def _attend(self, top: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Top LSTM states (B, [T,] H) -> attentional vectors (B, [T,] O) and attention weights (B, [T,] S)."""
        if self.attention is None:
            return (torch.tanh(self.combine(top)) if self.combine is not None else top), None
        context, weights = self.attention(top, state.memory, state.mask, state.keys)  # (B, [T,] M), (B, [T,] S)
        return torch.tanh(self.combine(torch.cat([context, top], dim=-1))), weights

    def step(self, tokens: torch.Tensor, state: DecoderState) -> StepOutput:
        """One step: previous tokens (N,) -> next-token logits (N, V)."""
        inputs = self.dropout(self.embedding(tokens))  # (N, E)
        if self.input_feeding:
            inputs = torch.cat([inputs, state.feed], dim=-1)  # (N, E + O)
        top, (hidden, cell) = self._recur(inputs.unsqueeze(1), state)  # (N, 1, H)
        attentional, weights = self._attend(top.squeeze(1), state)  # (N, O)
        logits = self.output(self.dropout(attentional))  # (N, V)
        return StepOutput(logits, state._replace(hidden=hidden, cell=cell, feed=attentional), weights)

    def forward(self, inputs: torch.Tensor, encoded: EncoderOutput) -> DecoderOutput:
        """Teacher forcing: input tokens (B, T) (BOS y_1 .. y_{T-1}) -> logits (B, T, V) for y_1 .. y_T."""
        state = self.start(encoded)
        if not self.input_feeding:  # every step's input is known: one LSTM call, attention over all steps at once
            embedded = self.dropout(self.embedding(inputs))  # (B, T, E)
            top, _ = self._recur(embedded, state)  # (B, T, H)
            attentional, weights = self._attend(top, state)  # (B, T, O), (B, T, S)
            return DecoderOutput(self.output(self.dropout(attentional)), weights)
        logits, weights = [], []
        for t in range(inputs.shape[1]):
            out = self.step(inputs[:, t], state)
            logits.append(out.logits)
            weights.append(out.weights)
            state = out.state
        return DecoderOutput(torch.stack(logits, dim=1), torch.stack(weights, dim=1))  # (B, T, V), (B, T, S)


# --------------------------------------------------------------------------- search
class Hypotheses(NamedTuple):
    """tokens (B, N, L): each sentence's N hypotheses, best first, without BOS/EOS, padded; lengths (B, N) tokens
    before EOS; scores (B, N) sum of token log-probabilities (EOS included), divided by the length penalty (beam
    search), in descending order; attention (B, N, L, S) weights of each output token, or None; log_probs (B, N)
    the sequence log-probabilities (EOS included) before the length penalty."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    scores: torch.Tensor
    attention: Optional[torch.Tensor]
    log_probs: Optional[torch.Tensor] = None


class LengthPenalty:
    """Interface: ``__call__(lengths (...) float) -> divisors (...)``; a hypothesis' score is its log-probability
    divided by the penalty of its length (tokens, EOS included)."""

    def __call__(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(lengths)


class NoLengthPenalty(LengthPenalty):
    """Raw log-probabilities (favours short hypotheses)."""


class GNMTLengthPenalty(LengthPenalty):
    """Wu et al. (2016): lp(L) = ((5 + L) / 6) ** alpha."""

    def __init__(self, alpha: float = 0.6) -> None:
        self.alpha = alpha

    def __call__(self, lengths: torch.Tensor) -> torch.Tensor:
        return ((5.0 + lengths) / 6.0) ** self.alpha


class LengthNormalization(LengthPenalty):
    """Average log-probability per token: lp(L) = L ** power (power 1: plain length normalisation)."""

    def __init__(self, power: float = 1.0) -> None:
        self.power = power

    def __call__(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths ** self.power


def never_pad_or_bos(log_probs: torch.Tensor, pad: int, bos: int) -> torch.Tensor:
    """Log-probabilities (N, V) with PAD and BOS made impossible (normalised over the whole vocabulary first, so
    a hypothesis' score is still its model log-probability)."""
    log_probs[:, pad] = float("-inf")
    log_probs[:, bos] = float("-inf")
    return log_probs


class SearchStrategy:
    """Interface: ``__call__(decoder, encoded, bos, eos, return_attention=False) -> Hypotheses``. PAD and BOS are
    never generated. Each sentence generates at most ``floor(max_length_ratio * source_length + max_length_offset)``
    tokens, EOS included, and never more than ``length_cap`` (None: no cap), so one pasted document cannot stall the
    search (OpenNMT's ``max_length``, 250 too); a hypothesis cut off there ends without EOS."""

    def __init__(self, max_length_ratio: float = 1.5, max_length_offset: int = 10,
                 length_cap: Optional[int] = 250) -> None:
        for option, value in (("max_length_ratio", max_length_ratio), ("max_length_offset", max_length_offset)):
            if value < 0:
                raise SeqlabError(f"{type(self).__name__}: {option} must be at least 0, got {value}")
        if length_cap is not None and length_cap < 1:
            raise SeqlabError(f"{type(self).__name__}: length_cap must be at least 1 (or null: no cap), got "
                              f"{length_cap}")
        self.max_length_ratio = max_length_ratio
        self.max_length_offset = max_length_offset
        self.length_cap = length_cap

    def max_lengths(self, mask: torch.Tensor) -> torch.Tensor:
        """Source mask (B, S) -> the longest output of each sentence (B,), at least 1."""
        lengths = mask.sum(dim=1).to(torch.float64)
        limits = torch.floor(self.max_length_ratio * lengths + self.max_length_offset)
        return limits.clamp(min=1, max=self.length_cap).to(torch.int64)

    def __call__(self, decoder: LSTMDecoder, encoded: EncoderOutput, bos: int, eos: int,
                 return_attention: bool = False) -> Hypotheses:  # pragma: no cover - interface
        raise NotImplementedError


class GreedySearch(SearchStrategy):
    """The most probable next token at each step, for the whole batch at once; N = 1 hypothesis per sentence."""

    @torch.no_grad()
    def __call__(self, decoder: LSTMDecoder, encoded: EncoderOutput, bos: int, eos: int,
                 return_attention: bool = False) -> Hypotheses:
        mask = encoded.mask
        batch, device, pad = mask.shape[0], mask.device, decoder.padding_idx
        limits = self.max_lengths(mask)  # (B,)
        longest = int(limits.max())
        state = decoder.start(encoded)
        tokens = torch.full((batch, longest), pad, dtype=torch.int64, device=device)
        attention = encoded.states.new_zeros(batch, longest, mask.shape[1]) if return_attention else None
        scores = encoded.states.new_zeros(batch, dtype=torch.float32)
        lengths = torch.zeros(batch, dtype=torch.int64, device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        previous = torch.full((batch,), bos, dtype=torch.int64, device=device)
        for t in range(longest):
            out = decoder.step(previous, state)
            log_probs = never_pad_or_bos(F.log_softmax(out.logits.float(), dim=-1), pad, bos)  # (B, V)
            best_log_prob, best = log_probs.max(dim=-1)  # (B,)
            active = ~finished
            scores = scores + torch.where(active, best_log_prob, torch.zeros_like(best_log_prob))
            written = active & (best != eos)
            tokens[:, t] = torch.where(written, best, torch.full_like(best, pad))
            if attention is not None and out.weights is not None:
                attention[:, t] = out.weights * written.unsqueeze(1)
            lengths = lengths + written.long()
            finished = finished | (active & (best == eos)) | (t + 1 >= limits)
            if bool(finished.all()):
                break
            previous, state = best, out.state
        width = max(int(lengths.max()), 1)
        return Hypotheses(tokens[:, None, :width], lengths[:, None], scores[:, None],
                          None if attention is None else attention[:, None, :width], scores[:, None])


class BeamSearch(SearchStrategy):
    """Beam search over the whole batch at once (A x K rows through the decoder, A the sentences still searching).

    Each step extends every live beam by every token and keeps, per sentence, the 2K best extensions by
    log-probability: those ending in EOS among the first K become finished hypotheses (scored by log-probability /
    ``length_penalty``), the K best not ending in EOS are the next beams. A sentence is done when it has K
    finished hypotheses (fairseq's criterion) or reaches its maximum length (its live beams are then finished as
    they are); done sentences leave the batch, so the decoder only runs for those still searching, and the search
    stops when every sentence is done. The first step runs once per sentence (its K beams are still the same).
    Returns the K (or ``n_best``) finished hypotheses, best first. With ``beam_size=1`` and no length penalty this
    is greedy search; a sentence's result does not depend on the batch it is searched in.
    """

    def __init__(self, beam_size: int = 5, length_penalty: Optional[LengthPenalty] = None,
                 max_length_ratio: float = 1.5, max_length_offset: int = 10, n_best: Optional[int] = None,
                 length_cap: Optional[int] = 250) -> None:
        """length_penalty: default GNMTLengthPenalty(alpha=0.6)."""
        super().__init__(max_length_ratio, max_length_offset, length_cap)
        if beam_size < 1:
            raise SeqlabError(f"BeamSearch: beam_size must be at least 1, got {beam_size}")
        self.beam_size = beam_size
        self.length_penalty = length_penalty if length_penalty is not None else GNMTLengthPenalty(0.6)
        self.n_best = min(n_best or beam_size, beam_size)

    @torch.no_grad()
    def __call__(self, decoder: LSTMDecoder, encoded: EncoderOutput, bos: int, eos: int,
                 return_attention: bool = False) -> Hypotheses:
        mask = encoded.mask
        batch, source_len, device, pad, beam = mask.shape[0], mask.shape[1], mask.device, decoder.padding_idx, \
            self.beam_size
        limits = self.max_lengths(mask)  # (B,)
        longest = int(limits.max())
        neg_inf = float("-inf")
        # finished hypotheses of every sentence, best first
        final = _Finished(batch, beam, longest, source_len if return_attention else 0, pad, encoded.states)
        # the sentences still searching (A of them, ids into the batch) and their K live beams
        ids = torch.arange(batch, device=device)  # (A,)
        scores = torch.full((batch, beam), neg_inf, device=device)  # (A, K) log-probability of each live beam
        scores[:, 0] = 0.0  # one live beam at the start, so the first step's K best come from different tokens
        history = torch.full((batch, beam, longest), pad, dtype=torch.int64, device=device)  # (A, K, L)
        weights_history = encoded.states.new_zeros(batch, beam, longest, source_len) if return_attention else None
        state = decoder.start(encoded)  # B rows for the first step, then A x K
        previous = torch.full((batch,), bos, dtype=torch.int64, device=device)
        rank = torch.arange(2 * beam, device=device)  # (2K,)

        for t in range(longest):
            active = ids.shape[0]
            out = decoder.step(previous, state)
            log_probs = never_pad_or_bos(F.log_softmax(out.logits.float(), dim=-1), pad, bos)  # (A*K, V)
            step_state, step_weights = out.state, out.weights
            if t == 0:  # one row per sentence so far: every beam of a sentence continues from it
                rows = torch.arange(batch, device=device).repeat_interleave(beam)  # (B*K,)
                log_probs, step_state = log_probs.index_select(0, rows), step_state.select(rows)
                step_weights = None if step_weights is None else step_weights.index_select(0, rows)
            vocab = log_probs.shape[1]
            candidates = scores.unsqueeze(2) + log_probs.view(active, beam, vocab)  # (A, K, V)
            top_scores, top_index = candidates.view(active, beam * vocab).topk(2 * beam, dim=1)  # (A, 2K)
            origin, token = top_index // vocab, top_index % vocab  # (A, 2K) beam and token of each extension
            is_eos = token == eos
            sentence_rows = torch.arange(active, device=device).unsqueeze(1)  # (A, 1)
            origin_history = history.gather(1, origin.unsqueeze(2).expand(-1, -1, longest))  # (A, 2K, L)
            origin_weights = None
            if weights_history is not None:
                step_weights = step_weights.view(active, beam, source_len) if step_weights is not None else \
                    weights_history.new_zeros(active, beam, source_len)
                origin_weights = weights_history[sentence_rows, origin]  # (A, 2K, L, S)
            # extensions ending in EOS among the K best: finished with t tokens (+ EOS)
            ending = is_eos & (rank < beam) & torch.isfinite(top_scores)
            penalty = self.length_penalty(torch.tensor(float(t + 1), device=device))
            final.add(ids, torch.where(ending, top_scores / penalty, torch.full_like(top_scores, neg_inf)),
                      top_scores, origin_history, torch.full_like(origin, t), origin_weights)
            # the K best extensions not ending in EOS carry on (at most K of the 2K end in EOS, one per beam)
            carry_scores, carry = torch.where(is_eos, torch.full_like(top_scores, neg_inf), top_scores).topk(beam, 1)
            carry_origin, carry_token = origin.gather(1, carry), token.gather(1, carry)  # (A, K)
            history = origin_history.gather(1, carry.unsqueeze(2).expand(-1, -1, longest))
            history[:, :, t] = carry_token
            if weights_history is not None:
                weights_history = origin_weights[sentence_rows, carry]
                weights_history[:, :, t] = step_weights[sentence_rows, carry_origin]
            scores = carry_scores
            # sentences at their maximum length: their live beams finish as they are, with t + 1 tokens
            at_limit = t + 1 >= limits[ids]  # (A,)
            if bool(at_limit.any()):
                truncated = at_limit.unsqueeze(1) & torch.isfinite(scores)
                final.add(ids, torch.where(truncated, scores / penalty, torch.full_like(scores, neg_inf)), scores,
                          history, torch.full_like(carry, t + 1), weights_history)
            done = at_limit | final.full(ids)  # (A,)
            if bool(done.all()):
                break
            flat = (sentence_rows * beam + carry_origin)  # (A, K) rows of the beams carried on
            if bool(done.any()):  # done sentences leave the batch
                keep = (~done).nonzero().squeeze(1)  # (A',)
                ids, scores, history, flat, carry_token = ids[keep], scores[keep], history[keep], flat[keep], \
                    carry_token[keep]
                if weights_history is not None:
                    weights_history = weights_history[keep]
                state = step_state.select(flat.reshape(-1))
            else:
                state = step_state.reorder(flat.reshape(-1))
            previous = carry_token.reshape(-1)
        return final.hypotheses(self.n_best)


class _Finished:
    """The K best finished hypotheses of each of B sentences, best first: scores (B, K) length-penalised (-inf:
    none yet), tokens (B, K, L) padded with ``pad``, lengths (B, K), attention weights (B, K, L, S) when
    ``source_len`` > 0."""

    def __init__(self, batch: int, beam: int, longest: int, source_len: int, pad: int, like: torch.Tensor) -> None:
        device = like.device
        self.beam, self.longest = beam, longest
        self.scores = torch.full((batch, beam), float("-inf"), device=device)
        self.log_probs = torch.full((batch, beam), float("-inf"), device=device)
        self.tokens = torch.full((batch, beam, longest), pad, dtype=torch.int64, device=device)
        self.lengths = torch.zeros((batch, beam), dtype=torch.int64, device=device)
        self.weights = like.new_zeros(batch, beam, longest, source_len) if source_len else None

    def full(self, ids: torch.Tensor) -> torch.Tensor:
        """(A,) whether each of the sentences ``ids`` has K finished hypotheses."""
        return torch.isfinite(self.scores[ids]).all(dim=1)

    def add(self, ids: torch.Tensor, scores: torch.Tensor, log_probs: torch.Tensor, tokens: torch.Tensor,
            lengths: torch.Tensor, weights: Optional[torch.Tensor]) -> None:
        """Merge candidates of sentences ``ids`` (A,): scores (A, C) (-inf: not a candidate), their log-probabilities
        before the length penalty (A, C), tokens (A, C, L), lengths (A, C), weights (A, C, L, S) or None; each
        sentence keeps its K best."""
        merged, keep = torch.cat([self.scores[ids], scores], dim=1).topk(self.beam, dim=1)  # (A, K)
        self.scores[ids] = merged
        self.log_probs[ids] = torch.cat([self.log_probs[ids], log_probs], dim=1).gather(1, keep)
        self.tokens[ids] = torch.cat([self.tokens[ids], tokens], dim=1).gather(
            1, keep.unsqueeze(2).expand(-1, -1, self.longest))
        self.lengths[ids] = torch.cat([self.lengths[ids], lengths], dim=1).gather(1, keep)
        if self.weights is not None:
            rows = torch.arange(ids.shape[0], device=ids.device).unsqueeze(1)
            self.weights[ids] = torch.cat([self.weights[ids], weights], dim=1)[rows, keep]

    def hypotheses(self, n_best: int) -> Hypotheses:
        width = max(int(self.lengths[:, :n_best].max()), 1)
        return Hypotheses(self.tokens[:, :n_best, :width], self.lengths[:, :n_best], self.scores[:, :n_best],
                          None if self.weights is None else self.weights[:, :n_best, :width],
                          self.log_probs[:, :n_best])
