"""BucketBatchSampler: DDP sharding, coverage in training and evaluation, determinism, token caps."""

from collections import Counter

import numpy as np
import pytest

from seqlab.data_modules import BucketBatchSampler, DocumentBatchSampler


def random_lengths(n, seed=0, high=40):
    return np.random.default_rng(seed).integers(1, high, size=n).tolist()


def rank_batches(lengths, world, **kwargs):
    return [list(BucketBatchSampler(lengths, num_replicas=world, rank=r, **kwargs)) for r in range(world)]


@pytest.mark.parametrize("n, batch_size, bucket_size", [(101, 4, 3), (64, 8, 2), (7, 3, 100), (1000, 16, 5)])
def test_training_two_ranks_disjoint_and_cover_everything(n, batch_size, bucket_size):
    lengths = random_lengths(n, seed=n)
    kwargs = dict(batch_size=batch_size, shuffle=True, bucket_size=bucket_size, seed=3)
    # the global batch list before DDP padding: what a single process sees
    (unpadded,) = rank_batches(lengths, 1, **kwargs)
    assert sorted(i for b in unpadded for i in b) == list(range(n))
    rank0, rank1 = rank_batches(lengths, 2, **kwargs)
    assert len(rank0) == len(rank1) == -(-len(unpadded) // 2)
    # rank r takes global batches r, r + 2, ...; those with a global position < len(unpadded) are the real ones
    real0 = [b for k, b in enumerate(rank0) if 2 * k < len(unpadded)]
    real1 = [b for k, b in enumerate(rank1) if 2 * k + 1 < len(unpadded)]
    assert real0 + real1  # sanity
    seen0 = [i for b in real0 for i in b]
    seen1 = [i for b in real1 for i in b]
    assert len(seen0) == len(set(seen0)) and len(seen1) == len(set(seen1))
    assert not set(seen0) & set(seen1)
    assert sorted(seen0 + seen1) == list(range(n))
    # the real batches are exactly the single-process ones, interleaved over ranks
    assert real0 == unpadded[0::2] and real1 == unpadded[1::2]
    # all batches together (padding included) still cover everything, and padding only repeats real batches
    assert set(i for b in rank0 + rank1 for i in b) == set(range(n))
    padded = [b for k, b in enumerate(rank1) if 2 * k + 1 >= len(unpadded)]
    assert all(b in unpadded for b in padded)


@pytest.mark.parametrize("world, n", [(2, 1), (2, 9), (2, 50), (3, 5), (3, 9), (3, 33), (4, 5), (4, 9), (4, 50)])
def test_training_every_rank_gets_the_same_number_of_batches(world, n):
    lengths = random_lengths(n, seed=world * 100 + n)
    batches = rank_batches(lengths, world, batch_size=4, shuffle=True, bucket_size=2, seed=1)
    counts = {len(b) for b in batches}
    assert len(counts) == 1, counts
    assert counts.pop() >= 1
    for r in range(world):
        assert len(BucketBatchSampler(lengths, batch_size=4, bucket_size=2, seed=1, num_replicas=world, rank=r)) == len(
            batches[r]
        )


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 17, 64, 101])
@pytest.mark.parametrize("batch_size", [1, 4, 5])
def test_evaluation_covers_each_index_exactly_once_across_ranks(world, n, batch_size):
    lengths = random_lengths(n, seed=n + batch_size)
    if n < world:  # some process would have nothing to evaluate (Lightning refuses an empty loader)
        with pytest.raises(ValueError, match=f"{n} examples cannot be shared by {world} processes"):
            rank_batches(lengths, world, batch_size=batch_size, shuffle=False)
        return
    per_rank = rank_batches(lengths, world, batch_size=batch_size, shuffle=False)
    counts = Counter(i for batches in per_rank for b in batches for i in b)
    assert sorted(counts) == list(range(n)), "an index was dropped or invented"
    assert set(counts.values()) == {1}, "an index was served twice"
    for batches in per_rank:  # every rank evaluates at least one batch, even of a split smaller than a batch
        assert batches and all(1 <= len(b) <= batch_size for b in batches)
    # evaluation batches group similar lengths: longest first, never increasing across the global order
    global_order = BucketBatchSampler(lengths, batch_size=batch_size, shuffle=False, num_replicas=1, rank=0)
    flat = [lengths[i] for b in global_order for i in b]
    assert flat == sorted(lengths, reverse=True)
    # and evaluation does not depend on the seed or the epoch
    other = BucketBatchSampler(lengths, batch_size=batch_size, shuffle=False, seed=99, num_replicas=world, rank=0)
    other.set_epoch(5)
    assert list(other) == per_rank[0]


def test_same_seed_and_epoch_give_the_same_batches_and_set_epoch_changes_them():
    lengths = random_lengths(200, seed=7)

    def batches(seed, epoch):
        sampler = BucketBatchSampler(lengths, batch_size=8, bucket_size=4, seed=seed, num_replicas=1, rank=0)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert batches(0, 0) == batches(0, 0)
    assert batches(0, 3) == batches(0, 3)
    assert batches(0, 0) != batches(0, 1)
    assert batches(0, 0) != batches(1, 0)
    # a new epoch reshuffles but still covers everything once
    for epoch in (0, 1, 2):
        flat = [i for b in batches(0, epoch) for i in b]
        assert sorted(flat) == list(range(200))
    # iterating the same sampler twice in one epoch gives the same batches
    sampler = BucketBatchSampler(lengths, batch_size=8, seed=0, num_replicas=1, rank=0)
    assert list(sampler) == list(sampler)


