"""Why a build or a packaging stops: every gate a model must pass before it becomes an artifact.

Subclasses of ``InvalidArtifact`` so that the CLI's one error path (and publishing) treat a
model that fails its quality gate exactly like an artifact that fails verification. Each
refusal ``modelway package`` can give has its own ``code`` and its own process exit status
(``exit_status``), so a script can tell them apart without parsing the message.
"""

from __future__ import annotations

from functions.core.exceptions import InvalidArtifact


class PackagingError(InvalidArtifact):
    """A model that cannot become an artifact. ``exit_status`` is what ``modelway package``
    exits with (1 is any other error, 2 a usage error, as argparse has it)."""

    exit_status = 1


class QualityGateFailed(PackagingError):
    """The trained model is not good enough to ship (accuracy below the floor)."""

    code = "quality_gate_failed"
    exit_status = 11


class SourceNotFound(PackagingError, FileNotFoundError):
    """A model file, sample file or model directory the command was given does not exist."""

    code = "file_not_found"
    exit_status = 3


class UnsupportedOperator(PackagingError):
    """ONNX Runtime cannot load the graph: an operator (or opset) it does not implement."""

    code = "unsupported_operator"
    exit_status = 4


class UnsupportedDatatype(PackagingError):
    """A graph input or output the Open Inference Protocol cannot carry: a non-tensor value
    (e.g. scikit-learn's ZipMap, a sequence of maps) or an element type with no v2 datatype."""

    code = "unsupported_datatype"
    exit_status = 5


class NoBatchAxis(PackagingError):
    """An input (or output) whose first axis is not a dynamic batch axis: requests could not
    carry several rows, and the model server could not batch them."""

    code = "no_batch_axis"
    exit_status = 6


class ParityFailed(PackagingError):
    """The ONNX graph does not compute what the original framework computes."""

    code = "parity_failed"
    exit_status = 7


class InvalidSamples(PackagingError):
    """Sample inputs or expected outputs that do not fit the model's signature."""

    code = "invalid_samples"
    exit_status = 8


class ModelRunFailed(PackagingError):
    """The graph loads but fails (or answers nonsense, e.g. not one row per input row) when
    ONNX Runtime runs it on the sample or generated inputs."""

    code = "model_run_failed"
    exit_status = 9


class ExportFailed(PackagingError):
    """The framework model could not be imported or exported to ONNX."""

    code = "export_failed"
    exit_status = 10


class InvalidModel(PackagingError):
    """The model file is not a valid ONNX model (unreadable, fails onnx.checker, too large)."""

    code = "invalid_model"
    exit_status = 12


def one_line(exc: BaseException, *, limit: int = 500) -> str:
    """What a refusal quotes of a library's error (torch, onnx, ONNX Runtime): its message on
    one line, cut at ``limit`` characters, since some of them run to pages."""
    return " ".join(str(exc).split())[:limit]
