"""The ``seqlab`` command: LightningCLI with seqlab's links, defaults and checkpoint-aware data restoring."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional

import torch
from jsonargparse import ArgumentError
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar
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
    "feature_size": "feature_size",
    "scoring_labels": "scoring_labels",
    "silence_labels": "silence_labels",
    "frame_shift": "frame_shift",
    "frame_length": "frame_length",
    "source_vocab_size": "source_vocab_size",
    "target_vocab_size": "target_vocab_size",
    "source_padding_idx": "source_padding_idx",
    "target_padding_idx": "target_padding_idx",
    "bos_index": "bos_index",
    "eos_index": "eos_index",
}

TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": {
        "class_path": "pytorch_lightning.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "seqlab"},
    },
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


def find_checkpoint(roots: list[Path], kind: str) -> Optional[Path]:
    """The most recently written readable ``{kind}*.ckpt`` (``last`` or ``best``) below any of ``roots``; a file
    cut short by a killed run is skipped with a warning, so resuming falls back to the previous one."""
    found = sorted((p for root in roots if root.is_dir() for p in root.rglob(f"{kind}*.ckpt")),
                   key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for path in found:
        try:
            torch.load(path, map_location="cpu", weights_only=True)
            return path
        except Exception as error:
            print(f"seqlab: skipping unreadable checkpoint {path} ({type(error).__name__})", file=sys.stderr)
    return None


class SeqlabCLI(LightningCLI):
    """``seqlab fit|validate|test|predict --config ...``.

    With ``--ckpt_path FILE`` the checkpoint's model and data configuration are the defaults (options given on the
    command line or in ``--config`` still win) and the data module takes its vocabularies from the checkpoint, so
    ``test`` and ``predict`` need neither a config nor the training data. ``--ckpt_path last`` (``best``) picks the
    newest ``last*.ckpt`` (``best*.ckpt``) under the logger's directory and ``trainer.default_root_dir``.
    """

    def __init__(self, args: Optional[list[str]] = None, run: bool = True, **kwargs: Any) -> None:
        self._data_state: Optional[dict] = None
        kwargs.setdefault("trainer_defaults", TRAINER_DEFAULTS)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("auto_configure_optimizers", False)
        kwargs.setdefault("parser_kwargs", {"exit_on_error": False, "allow_abbrev": False})
        super().__init__(
            SequenceTask, SequenceDataModule, subclass_mode_model=True, subclass_mode_data=True,
            args=args, run=run, **kwargs,
        )

    def add_arguments_to_parser(self, parser) -> None:
        for source, target in LINKS.items():
            parser.link_arguments(f"data.{source}", f"model.init_args.{target}", apply_on="instantiate")
        parser.add_lightning_class_args(JsonlPredictionWriter, "prediction_writer")
        parser.add_argument(
            "--results_path", type=Optional[str], default=None,
            help="Append one JSON row with the final metrics of fit/validate/test to this file.",
        )

    def parse_arguments(self, parser, args) -> None:
        argv = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else []
        self._argv = argv
        subcommand = next((a for a in argv if a in self.subcommands()), None)
        ckpt_arg = _peek_option(argv, "--ckpt_path")
        if subcommand and ckpt_arg and ckpt_arg not in ("last", "best"):
            if not Path(ckpt_arg).is_file():
                raise SeqlabError(f"checkpoint not found: {ckpt_arg}")
            self._use_checkpoint_defaults(subcommand, _load_checkpoint(ckpt_arg))
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        kind = config.get("ckpt_path")
        if kind in ("last", "best") and not (kind == "best" and subcommand == "fit"):
            found = find_checkpoint(self._run_roots(config), kind)
            if found is None and not (kind == "last" and subcommand == "fit"):  # fit with none: a fresh start
                roots = ", ".join(map(str, self._run_roots(config)))
                raise SeqlabError(f"--ckpt_path {kind}: no {kind}*.ckpt under {roots}")
            config.ckpt_path = str(found) if found is not None else None
            if found is not None:
                print(f"seqlab: using checkpoint {found}", file=sys.stderr)
        if config.get("ckpt_path"):
            checkpoint = _load_checkpoint(config.ckpt_path)
            class_name = str(config.data.class_path).rsplit(".", 1)[-1]
            self._data_state = checkpoint.get(class_name) or None

    def _parse_ckpt_path(self) -> None:
        """Lightning parses the checkpoint's model hyperparameters over the whole configuration, so a model option
        given on the command line (``--model.init_args.predict_attention true`` at predict time) would silently lose
        to the checkpoint. seqlab has already made the checkpoint's model and data configuration the defaults
        (``_use_checkpoint_defaults``), below the config files and the command line; for ``--ckpt_path last|best``
        the run's own config describes the model. Nothing is left to do here."""

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
        """Where this run's checkpoints live: below the logger's ``save_dir/name`` when a logger with a save_dir is
        configured, else ``default_root_dir/checkpoints`` (Lightning's layout without a logger). Never the whole
        working directory, so another run's checkpoints are not picked up."""
        logger = config.trainer.get("logger")
        init = getattr(logger, "init_args", None) if logger is not None and not isinstance(logger, bool) else None
        if init is not None and init.get("save_dir"):
            return [Path(init.save_dir) / str(init.get("name") or "")]
        return [Path(config.trainer.get("default_root_dir") or os.getcwd()) / "checkpoints"]

    def _instantiate_trainer(self, config: dict, callbacks: list):
        """A rich progress bar by default, unless the progress bar is off or another one is configured."""
        configured = list(config.get("callbacks") or []) + list(callbacks)
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in configured):
            callbacks = [*callbacks, RichProgressBar()]
        return super()._instantiate_trainer(config, callbacks)

    def _write_results(self) -> None:
        path = self.config[self.subcommand].get("results_path")
        if not path or self.trainer.global_rank != 0:
            return
        row = {
            "subcommand": self.subcommand,
            "configs": [str(c) for c in self.config[self.subcommand].get("config") or []],
            "argv": list(getattr(self, "_argv", [])),
            "model": type(self.model).__name__,
            "data": type(self.datamodule).__name__,
            "ckpt_path": self.config[self.subcommand].get("ckpt_path"),
            "world_size": self.trainer.world_size,
            "metrics": {k: float(v) for k, v in self.trainer.callback_metrics.items()},
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    after_fit = after_validate = after_test = _write_results

    def instantiate_classes(self) -> None:
        with restoring_state(self._data_state):
            super().instantiate_classes()


def condense_config_error(message: str) -> str:
    """One line from jsonargparse's nested report: the full key that failed and why."""
    path = [key for key in re.findall(r'Parser key "([^"]+)"', message)]
    option = re.search(r"Option '([^']+)' is not accepted", message)
    if option:
        return f"config key '{'.'.join(path + [option.group(1)])}' is not accepted (misspelled?)"
    unexpected = re.search(r'Key "([^"]+)" is not expected', message)
    if unexpected:
        return f"config key '{unexpected.group(1)}' is not expected (misspelled?)"
    unrecognized = re.search(r"Unrecognized arguments: (.*)", message)
    if unrecognized:
        return f"unrecognized arguments: {unrecognized.group(1).strip()}"
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    detail = lines[-1] if len(lines) > 1 else (lines[0] if lines else "invalid configuration")
    return f"invalid configuration{' at ' + '.'.join(path) if path else ''}: {detail[:300]}"


def main(args: Optional[list[str]] = None) -> None:
    """Console entry point. Input and configuration errors print one line and exit with status 2."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["leaderboard"]:  # seqlab leaderboard SPEC.yaml: see seqlab/leaderboard
        from seqlab.leaderboard import main as leaderboard_main

        return leaderboard_main(argv[1:])
    import datasets

    datasets.disable_progress_bars()
    try:
        SeqlabCLI(args=args)
    except SeqlabError as error:
        print(f"seqlab: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except ArgumentError as error:
        print(f"seqlab: error: {condense_config_error(str(error))}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
