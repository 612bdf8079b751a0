"""The ``seqlab`` command: LightningCLI with seqlab's links, defaults and checkpoint-aware data restoring."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, Optional

from jsonargparse import ArgumentError, Namespace
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningCLI, _InstantiatorFn
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from seqlab import SeqlabError
from seqlab.callbacks import JsonlPredictionWriter
from seqlab.checkpoints import find_checkpoint, migrate_checkpoint, read_checkpoint
from seqlab.config_checks import (check_config_files, check_output_options, check_trainer_options,
                                  condense_config_error, trainer_error)
from seqlab.data_modules.base import SequenceDataModule
from seqlab.tasks.base import SequenceTask

#: data module attribute -> task argument, each resolved after the data module is built
LINKS = {
    "vocab_size": "vocab_size",
    "char_vocab_size": "char_vocab_size",
    "characters": "characters",  # the character vocabulary in id order: what a CasingEmbedding reads casing from
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
    "word_vectors": "word_vectors",  # (V, D) pretrained rows for the word vocabulary, or None
    "target_encoder": "target_encoder",  # the fitted target TextEncoder: ids -> text for BLEU and predict
    "transformer_spec": "transformer_spec",  # what a TransformerWordEmbedding is built from (layers, size, config)
    "transformer_weights": "transformer_weights",  # a fine-tuned transformer's pretrained weights
    "task_labels": "task_labels",  # a multi-task model's: task name -> that task's labels
    "auxiliary_labels": "auxiliary_labels",  # token tagging: auxiliary column name -> its tag names
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


def _split_nested_nulls(args: list[str]) -> tuple[list[str], list[str]]:
    """``args`` without the options that give null to a key of a class nested in another class's arguments
    (``--data.init_args.tasks.ner.init_args.vectors null``, ``--a.init_args.b.init_args.c=null``), and those keys.
    jsonargparse (4.53) re-parses such a value as text: the class gets the string "None", or an int option fails."""
    kept, keys, i = [], [], 0
    while i < len(args):
        key, equals, value = args[i][2:].partition("=")
        width = 1 if equals or i + 1 == len(args) else 2
        value = value if width == 1 else args[i + 1]
        if args[i].startswith("--") and key.count(".init_args.") >= 2 and value == "null":
            keys.append(key)
            i += width
        else:
            kept.append(args[i])
            i += 1
    return kept, keys


def _set_nulls(config: Namespace, keys: list[str]) -> None:
    """Sets each dotted key of ``config`` to None, refusing keys that name no argument or take no null."""
    for key in keys:
        *path, last = key.split(".")
        node: Any = config
        spec = None  # the class whose argument the key is: {class_path, init_args} around the last init_args
        for part in path:
            if part == "init_args":
                spec = node
            node = node.get(part) if isinstance(node, (dict, Namespace)) else None
        if not isinstance(node, (dict, Namespace)) or last not in node:
            raise SeqlabError(f"--{key}: no such option")
        class_path = spec.get("class_path") if isinstance(spec, (dict, Namespace)) else None
        hint = _type_hint(class_path, last) if isinstance(class_path, str) else Any
        if hint is not Any and type(None) not in typing.get_args(hint):
            raise SeqlabError(f"--{key}: null is not allowed here (expected {getattr(hint, '__name__', hint)})")
        node[last] = None


def _type_hint(class_path: str, name: str) -> Any:
    """The type of the argument ``name`` of the class at ``class_path`` (which jsonargparse has imported already):
    Any where it has none, or takes **kwargs, or defaults to None."""
    module, _, class_name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), class_name)
    parameter = inspect.signature(cls).parameters.get(name)
    if parameter is None or parameter.default is None:
        return Any
    try:
        return typing.get_type_hints(cls.__init__).get(name, Any)
    except Exception:  # a hint that does not resolve: jsonargparse has accepted the option already
        return Any


class _DataInstantiator(_InstantiatorFn):
    """Builds the data module, restores its encoders from the checkpoint being loaded (if any), else fits them on
    train: explicitly, before the links read their sizes into the model. The data modules inside it (a multi-task
    module's tasks) are built as given: the multi-task module restores and fits theirs."""

    def __call__(self, class_type, *args: Any, applied_instantiation_links: dict, **kwargs: Any):
        config = self.cli.config[self.cli.subcommand] if self.cli.subcommand else self.cli.config
        if str(config.data.class_path).rsplit(".", 1)[-1] != class_type.__name__:
            return class_type(*args, **kwargs)
        try:
            data = super().__call__(class_type, *args, applied_instantiation_links=applied_instantiation_links,
                                    **kwargs)
        except SeqlabError:  # one line already
            raise
        except ValueError as error:  # a value a part under the data module refuses
            raise SeqlabError(f"--data ({class_type.__name__}): {error}") from None
        if self.cli._data_state:
            data.load_state_dict(self.cli._data_state)
        data.prepare_encoders()
        return data


class _ModelInstantiator(_InstantiatorFn):
    """Builds the task like Lightning does; a value one of its parts refuses (a size or a probability: torch's
    ``nn.LSTM(hidden_size=0)``, ``MultiHeadSelfAttention``'s head count) becomes one line naming ``--model`` and the
    configured part that refused it."""

    def __call__(self, class_type, *args: Any, applied_instantiation_links: dict, **kwargs: Any):
        try:
            return super().__call__(class_type, *args, applied_instantiation_links=applied_instantiation_links,
                                    **kwargs)
        except ValueError as error:  # SeqlabError included
            message = str(error)
            if message.startswith("--"):  # names its option already
                raise
            part = _refusing_part(error.__traceback__)
            if part and message.startswith(f"{part}: "):  # "BiLSTMEncoder: num_layers ...": named once, as the others
                message = message[len(part) + 2:]
            named = f" ({part})" if part and not message.startswith(part) else ""
            raise SeqlabError(f"--model{named}: {message}") from None


def _refusing_part(trace) -> Optional[str]:
    """The class of the outermost ``seqlab.models`` object whose ``__init__`` is on ``trace``: the part a config
    names (``BiLSTMEncoder``, not the ``nn.LSTM`` or dropout inside it)."""
    while trace is not None:
        frame = trace.tb_frame
        if frame.f_code.co_name == "__init__" and frame.f_globals.get("__name__", "").startswith("seqlab.models"):
            instance = frame.f_locals.get("self")
            if instance is not None:
                return type(instance).__name__
        trace = trace.tb_next
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
        self._checkpoints: dict[str, dict] = {}
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
            self._use_checkpoint_defaults(subcommand, self._read_checkpoint(ckpt_arg))
        check_config_files(argv)
        argv, nulls = _split_nested_nulls(argv)
        # jsonargparse would print the config before the nulls are set, so seqlab prints it then
        print_config = [arg for arg in argv if nulls and arg.partition("=")[0] == "--print_config"]
        if isinstance(args, (dict, Namespace)):
            super().parse_arguments(parser, args)
        else:
            self.config = parser.parse_args([arg for arg in argv if arg not in print_config])
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        _set_nulls(config, nulls)
        if print_config:
            sys.stdout.write(self._parser(subcommand).dump(config, skip_none="skip_null" in print_config[0]))
            parser.exit()
        check_trainer_options(config.get("trainer"))
        check_output_options(config)
        if not subcommand:
            return
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
            checkpoint = self._read_checkpoint(config.ckpt_path)
            class_name = str(config.data.class_path).rsplit(".", 1)[-1]
            self._data_state = checkpoint.get(class_name) or None

    def before_instantiate_classes(self) -> None:
        """The sampler's data-order seed follows ``--seed_everything`` (chosen by then, even when random) unless
        ``--data.seed`` is given, so runs with different seeds also differ in data order."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        seed, init_args = config.get("seed_everything"), config.get("data") and config.data.get("init_args")
        if init_args is not None and init_args.get("seed") is None and type(seed) is int:
            init_args.seed = seed

    def _read_checkpoint(self, path: str) -> dict:
        """Each checkpoint file is read once (torch.load), whatever asks for it."""
        if path not in self._checkpoints:
            self._checkpoints[path] = read_checkpoint(path)
        return self._checkpoints[path]

    def _add_instantiators(self) -> None:
        super()._add_instantiators()
        self.parser.add_instantiator(_DataInstantiator(cli=self, key="data"), SequenceDataModule, subclasses=True,
                                    prepend=True)
        self.parser.add_instantiator(_ModelInstantiator(cli=self, key="model"), SequenceTask, subclasses=True,
                                    prepend=True)

    def _parse_ckpt_path(self) -> None:
        """Lightning parses the checkpoint's model hyperparameters over the whole configuration, so a model option
        given on the command line (``--model.init_args.predict_attention true`` at predict time) would silently lose
        to the checkpoint. seqlab has already made the checkpoint's model and data configuration the defaults
        (``_use_checkpoint_defaults``), below the config files and the command line; for ``--ckpt_path last|best``
        the run's own config describes the model. Nothing is left to do here."""

    def _use_checkpoint_defaults(self, subcommand: str, checkpoint: dict) -> None:
        checkpoint = migrate_checkpoint(checkpoint)
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
        try:
            return super()._instantiate_trainer(config, callbacks)
        except (MisconfigurationException, ValueError) as error:  # an option Lightning refuses (accelerator, ...)
            raise SeqlabError(trainer_error(error)) from None

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


def main(args: Optional[list[str]] = None) -> None:
    """Console entry point. Input and configuration errors print one line and exit with status 2."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["leaderboard"]:  # seqlab leaderboard SPEC.yaml: see seqlab/leaderboard
        from seqlab.leaderboard import main as leaderboard_main

        return leaderboard_main(argv[1:])
    if argv[:1] == ["serve"]:  # seqlab serve --ckpt_path CKPT --port PORT: see seqlab/serving.py
        from seqlab.serving import main as serve_main

        return serve_main(argv[1:])
    if argv[:1] == ["export"]:  # seqlab export --ckpt_path CKPT --format onnx --output FILE: see seqlab/export.py
        from seqlab.export import main as export_main

        return export_main(argv[1:])
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
    except Exception as error:  # jsonargparse re-raises a data module's SeqlabError as the cause of a ValueError
        cause = _direct_seqlab_cause(error)
        if cause is None:
            raise
        print(f"seqlab: error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None


def _direct_seqlab_cause(error: BaseException) -> Optional[SeqlabError]:
    """The SeqlabError that ``error`` was raised *from* (``raise ... from``, at any depth), or None: an error raised
    while handling one (an implicit ``__context__``) is a bug to show, not an input error."""
    cause = error.__cause__
    while cause is not None and not isinstance(cause, SeqlabError):
        cause = cause.__cause__
    return cause


if __name__ == "__main__":
    main()
