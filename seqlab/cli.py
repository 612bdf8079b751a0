"""The ``seqlab`` command: LightningCLI with seqlab's links, defaults and checkpoint-aware data restoring."""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

from jsonargparse import ArgumentError
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningCLI, _InstantiatorFn
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from seqlab import SeqlabError
from seqlab.callbacks import JsonlPredictionWriter
from seqlab.checkpoints import find_checkpoint, migrate_checkpoint, read_checkpoint
from seqlab.data_modules.base import SequenceDataModule
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
    "word_vectors": "word_vectors",  # (V, D) pretrained rows for the word vocabulary, or None
    "target_encoder": "target_encoder",  # the fitted target TextEncoder: ids -> text for BLEU and predict
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


class _DataInstantiator(_InstantiatorFn):
    """Builds the data module, restores its encoders from the checkpoint being loaded (if any), else fits them on
    train: explicitly, before the links read their sizes into the model."""

    def __call__(self, class_type, *args: Any, applied_instantiation_links: dict, **kwargs: Any):
        data = super().__call__(class_type, *args, applied_instantiation_links=applied_instantiation_links, **kwargs)
        if self.cli._data_state:
            data.load_state_dict(self.cli._data_state)
        data.prepare_encoders()
        return data


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
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        check_trainer_options((self.config[subcommand] if subcommand else self.config).get("trainer"))
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
            checkpoint = self._read_checkpoint(config.ckpt_path)
            class_name = str(config.data.class_path).rsplit(".", 1)[-1]
            self._data_state = checkpoint.get(class_name) or None

    def _read_checkpoint(self, path: str) -> dict:
        """Each checkpoint file is read once (torch.load), whatever asks for it."""
        if path not in self._checkpoints:
            self._checkpoints[path] = read_checkpoint(path)
        return self._checkpoints[path]

    def _add_instantiators(self) -> None:
        super()._add_instantiators()
        self.parser.add_instantiator(_DataInstantiator(cli=self, key="data"), SequenceDataModule, subclasses=True,
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


# ------------------------------------------------------------------------------------- configuration checks
#: Lightning's Timer format for durations (``trainer.max_time``, a time-based ``trainer.val_check_interval``)
DURATION = re.compile(r"(\d+):(\d\d):(\d\d):(\d\d)")
TIMEDELTA_KEYS = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")
EXPECTED_DURATION = "DD:HH:MM:SS (days:hours:minutes:seconds, e.g. 00:01:30:00) or {hours: 1, minutes: 30}"


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _fraction(value: Any) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def _duration(value: Any) -> bool:
    """Whether Lightning's Timer accepts ``value``: "DD:HH:MM:SS", a timedelta or a dict of timedelta arguments
    (not negative)."""
    if isinstance(value, str):
        return DURATION.fullmatch(value.strip()) is not None
    if not isinstance(value, timedelta) and hasattr(value, "__dict__"):  # a jsonargparse Namespace
        value = vars(value)
    if isinstance(value, dict):
        if not value or any(key not in TIMEDELTA_KEYS or not isinstance(amount, (int, float))
                            or isinstance(amount, bool) for key, amount in value.items()):
            return False
        value = timedelta(**value)
    return isinstance(value, timedelta) and value >= timedelta(0)


def _devices(value: Any) -> bool:
    """Lightning's forms: a count (-1: all), a list of device indices, "auto", "3", "-1" or "0,1"."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text) == -1 or int(text) >= 1
        return text == "auto" or re.fullmatch(r"\d+(\s*,\s*\d+)*\s*,?", text) is not None
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_whole(v, 0) for v in value)
    return _whole(value, 1) or value == -1


#: trainer option -> (accepts(value) for a value that is not None, what it expects); checked before anything is built
TRAINER_CHECKS: dict[str, tuple[Any, str]] = {
    "max_epochs": (lambda v: _whole(v, -1), "a whole number >= 0, or -1 for no limit"),
    "min_epochs": (lambda v: _whole(v, 0), "a whole number >= 0"),
    "max_steps": (lambda v: _whole(v, -1), "a whole number >= 0, or -1 for no limit"),
    "min_steps": (lambda v: _whole(v, 0), "a whole number >= 0"),
    "max_time": (_duration, EXPECTED_DURATION),
    "val_check_interval": (
        lambda v: _whole(v, 1) or _fraction(v) or _duration(v),
        f"a number of training batches >= 1, a fraction of the epoch in [0.0, 1.0] or a duration {EXPECTED_DURATION}",
    ),
    "check_val_every_n_epoch": (lambda v: _whole(v, 1), "a whole number of epochs >= 1 (or null)"),
    **{f"limit_{stage}_batches": (lambda v: _whole(v, 0) or _fraction(v),
                                  "a number of batches >= 0 or a fraction in [0.0, 1.0]")
       for stage in ("train", "val", "test", "predict")},
    "overfit_batches": (lambda v: _whole(v, 0) or _fraction(v), "a number of batches >= 0 or a fraction in [0.0, 1.0]"),
    "accumulate_grad_batches": (lambda v: _whole(v, 1), "a whole number of batches >= 1"),
    "log_every_n_steps": (lambda v: _whole(v, 0), "a whole number of steps >= 0 (0: no step logging)"),
    "num_sanity_val_steps": (lambda v: _whole(v, -1), "a whole number >= 0, or -1 for the whole validation set"),
    "gradient_clip_val": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
                          "a number >= 0"),
    "reload_dataloaders_every_n_epochs": (lambda v: _whole(v, 0), "a whole number of epochs >= 0"),
    "fast_dev_run": (lambda v: isinstance(v, bool) or _whole(v, 0), "true, false or a number of batches >= 0"),
    "num_nodes": (lambda v: _whole(v, 1), "a whole number >= 1"),
    "devices": (_devices, "a number of devices >= 1 (-1: all), a list of device indices, '0,1' or 'auto'"),
}


def check_trainer_options(trainer: Any) -> None:
    """A SeqlabError naming the first trainer option whose value Lightning would refuse (with a traceback, or only
    once data and model are built) or misuse (``accumulate_grad_batches 0`` divides by zero mid-epoch)."""
    for option, (accepts, expected) in TRAINER_CHECKS.items():
        value = trainer.get(option) if trainer is not None else None
        if value is not None and not accepts(value):
            shown = value if isinstance(value, str) else _plain(value)
            raise SeqlabError(f"--trainer.{option}: expected {expected}, got {shown!r}")


def _plain(value: Any) -> Any:
    """A jsonargparse Namespace as a dict, for messages."""
    return {k: _plain(v) for k, v in vars(value).items()} if hasattr(value, "__dict__") else value


def check_config_files(argv: list[str]) -> None:
    """Each ``--config FILE`` is UTF-8 YAML holding a mapping; otherwise one SeqlabError naming the file and line
    (jsonargparse would report a YAML error without the file, an undecodable one with a traceback)."""
    import yaml

    files = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--config"]
    files += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
    for name in files:
        path = Path(name)
        if not path.is_file():
            if re.search(r"[:{\n]", name):  # YAML given inline: jsonargparse reads it
                continue
            raise SeqlabError(f"--config {name}: no such file")
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise SeqlabError(f"{name}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x}); "
                              "a config file is UTF-8 YAML") from None
        try:
            content = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{name}:{mark.line + 1}" if mark is not None else name
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise SeqlabError(f"{where}: invalid YAML ({problem})") from None
        if content is None:
            raise SeqlabError(f"{name}: the config file is empty")
        if not isinstance(content, dict):
            raise SeqlabError(f"{name}:1: expected a mapping of options (model:, data:, trainer: ...), "
                              f"got {type(content).__name__} {str(content)[:60]!r}")


def trainer_error(error: Exception) -> str:
    """Lightning's message for a trainer option it refused, on one line, naming the option (``--trainer.NAME``)
    when the message mentions one."""
    from pytorch_lightning import Trainer

    message = " ".join(str(error).split()) or type(error).__name__
    options = set(inspect.signature(Trainer.__init__).parameters) - {"self"}
    named = next((word for word in re.findall(r"\w+", message) if word in options), None)
    return f"--trainer.{named}: {message[:300]}" if named else f"invalid trainer configuration: {message[:300]}"


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
    mismatch = _type_mismatch(message)
    if mismatch and path:
        return f"--{'.'.join(path)}: {mismatch}"
    problem = re.search(r"Problem with given class_path '([^']+)':\s*\n\s*(\S.*)", message)
    if problem:
        return f"--{'.'.join(path) or 'class_path'}: cannot use {problem.group(1)}: {problem.group(2).strip()[:300]}"
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    detail = lines[-1] if len(lines) > 1 else (lines[0] if lines else "invalid configuration")
    return f"invalid configuration{' at ' + '.'.join(path) if path else ''}: {detail[:300]}"


def _type_mismatch(message: str) -> Optional[str]:
    """"expected int or null, got 'abc'" from jsonargparse's report of a value of the wrong type (the innermost
    one, for an option of a class given by class_path)."""
    inner = re.search(r"Expected a (.+?)\. Got value: (.*)", message)
    if inner:
        expected, given = [inner.group(1)], inner.group(2).strip()
    elif "Problem with given class_path" in message:
        return None
    else:
        given_match = re.search(r"Given value: (.*)", message)
        expected = re.findall(r"^\s*- Expected a (.+)$", message, re.M)
        if not given_match or not expected:
            return None
        given = given_match.group(1).strip()
    names, choices = [], []
    for kind in expected:
        literal = re.fullmatch(r"typing\.Literal\[(.*)\]", kind.strip())
        if literal:
            choices += [choice.strip() for choice in literal.group(1).split(",")]
            continue
        name = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", kind.strip())
        names.append("null" if name == "NoneType" else name)
    if choices:
        names.insert(0, "one of " + ", ".join(dict.fromkeys(choices)))
    return f"expected {' or '.join(dict.fromkeys(names))}, got {given[:80]!r}"


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
