"""The ``seqlab`` command: LightningCLI with seqlab's links, defaults and checkpoint-aware data restoring."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import torch
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.cli import LightningCLI

from seqlab import SeqlabError
from seqlab.callbacks import JsonlPredictionWriter
from seqlab.data_modules.base import SequenceDataModule, restoring_state
from seqlab.tasks.base import SequenceTask

#: data module attribute -> task argument, each resolved after the data module is built
LINKS = {
    "vocab_size": "vocab_size",
    "char_vocab_size": "char_vocab_size",
    "padding_idx": "padding_idx",
    "labels": "labels",
}

TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": {
        "class_path": "pytorch_lightning.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "seqlab"},
    },
    "callbacks": [RichProgressBar()],
    # seqlab's samplers shard over ranks themselves (see BucketBatchSampler)
    "use_distributed_sampler": False,
}


def _peek_option(args: list[str], name: str) -> Optional[str]:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _load_checkpoint(path: str) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file
        raise SeqlabError(f"cannot read checkpoint {path}: {str(error).splitlines()[0]}") from None


def find_last_checkpoint(roots: list[Path]) -> Optional[Path]:
    """The most recently written ``last*.ckpt`` below any of ``roots``."""
    found = [p for root in roots if root.is_dir() for p in root.rglob("last*.ckpt")]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


class SeqlabCLI(LightningCLI):
    """``seqlab fit|validate|test|predict --config ...``.

    With ``--ckpt_path FILE`` the checkpoint's model and data configuration are the defaults (options given on the
    command line or in ``--config`` still win) and the data module takes its vocabularies from the checkpoint, so
    ``test`` and ``predict`` need neither a config nor the training data. ``--ckpt_path last`` picks the newest
    ``last.ckpt`` under the logger's directory (or ``trainer.default_root_dir``).
    """

    def __init__(self, args: Optional[list[str]] = None, run: bool = True, **kwargs: Any) -> None:
        self._data_state: Optional[dict] = None
        kwargs.setdefault("trainer_defaults", TRAINER_DEFAULTS)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("auto_configure_optimizers", False)
        super().__init__(
            SequenceTask, SequenceDataModule, subclass_mode_model=True, subclass_mode_data=True,
            args=args, run=run, **kwargs,
        )

    def add_arguments_to_parser(self, parser) -> None:
        for source, target in LINKS.items():
            parser.link_arguments(f"data.{source}", f"model.init_args.{target}", apply_on="instantiate")
        parser.add_lightning_class_args(JsonlPredictionWriter, "prediction_writer")

    def parse_arguments(self, parser, args) -> None:
        argv = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else []
        subcommand = next((a for a in argv if a in self.subcommands()), None)
        ckpt_arg = _peek_option(argv, "--ckpt_path")
        if subcommand and ckpt_arg and ckpt_arg != "last":
            if not Path(ckpt_arg).is_file():
                raise SeqlabError(f"checkpoint not found: {ckpt_arg}")
            self._use_checkpoint_defaults(subcommand, _load_checkpoint(ckpt_arg))
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        if config.get("ckpt_path") == "last":
            last = find_last_checkpoint(self._run_roots(config))
            if last is None and subcommand != "fit":
                raise SeqlabError(f"--ckpt_path last: no last.ckpt under {', '.join(map(str, self._run_roots(config)))}")
            config.ckpt_path = str(last) if last is not None else None
            if last is not None:
                print(f"seqlab: resuming from {last}", file=sys.stderr)
        if config.get("ckpt_path"):
            checkpoint = _load_checkpoint(config.ckpt_path)
            class_name = str(config.data.class_path).rsplit(".", 1)[-1]
            self._data_state = checkpoint.get(class_name) or None

    def _use_checkpoint_defaults(self, subcommand: str, checkpoint: dict) -> None:
        defaults = {}
        for key, section in (("data", "datamodule_hyper_parameters"), ("model", "hyper_parameters")):
            hparams = dict(checkpoint.get(section) or {})
            hparams.pop("_instantiator", None)
            class_path = hparams.pop("_class_path", None)
            if class_path:
                defaults[key] = {"class_path": class_path, "init_args": hparams}
        if defaults:
            self._subcommand_parsers[subcommand].set_defaults(defaults)

    @staticmethod
    def _run_roots(config) -> list[Path]:
        roots = []
        logger = config.trainer.get("logger")
        init = getattr(logger, "init_args", None) if logger is not None and not isinstance(logger, bool) else None
        if init is not None and init.get("save_dir"):
            roots.append(Path(init.save_dir) / str(init.get("name") or ""))
        roots.append(Path(config.trainer.get("default_root_dir") or os.getcwd()))
        return roots

    def instantiate_classes(self) -> None:
        with restoring_state(self._data_state):
            super().instantiate_classes()


def main(args: Optional[list[str]] = None) -> None:
    """Console entry point. Input errors print one line and exit with status 2."""
    import datasets

    datasets.disable_progress_bars()
    try:
        SeqlabCLI(args=args)
    except SeqlabError as error:
        print(f"seqlab: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
