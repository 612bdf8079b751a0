"""Configuration checks of the ``seqlab`` command: each malformed option or config file becomes one line naming it
(a ``SeqlabError``), before any data is read or any model is built; jsonargparse's nested reports are condensed."""

from __future__ import annotations

import inspect
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

from seqlab import SeqlabError

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


def check_output_path(path: Any, option: str, kind: str) -> None:
    """Before anything runs: ``path`` (a ``kind``: "file" or "folder") can be written: it is not the other kind,
    and no folder above it is a file. A SeqlabError naming ``option`` otherwise (a run used to fail only when it
    wrote, after training or predicting)."""
    if path is None or path == "":
        return
    path = Path(str(path)).expanduser()
    other = path.is_dir() if kind == "file" else path.exists() and not path.is_dir()
    if other:
        raise SeqlabError(f"{option} {path}: is a {'folder' if kind == 'file' else 'file'}; give a {kind}")
    for above in path.parents:
        if above.exists():
            if not above.is_dir():
                raise SeqlabError(f"{option} {path}: {above} is a file, not a folder")
            return


def check_output_options(config: Any) -> None:
    """``check_output_path`` for every path a run of the parsed ``config`` (one subcommand's) writes to: predictions,
    results rows, the data cache, the trainer's root and the logger's ``save_dir``."""
    def init_arg(part: Any, name: str) -> Any:  # a class_path/init_args part, or a plain value such as False
        init_args = part.get("init_args") if hasattr(part, "get") else None
        return init_args.get(name) if init_args is not None else None

    writer, trainer = config.get("prediction_writer"), config.get("trainer") or {}
    check_output_path(writer.get("output_path") if writer else None, "--prediction_writer.output_path", "file")
    check_output_path(config.get("results_path"), "--results_path", "file")
    check_output_path(init_arg(config.get("data"), "cache_dir"), "--data.cache_dir", "folder")
    check_output_path(trainer.get("default_root_dir"), "--trainer.default_root_dir", "folder")
    check_output_path(init_arg(trainer.get("logger"), "save_dir"), "--trainer.logger.init_args.save_dir", "folder")


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
    problems = list(re.finditer(r"Problem with given class_path '([^']+)':\s*\n\s*(\S.*)", message))
    if problems:  # the innermost class that failed says why
        innermost = problems[-1]
        class_path, detail = innermost.group(1), innermost.group(2).strip()
        if detail.startswith("Parser key"):  # one of its options holds a value of the wrong kind
            rest = message[innermost.end():]
            not_callable = re.search(r"expects a function or a callable class: (.*?)\. Got value: (.*)", rest)
            if not_callable:
                return f"--{'.'.join(path)}: {not_callable.group(1)} (got {not_callable.group(2).strip()!r})"
            subtype, given = re.search(r"Subtypes: \[<class '([^']+)'>", rest), re.search(r"Given value: (.*)", rest)
            if subtype and given:
                expected = subtype.group(1).rsplit(".", 1)[-1]
                return (f"--{'.'.join(path)}: expected a {expected} (class_path and init_args) or null, got "
                        f"{given.group(1).strip()!r}")
        return f"--{'.'.join(path) or 'class_path'}: cannot use {class_path}: {detail[:300]}"
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    detail = lines[-1] if len(lines) > 1 else (lines[0] if lines else "invalid configuration")
    return f"invalid configuration{' at ' + '.'.join(path) if path else ''}: {detail[:300]}"


def _type_mismatch(message: str) -> Optional[str]:
    """"expected int or null, got 'abc'" from jsonargparse's report of a value of the wrong type (the innermost
    one, for an option of a class given by class_path)."""
    # a callable's report repeats "Got value:" with the whole class spec after the value itself
    inner = re.search(r"Expected a (.+?)\. Got value: (.*?)(?:\. Got value: .*)?$", message, re.M)
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
