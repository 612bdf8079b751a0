"""seqlab: sequence learning on text and speech with BiLSTM encoders on PyTorch Lightning."""

__version__ = "0.1.0"


class SeqlabError(ValueError):
    """An error in user input (data, config, paths) reported as one line, without a traceback."""


def load(path, device="cpu", open_vocabulary=True):
    """``seqlab.load("best.ckpt").predict(["Peter lives in Berlin ."])``: see ``seqlab.inference``."""
    from seqlab.inference import load as load_predictor

    return load_predictor(path, device, open_vocabulary)
