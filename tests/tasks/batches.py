"""Batches built by a test, handed to ``Trainer.fit`` as its training loader."""


class Batches:
    """An iterable of ready batches that the Trainer reads like a DataLoader (a plain list would be taken for a
    list of dataloaders)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)
