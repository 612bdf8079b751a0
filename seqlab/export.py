"""``seqlab export``: a checkpoint's network as an ONNX file or a TorchScript module, with dynamic batch and length
axes, and ``OnnxPredictor``, which serves ``predict`` from the ONNX file under onnxruntime.

The exported graph takes the tensors the data module's collator gives (token ids, char ids and mask; or features and
mask) and returns the decoded ids with the scores they come from: NER tags (CRF Viterbi inside the graph, or the
softmax argmax) and emissions; sentence label ids, logits and probabilities (and attention weights for an attention
pooling); speech frame label ids and logits. Tokenization, vocabularies and labels stay in Python, in the
checkpoint's data module: a JSON sidecar (``<output>.json``) names the inputs, outputs and labels and points to the
checkpoint.

Both formats are traced with ``torch.jit.trace``: the model code keeps its loops over time in compiled TorchScript
where tracing would unroll them (the CRF's ``viterbi``), and takes a path without data-dependent shapes while traced
(``CharEncoder.forward_traceable``); the BiLSTM runs dense kernels on sequences reversed within their lengths, so a
traced graph is exact under padding. ONNX goes through the TorchScript-based exporter (``dynamo=False``): the
``torch.export`` one cannot keep a Python loop over a dynamic number of steps. Each written file is run on a batch
of another size, with longer rows than the traced one, and must give the model's outputs, or the export fails: a
part whose trace stays fixed to the example is caught there, not by a user.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
from torch import nn
from torchmetrics import Metric

import seqlab
from seqlab import SeqlabError
from seqlab.inference import Predictor
from seqlab.models.networks import ClassifierOutput
from seqlab.models.pooling import PooledOutput
from seqlab.models.transformer_embeddings import TransformerWordEmbedding
from seqlab.tasks.base import SequenceTask
from seqlab.tasks.frame_classification import FrameClassification
from seqlab.tasks.sentence_classification import SentenceClassification
from seqlab.tasks.token_tagging import TokenTagging

OPSET = 17
TRACED_LENGTHS = (4, 2)  # the batch a graph is traced with
PROBE_LENGTHS = (7, 3, 5)  # the batch a written graph is checked on: another size, longer rows
Tensors = tuple[torch.Tensor, ...]


def _lengths_mask(lengths: Sequence[int]) -> torch.Tensor:
    """(B, max(lengths)) bool, True on the first ``lengths[b]`` steps of row b."""
    lengths = torch.tensor(lengths)
    return torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)


# ----------------------------------------------------------------------------- the exported graphs
class ExportGraph(nn.Module):
    """A task's network over tensors: ``forward(*inputs) -> outputs``, named by ``input_names`` and
    ``output_names``. ``feeds(batch)`` picks the inputs from a collated batch; ``bind(run)`` makes the task's
    ``predict_step`` take its network outputs from ``run`` (the exported graph under a runtime), so an exported
    model gives the records ``seqlab.load(ckpt).predict`` gives."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def __init__(self, task: SequenceTask) -> None:
        super().__init__()
        object.__setattr__(self, "task", task)  # not a submodule: tracing walks a LightningModule's properties
        # the network's parts, so that tracing finds their parameters; metrics stay out
        self.parts = nn.ModuleDict({name: part for name, part in task.named_children()
                                    if not any(isinstance(m, Metric) for m in part.modules())})

    def feeds(self, batch: dict) -> Tensors:
        return tuple(batch[name] for name in self.input_names)

    def example_inputs(self, lengths: Sequence[int] = TRACED_LENGTHS) -> Tensors:
        """A padded batch of rows of these lengths: to trace with, and (``PROBE_LENGTHS``) to check the exported
        graph on a batch of another size and length."""
        raise NotImplementedError

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Each input's and output's variable axes: 0 is the batch, 1 the time steps (where it has them)."""
        axes = {name: {0: "batch", 1: "time"} for name in self.input_names}
        axes.update({name: {0: "batch", 1: "time"} for name in self.output_names})
        return axes

    def bind(self, run: Callable[[Tensors], dict[str, torch.Tensor]]) -> None:
        raise NotImplementedError

    @staticmethod
    def _decode_from(head: nn.Module, key: str, answered: dict[str, torch.Tensor]) -> None:
        """``head.decode(scores, mask)`` returns the graph's decoded ids for the scores the graph gave last, and
        decodes in PyTorch otherwise."""
        decode = head.decode

        def decode_answered(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return answered[key] if scores is answered.get("scores") else decode(scores, mask)

        head.decode = decode_answered


class TaggerGraph(ExportGraph):
    """Token tagging: token ids (B, T), [char ids (B, T, L),] mask (B, T) -> tags (B, T) (0 on padding), emissions
    (B, T, K)."""

    output_names = ("tags", "emissions")

    def __init__(self, task: TokenTagging) -> None:
        super().__init__(task)
        reads_chars = task.model.body.embedder.reads_chars
        self.input_names = ("token_ids", "char_ids", "mask") if reads_chars else ("token_ids", "mask")

    def forward(self, token_ids: torch.Tensor, *char_ids_and_mask: torch.Tensor) -> Tensors:
        mask = char_ids_and_mask[-1]
        char_ids = char_ids_and_mask[0] if len(char_ids_and_mask) == 2 else None
        batch = {"token_ids": token_ids, "mask": mask, "char_ids": char_ids}
        emissions = self.task(batch)  # (B, T, K)
        return self.task.tagger.decode(emissions, mask), emissions

    def example_inputs(self, lengths: Sequence[int] = TRACED_LENGTHS) -> Tensors:
        mask = _lengths_mask(lengths)
        token_ids = (2 + torch.arange(mask.numel()).view(mask.shape) % 5).masked_fill(~mask, self.task.hparams.padding_idx)
        if "char_ids" not in self.input_names:
            return token_ids, mask
        padding = self.task.hparams.padding_idx  # the character vocabulary's too
        width = max(lengths) - 1  # characters per word
        char_ids = (2 + torch.arange(mask.numel() * width).view(*mask.shape, width) % 7)
        char_ids = char_ids.masked_fill(torch.arange(width) >= token_ids.unsqueeze(2) % width + 1, padding)  # 1..width
        return token_ids, char_ids.masked_fill(~mask.unsqueeze(2), padding), mask

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = super().dynamic_axes()
        if "char_ids" in axes:
            axes["char_ids"][2] = "word_length"
        return axes

    def bind(self, run: Callable[[Tensors], dict[str, torch.Tensor]]) -> None:
        answered: dict[str, torch.Tensor] = {}

        def forward(batch: dict) -> torch.Tensor:
            outputs = run(self.feeds(batch))
            answered.update(tags=outputs["tags"], scores=outputs["emissions"])
            return outputs["emissions"]

        self.task.forward = forward
        self._decode_from(self.task.tagger, "tags", answered)


class ClassifierGraph(ExportGraph):
    """Sentence classification: token ids (B, T), mask (B, T) -> label ids (B,), logits (B, K), probabilities
    (B, K), and for an attention pooling its weights ``attention`` ((B, T), or (B, r, T) for r hops)."""

    input_names = ("token_ids", "mask")

    def __init__(self, task: SentenceClassification) -> None:
        super().__init__(task)
        token_ids, mask = self.example_inputs()
        with torch.no_grad():
            weights = task({"token_ids": token_ids, "mask": mask})[1].weights
        self.attention_dims = 0 if weights is None else weights.dim()  # 2: (B, T); 3: (B, r, T)
        self.output_names = ("label_ids", "logits", "probabilities") + (("attention",) if self.attention_dims else ())

    def forward(self, token_ids: torch.Tensor, mask: torch.Tensor) -> Tensors:
        logits, pooled = self.task({"token_ids": token_ids, "mask": mask})  # (B, K)
        outputs = (logits.argmax(dim=-1), logits, logits.softmax(dim=-1))
        return outputs + ((pooled.weights,) if self.attention_dims else ())

    def example_inputs(self, lengths: Sequence[int] = TRACED_LENGTHS) -> Tensors:
        mask = _lengths_mask(lengths)
        token_ids = 2 + torch.arange(mask.numel()).view(mask.shape) % 5
        return token_ids.masked_fill(~mask, self.task.hparams.padding_idx), mask

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {name: {0: "batch", 1: "time"} for name in self.input_names}
        axes.update({name: {0: "batch"} for name in ("label_ids", "logits", "probabilities")})
        if self.attention_dims:
            axes["attention"] = {0: "batch", self.attention_dims - 1: "time"}
        return axes

    def bind(self, run: Callable[[Tensors], dict[str, torch.Tensor]]) -> None:
        def forward(batch: dict) -> ClassifierOutput:
            outputs = run(self.feeds(batch))
            return ClassifierOutput(outputs["logits"], PooledOutput(None, outputs.get("attention"), None))

        self.task.forward = forward


class FrameGraph(ExportGraph):
    """Speech frame classification: features (B, T, F), mask (B, T) -> label ids (B, T) (0 on padding), logits
    (B, T, K)."""

    input_names = ("features", "mask")
    output_names = ("label_ids", "logits")

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> Tensors:
        logits = self.task({"features": features, "mask": mask})  # (B, T, K)
        return self.task.model.head.decode(logits, mask), logits

    def example_inputs(self, lengths: Sequence[int] = TRACED_LENGTHS) -> Tensors:
        mask = _lengths_mask(lengths)
        features = torch.randn(*mask.shape, self.task.hparams.feature_size, generator=torch.Generator().manual_seed(0))
        return features * mask.unsqueeze(2), mask

    def bind(self, run: Callable[[Tensors], dict[str, torch.Tensor]]) -> None:
        answered: dict[str, torch.Tensor] = {}

        def forward(batch: dict) -> torch.Tensor:
            outputs = run(self.feeds(batch))
            answered.update(label_ids=outputs["label_ids"], scores=outputs["logits"])
            return outputs["logits"]

        self.task.forward = forward
        self._decode_from(self.task.model.head, "label_ids", answered)


GRAPHS: dict[type, type[ExportGraph]] = {
    TokenTagging: TaggerGraph,
    SentenceClassification: ClassifierGraph,
    FrameClassification: FrameGraph,
}


def graph_of(task: SequenceTask) -> ExportGraph:
    """The exportable graph of a task (in eval mode), or a SeqlabError naming what can be exported."""
    if any(isinstance(module, TransformerWordEmbedding) for module in task.modules()):
        raise SeqlabError(f"cannot export a {type(task).__name__} model with a transformer word embedding: its inputs "
                          "(word pieces) are not among the exported graph's")
    for task_class, graph_class in GRAPHS.items():
        if isinstance(task, task_class):
            return graph_class(task.eval()).eval()
    exportable = ", ".join(c.__name__ for c in GRAPHS)
    raise SeqlabError(f"cannot export a {type(task).__name__} model: export supports {exportable} (NER, sentiment, "
                      "speech); translation's beam search stays in Python")


# ----------------------------------------------------------------------------- formats
class ExportFormat:
    """Writes a graph to a file and runs the file; ``name`` is the ``--format`` value."""

    name: str
    suffix: str

    def write(self, graph: ExportGraph, path: Path) -> None:
        raise NotImplementedError

    def runner(self, path: Path) -> Callable[[Tensors], Tensors]:
        """The written graph as a function: inputs -> outputs in ``output_names`` order."""
        raise NotImplementedError

    def check(self, graph: ExportGraph, path: Path) -> None:
        """The written file gives the model's outputs on a batch of another size and length than the traced one
        (ids equal, scores within 1e-4), else a SeqlabError: a part that tracing fixed to the example (a Python loop
        over time) would otherwise give wrong results without a word."""
        probe = graph.example_inputs(PROBE_LENGTHS)
        with torch.no_grad():
            expected = graph(*probe)
        try:
            outputs = self.runner(path)(probe)
        except Exception as error:  # the runtime's own error types
            problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        else:
            problem = _difference(graph.output_names, expected, outputs)
        if problem:
            raise SeqlabError(f"the exported {self.name} graph does not reproduce the model on a batch of lengths "
                              f"{list(PROBE_LENGTHS)} (traced with {list(TRACED_LENGTHS)}): {problem}; some part of "
                              f"{type(graph.task).__name__} does not export (a Python loop over time?)")


def _difference(names: Sequence[str], expected: Tensors, actual: Tensors) -> str:
    """What differs between two output tuples ('' when ids are equal and scores within 1e-4)."""
    for name, want, got in zip(names, expected, actual):
        if got.shape != want.shape:
            return f"{name} has shape {tuple(got.shape)}, not {tuple(want.shape)}"
        if want.dtype.is_floating_point and not torch.allclose(got, want, rtol=0, atol=1e-4):
            return f"{name} differs by {float((got - want).abs().max()):.3g}"
        if not want.dtype.is_floating_point and not torch.equal(got, want):
            return f"{name} differs"
    return ""


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Tracing warns about each Python value taken from a tensor (checks in the model that hold for any input), the
    exporter about its own deprecation. Tracing runs with gradients enabled: without them ``nn.MultiheadAttention``
    takes its fused inference kernel, which ONNX has no operator for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.onnx")
        yield


class OnnxFormat(ExportFormat):
    """ONNX (opset 17) by the TorchScript-based exporter, with dynamic batch and time axes."""

    name, suffix = "onnx", ".onnx"

    def write(self, graph: ExportGraph, path: Path) -> None:
        with _quiet_tracing():
            torch.onnx.export(graph, graph.example_inputs(), str(path), dynamo=False, opset_version=OPSET,
                              input_names=list(graph.input_names), output_names=list(graph.output_names),
                              dynamic_axes=graph.dynamic_axes())

    def runner(self, path: Path) -> Callable[[Tensors], Tensors]:
        session = OnnxSession(path)
        return lambda inputs: tuple(session.run(inputs).values())


class TorchScriptFormat(ExportFormat):
    """A traced TorchScript module (``torch.jit.load(path)(*inputs) -> outputs``)."""

    name, suffix = "torchscript", ".pt"

    def write(self, graph: ExportGraph, path: Path) -> None:
        with _quiet_tracing():
            traced = torch.jit.trace(graph, graph.example_inputs(), check_trace=False)
        traced.save(str(path))

    def runner(self, path: Path) -> Callable[[Tensors], Tensors]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.jit.load: "switch to torch.export"
            module = torch.jit.load(str(path))
        return lambda inputs: tuple(module(*inputs))


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (OnnxFormat(), TorchScriptFormat())}


def sidecar_path(output: Union[str, Path]) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".json")


def export(model: Union[str, Path, Predictor], output: Union[str, Path], format: str = "onnx") -> Path:
    """Writes the network of ``model`` (a checkpoint's path, or a loaded ``Predictor``) as ``format`` (``onnx`` or
    ``torchscript``) to ``output``, and beside it the sidecar ``<output>.json`` (task, labels, the inputs and outputs
    with their dynamic axes, the checkpoint's absolute path); returns the sidecar's path."""
    if format not in FORMATS:
        raise SeqlabError(f"--format {format}: choose one of {', '.join(FORMATS)}")
    if not isinstance(output, (str, os.PathLike)):
        raise SeqlabError(f"--output: expected a file name (model{FORMATS[format].suffix}), got "
                          f"{type(output).__name__}")
    predictor = model if isinstance(model, Predictor) else seqlab.load(model, open_vocabulary=False)
    graph = graph_of(predictor.task)
    if str(output).endswith(("/", os.sep)) or Path(output).is_dir():  # "out/": a folder, if not one yet
        raise SeqlabError(f"--output {str(output) or '.'}: is a directory; give a file name "
                          f"(model{FORMATS[format].suffix})")
    output = Path(output)
    if not isinstance(model, Predictor) and output.exists() and output.samefile(model):
        raise SeqlabError(f"--output {output}: is the checkpoint (--ckpt_path); give another file name "
                          f"(model{FORMATS[format].suffix})")
    sidecar = sidecar_path(output)
    axes = graph.dynamic_axes()
    description = {
        "format": format,
        "task": type(predictor.task).__name__,
        "labels": predictor.labels,
        "inputs": [{"name": name, "axes": axes.get(name, {})} for name in graph.input_names],
        "outputs": [{"name": name, "axes": axes.get(name, {})} for name in graph.output_names],
        "checkpoint": None if isinstance(model, Predictor) else str(Path(model).resolve()),
        "data_module": type(predictor.data).__name__,
        "seqlab": seqlab.__version__,
        "torch": torch.__version__,
    }
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        FORMATS[format].write(graph, output)
        try:
            FORMATS[format].check(graph, output)
        except SeqlabError:
            output.unlink()  # no file that gives wrong answers
            raise
        sidecar.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise SeqlabError(f"--output {output}: cannot write ({error.strerror or error})") from None
    return sidecar


# ----------------------------------------------------------------------------- running the ONNX file
class OnnxSession:
    """An onnxruntime session over an exported graph: ``run(inputs) -> {output name: tensor}``."""

    def __init__(self, path: Union[str, Path], threads: Optional[int] = None) -> None:
        import onnxruntime

        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 0):
            raise SeqlabError(f"threads must be a whole number of at least 1 (0 or None: onnxruntime's choice), "
                              f"got {threads!r}")

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4  # errors arrive as exceptions; no shape warnings from the loops' outputs
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable files
            raise SeqlabError(f"{path}: cannot load the ONNX model ({str(error).splitlines()[0]})") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: Tensors) -> dict[str, torch.Tensor]:
        feeds = {name: tensor.cpu().numpy() for name, tensor in zip(self.input_names, inputs)}
        return {name: torch.from_numpy(value) for name, value in zip(self.output_names,
                                                                   self.session.run(None, feeds))}


class OnnxPredictor(Predictor):
    """``predict(inputs)`` with the network run by onnxruntime from an exported file: the records
    ``seqlab.load(ckpt, open_vocabulary=False).predict(inputs)`` gives (floats within 1e-4). The checkpoint gives
    the tokenization, vocabularies and labels (and the PyTorch model, whose network is not run); ``ckpt_path``
    defaults to the one the sidecar names. The vocabulary stays the training one: the exported word embedding has
    no rows for words admitted later (``OpenVocabulary``). ``predictor``: a loaded PyTorch predictor to take the
    data module (shared: let it admit no words) and a copy of the model from instead. ``threads``: onnxruntime's
    intra-op threads (default: its own choice)."""

    def __init__(self, onnx_path: Union[str, Path], ckpt_path: Optional[Union[str, Path]] = None,
                 threads: Optional[int] = None, predictor: Optional[Predictor] = None) -> None:
        if predictor is None:
            predictor = seqlab.load(ckpt_path or self.checkpoint_of(onnx_path), open_vocabulary=False)
        super().__init__(copy.deepcopy(predictor.task), predictor.data)
        self.session = OnnxSession(onnx_path, threads)
        graph = graph_of(self.task)
        if self.session.input_names != list(graph.input_names):
            raise SeqlabError(f"{onnx_path}: inputs {self.session.input_names} do not fit the checkpoint's model "
                              f"(inputs {list(graph.input_names)})")
        graph.bind(self.session.run)

    @staticmethod
    def checkpoint_of(onnx_path: Union[str, Path]) -> str:
        """The checkpoint the sidecar of an exported file names."""
        sidecar = sidecar_path(onnx_path)
        if not sidecar.is_file():
            raise SeqlabError(f"{onnx_path}: no sidecar {sidecar.name} naming the checkpoint; give ckpt_path")
        try:
            description = json.loads(sidecar.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise SeqlabError(f"{sidecar}: not UTF-8 text (byte {error.start + 1}); give ckpt_path") from None
        except json.JSONDecodeError as error:
            raise SeqlabError(f"{sidecar}:{error.lineno}: not JSON ({error.msg}); give ckpt_path") from None
        checkpoint = description.get("checkpoint") if isinstance(description, dict) else None
        if not checkpoint or not isinstance(checkpoint, str):
            raise SeqlabError(f"{sidecar}: names no checkpoint (a 'checkpoint' path); give ckpt_path")
        return checkpoint


# ----------------------------------------------------------------------------- command line
class _ArgumentParser(argparse.ArgumentParser):
    """An option error is a SeqlabError, which ``main`` prints as one line."""

    def error(self, message: str) -> None:
        raise SeqlabError(message)


def parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="seqlab export", description="Export a checkpoint's network (NER, sentiment or speech) as ONNX or "
        "TorchScript, with dynamic batch and length axes, and a JSON sidecar (<output>.json).")
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by seqlab fit")
    parser.add_argument("--format", default="onnx", choices=list(FORMATS), help="onnx (default) or torchscript")
    parser.add_argument("--output", required=True, help="file to write (model.onnx, model.pt)")
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    """``seqlab export --ckpt_path CKPT --format onnx|torchscript --output FILE``. Errors: one line, exit 2."""
    try:
        args = parser().parse_args(argv)
        sidecar = export(args.ckpt_path, args.output, args.format)
    except SeqlabError as error:
        print(f"seqlab: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"seqlab: wrote {args.output} and {sidecar}", file=sys.stderr)