def test_training_batches_are_length_bucketed():
    # with one pool covering the whole set, batches hold consecutive lengths of the sorted order
    lengths = random_lengths(96, seed=11, high=100)
    sampler = BucketBatchSampler(lengths, batch_size=8, bucket_size=1000, seed=0, num_replicas=1, rank=0)
    spans = sorted((max(lengths[i] for i in b), min(lengths[i] for i in b)) for b in sampler)
    ordered = sorted(lengths, reverse=True)
    expected = sorted((ordered[k], ordered[k + 7]) for k in range(0, 96, 8))
    assert spans == expected


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("max_tokens", [40, 64, 100, 1000])
def test_max_tokens_caps_padded_batch_size(shuffle, max_tokens):
    lengths = random_lengths(300, seed=max_tokens, high=40)
    sampler = BucketBatchSampler(
        lengths, batch_size=16, max_tokens=max_tokens, shuffle=shuffle, bucket_size=3, seed=0, num_replicas=1, rank=0
    )
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(300))
    for b in batches:
        assert 1 <= len(b) <= 16
        assert len(b) * max(lengths[i] for i in b) <= max_tokens
    if max_tokens == 1000:  # loose cap: batch_size is what binds
        assert max(len(b) for b in batches) == 16


def test_max_tokens_packs_greedily_in_evaluation_order():
    lengths = [10, 10, 10, 5, 5, 5, 5, 5, 1]
    sampler = BucketBatchSampler(lengths, batch_size=100, max_tokens=20, shuffle=False, num_replicas=1, rank=0)
    assert [sorted(b) for b in sampler] == [[0, 1], [2, 3], [4, 5, 6, 7], [8]]


def test_max_tokens_smaller_than_longest_example_raises():
    with pytest.raises(ValueError, match="max_tokens"):
        BucketBatchSampler([3, 12, 5], batch_size=4, max_tokens=11)
    BucketBatchSampler([3, 12, 5], batch_size=4, max_tokens=12)  # equal is fine


def test_empty_lengths_raise():
    with pytest.raises(ValueError):
        BucketBatchSampler([], batch_size=4)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n", [20, 13, 40, 97])
def test_len_equals_number_of_batches_yielded(shuffle, world, n):
    lengths = random_lengths(n, seed=n)
    for rank in range(world):
        for max_tokens in (None, 60):
            sampler = BucketBatchSampler(
                lengths, batch_size=6, max_tokens=max_tokens, shuffle=shuffle, bucket_size=2, seed=5,
                num_replicas=world, rank=rank,
            )
            sampler.set_epoch(2)
            assert len(sampler) == len(list(sampler))


@pytest.mark.parametrize("world, n, batch_size", [(3, 1, 4), (4, 1, 4), (5, 2, 1), (8, 3, 2)])
def test_training_fewer_batches_than_ranks_still_gives_every_rank_a_batch(world, n, batch_size):
    lengths = random_lengths(n)
    samplers = [
        BucketBatchSampler(lengths, batch_size=batch_size, shuffle=True, num_replicas=world, rank=r)
        for r in range(world)
    ]
    batches = [list(s) for s in samplers]
    assert [len(b) for b in batches] == [len(s) for s in samplers]
    assert len({len(b) for b in batches}) == 1
    assert all(len(b) >= 1 for b in batches)


# =============================================================================================== documents
def random_documents(n, seed=0, documents=12):
    """Document ids in runs (as files give them), with some examples of no document (-1)."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.integers(0, documents, size=n))
    ids[rng.random(n) < 0.1] = -1
    return ids.tolist()


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n, batch_size", [(97, 8), (40, 1), (200, 30)])
def test_document_batches_hold_whole_documents_and_every_example_once(world, n, batch_size):
    lengths, documents = random_lengths(n, seed=n), random_documents(n, seed=n)
    batches = [b for r in range(world)
               for b in DocumentBatchSampler(lengths, documents, batch_size=batch_size, num_replicas=world, rank=r)]
    assert Counter(i for b in batches for i in b) == Counter(range(n))
    batch_of = {i: k for k, b in enumerate(batches) for i in b}
    for document in set(documents) - {-1}:
        members = [i for i in range(n) if documents[i] == document]
        assert len({batch_of[i] for i in members}) == 1, f"document {document} split over batches"
    for b in batches:  # over batch_size only when one document alone is that long
        assert len(b) <= batch_size or len({documents[i] for i in b}) == 1


def test_document_batches_pack_documents_longest_first_and_examples_of_none_alone():
    lengths = [3, 9, 2, 5, 4, 1]
    documents = [0, 0, -1, 1, 1, -1]
    batches = list(DocumentBatchSampler(lengths, documents, batch_size=2, num_replicas=1, rank=0))
    assert batches == [[0, 1], [3, 4], [2, 5]]
    assert list(DocumentBatchSampler(lengths, documents, batch_size=3, num_replicas=1, rank=0)) == \
        [[0, 1], [3, 4, 2], [5]]


def test_document_sampler_trains_as_the_bucket_sampler_does():
    lengths, documents = random_lengths(80, seed=5), random_documents(80, seed=5)
    kwargs = dict(batch_size=6, shuffle=True, seed=4, num_replicas=1, rank=0)
    assert list(DocumentBatchSampler(lengths, documents, **kwargs)) == list(BucketBatchSampler(lengths, **kwargs))


def test_document_ids_must_match_the_examples():
    with pytest.raises(ValueError, match="3 document ids for 2 examples"):
        DocumentBatchSampler([1, 2], [0, 0, 1])
