"""``modelway package``: bring your own model — an ONNX file, a torch module or a Hugging Face
directory — into a verified ``model.tar.gz`` ready for ``modelway publish``.

Exit status: 0 packaged; 1 any other error; 2 usage; and one per refusal (each printed as
``error: <reason> (<code>)`` on stderr): ``exit_status`` of the ``model_build.exceptions`` class.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli.output import usage

EPILOG = """\
sources (exactly one):
  MODEL.onnx               an ONNX file from any exporter; the signature is read from the graph
  --torch MODULE:CALLABLE  a callable returning a torch.nn.Module (your code, importable from
                           PYTHONPATH or the current directory); --samples are named after
                           forward's parameters and become the input names
  --hf DIR --task TASK     a local Hugging Face directory (config, weights, tokenizer.json);
                           --quantize int8 or --fp16 make a separate compressed artifact

exit status:
  0 packaged (a JSON summary on stdout)     7 parity over tolerance
  1 any other error                         8 samples/expected do not fit the model
  2 usage                                   9 the model fails when ONNX Runtime runs it
  3 a file or directory does not exist     10 export (or import of MODULE:CALLABLE) failed
  4 an operator ONNX Runtime cannot run    12 not a valid ONNX model
  5 a datatype the v2 protocol cannot carry (e.g. scikit-learn's ZipMap)
  6 an input with no dynamic batch axis

examples:
  modelway package iris.onnx --name iris --samples x.npz --expected y.npz
  modelway package --hf ./all-MiniLM-L6-v2 --task feature-extraction --name minilm
  modelway package --torch mypkg.models:make_model --samples s.npz --name ranker \\
      --dynamic token_ids:1=sequence --dynamic mask:1=sequence --max-length sequence=256
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "package",
        help="package your own model (ONNX file, torch module, Hugging Face dir) as model.tar.gz",
        description=(
            "Check a model the way publishing and the model server will (ONNX Runtime loads "
            "and runs it, every input has a dynamic batch axis, every tensor has a v2 "
            "datatype, parity with the original framework), measure its latency and write "
            "model.tar.gz. A model that cannot serve is refused with a one-line reason."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", type=Path, help="an ONNX file")
    parser.add_argument("--torch", metavar="MODULE:CALLABLE", help="a torch module factory")
    parser.add_argument("--hf", type=Path, metavar="DIR", help="a Hugging Face model directory")
    parser.add_argument(
        "--task",
        choices=("feature-extraction", "text-classification"),
        help="what the Hugging Face model does (with --hf)",
    )
    parser.add_argument("--name", required=True, help="model name (lowercase, digits, '-')")
    parser.add_argument(
        "--samples",
        type=Path,
        metavar="S.npz",
        help="named example inputs, at least 2 rows (numpy.savez); required with --torch",
    )
    parser.add_argument(
        "--expected",
        type=Path,
        metavar="E.npz",
        help="what the original framework output for --samples, named as the graph's outputs",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where model.tar.gz goes ($MODELWAY_HOME/build/NAME)",
    )
    parser.add_argument(
        "--dynamic",
        action="append",
        default=[],
        metavar="INPUT:AXIS[=NAME]",
        help=(
            "with --torch: another dynamic axis besides the batch (repeatable, or comma-"
            "separated); axes of different inputs that always have the same length share a "
            "NAME, e.g. token_ids:1=sequence,mask:1=sequence"
        ),
    )
    parser.add_argument(
        "--max-length",
        action="append",
        default=[],
        metavar="NAME=N",
        help=(
            "with --torch: an upper bound for a named dynamic axis, e.g. sequence=256; "
            "with --hf: the token bound N (default: the model's own)"
        ),
    )
    parser.add_argument(
        "--outputs",
        metavar="A,B",
        help="with --torch: output names (default: a returned dict's keys, else output_N)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="parity: largest absolute difference allowed (default 1e-4)",
    )
    parser.add_argument(
        "--scores",
        metavar="OUTPUT",
        help="an output of class scores: parity also requires the same top class per row",
    )
    parser.add_argument("--labels", metavar="A,B,...", help="class names, in score order")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        "--quantize",
        choices=("int8",),
        help="with --hf: ONNX Runtime dynamic INT8 quantization (for CPUs), a separate artifact",
    )
    precision.add_argument(
        "--fp16", action="store_true", help="with --hf: FP16 weights (for the CUDA provider)"
    )
    parser.add_argument("--description", default="", help="a sentence for the manifest")
    parser.add_argument(
        "--sensitive-input",
        action="append",
        default=[],
        metavar="NAME",
        help="an input request capture must not keep as sent ('*': all); repeatable",
    )
    parser.add_argument(
        "--sensitive-mode",
        choices=("hash", "drop"),
        default="hash",
        help="captures keep a sensitive input's SHA-256 (hash) or no inputs at all (drop)",
    )
    parser.set_defaults(func=_package)


def _package(args: argparse.Namespace) -> int:
    from cli import print_json
    from cli.output import EXIT_USAGE, print_error
    from functions.core.exceptions import InvalidArtifact, InvalidRequest

    try:
        result = _run(args)
    except InvalidArtifact as exc:  # PackagingError and the Hugging Face path's own errors
        print_error(exc.message, exc.code)
        return exit_status(exc)
    except InvalidRequest as exc:
        print_error(exc.message, exc.code)
        return EXIT_USAGE
    summary = result.summary()
    if result.manifest.parity.reference == "none":
        summary["note"] = (
            f"parity not checked: no --expected outputs; the model ran on "
            f"{result.manifest.parity.samples} {result.manifest.source['inputs']} rows"
        )
    print_json(summary)
    return 0


def _run(args: argparse.Namespace) -> Any:
    from model_build.parity import DEFAULT_TOLERANCE

    sources = [flag for flag, value in (("MODEL.onnx", args.model), ("--torch", args.torch),
                                        ("--hf", args.hf)) if value is not None]  # fmt: skip
    if len(sources) != 1:
        raise usage(f"give exactly one of MODEL.onnx, --torch, --hf (got {sources or 'none'})")
    out_dir = args.out if args.out is not None else _default_out_dir(args.name)
    tolerance = args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE
    labels = args.labels.split(",") if args.labels else None
    torch_only = {"--dynamic": args.dynamic, "--outputs": args.outputs}
    if args.torch is None and any(torch_only.values()):
        raise usage(f"{', '.join(k for k, v in torch_only.items() if v)} go with --torch")
    if args.model is not None and args.max_length:
        raise usage("--max-length goes with --torch or --hf")
    capture = (
        {"sensitive": args.sensitive_input, "mode": args.sensitive_mode}
        if args.sensitive_input
        else None
    )
    if capture is not None and args.hf is not None:
        raise usage("--sensitive-input goes with MODEL.onnx or --torch (not --hf yet)")
    hf_only = {"--task": args.task, "--quantize": args.quantize, "--fp16": args.fp16}
    if args.hf is None and any(hf_only.values()):
        raise usage(f"{', '.join(k for k, v in hf_only.items() if v)} go with --hf")

    if args.model is not None:
        from model_build.package import package_onnx

        return package_onnx(
            args.model,
            name=args.name,
            out_dir=out_dir,
            samples=args.samples,
            expected=args.expected,
            tolerance=tolerance,
            scores_output=args.scores,
            labels=labels,
            description=args.description,
            capture=capture,
        )
    if args.torch is not None:
        from model_build.package import package_torch

        if args.samples is None:
            raise usage("--torch needs --samples (named after forward's parameters)")
        if args.expected is not None:
            raise usage("--expected is for ONNX files; with --torch, eager torch is the reference")
        dynamic_axes = parse_dynamic(args.dynamic)
        max_lengths = parse_max_lengths(args.max_length)
        return package_torch(
            load_module(args.torch),
            name=args.name,
            samples=args.samples,
            out_dir=out_dir,
            dynamic_axes=dynamic_axes,
            max_lengths=max_lengths,
            output_names=args.outputs.split(",") if args.outputs else None,
            tolerance=tolerance,
            scores_output=args.scores,
            labels=labels,
            description=args.description,
            source={"callable": args.torch},
            capture=capture,
        )
    from model_build.exceptions import SourceNotFound
    from model_build.package import package_hf

    if args.task is None:
        raise usage("--hf needs --task feature-extraction or text-classification")
    if args.samples is not None or args.expected is not None:
        raise usage(
            "--samples/--expected are for ONNX files and --torch; "
            "--hf checks parity on its own sentences"
        )
    if len(args.max_length) > 1 or (args.max_length and not args.max_length[0].isdigit()):
        raise usage("with --hf, --max-length takes one number of tokens, e.g. 256")
    if not args.hf.is_dir():
        raise SourceNotFound(f"Hugging Face directory {args.hf} does not exist")
    return package_hf(
        args.hf,
        task=args.task,
        name=args.name,
        out_dir=out_dir,
        precision="int8" if args.quantize == "int8" else "fp16" if args.fp16 else "fp32",
        max_length=int(args.max_length[0]) if args.max_length else None,
        description=args.description,
    )


def exit_status(exc: Exception) -> int:
    """The exit status of a refusal: its class's (``model_build.exceptions``), or, for an error
    from elsewhere (the Hugging Face packager's own), that of the packaging error with the
    same code; 1 otherwise."""
    from model_build.exceptions import PackagingError

    status = getattr(exc, "exit_status", None)
    if isinstance(status, int):
        return status
    by_code = {cls.code: cls.exit_status for cls in PackagingError.__subclasses__()}
    return by_code.get(getattr(exc, "code", ""), 1)


def load_module(spec: str) -> Any:
    """Call ``MODULE:CALLABLE`` and return the ``nn.Module`` it builds (or names)."""
    from model_build.torch_module import load_torch_module

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise usage(f"--torch takes MODULE:CALLABLE, e.g. mypkg.models:build (got {spec!r})")
    return load_torch_module(module_name=module_name, attribute=attribute)


def parse_dynamic(specs: list[str]) -> dict[str, dict[int, str]]:
    """``["token_ids:1=sequence,mask:1=sequence"]`` → ``{"token_ids": {1: "sequence"}, ...}``;
    an axis without a name is named ``INPUT_AXIS``."""
    axes: dict[str, dict[int, str]] = {}
    for item in (part.strip() for spec in specs for part in spec.split(",")):
        if not item:
            continue
        target, _, dim_name = item.partition("=")
        name, _, axis_text = target.partition(":")
        if not name or not axis_text.isdigit() or int(axis_text) == 0:
            raise usage(
                f"--dynamic takes INPUT:AXIS[=NAME] with AXIS >= 1 (axis 0 is always the "
                f"batch), e.g. token_ids:1=sequence (got {item!r})"
            )
        axis = int(axis_text)
        axes.setdefault(name, {})[axis] = dim_name or f"{name}_{axis}"
    return axes


def parse_max_lengths(specs: list[str]) -> dict[str, int]:
    bounds: dict[str, int] = {}
    for item in (part.strip() for spec in specs for part in spec.split(",")):
        name, _, value = item.partition("=")
        if not name or not value.isdigit() or int(value) < 2:
            raise usage(f"--max-length takes NAME=N with N >= 2, e.g. sequence=256 (got {item!r})")
        bounds[name] = int(value)
    return bounds


def _default_out_dir(name: str) -> Path:
    from cli.build import default_out_dir

    return default_out_dir(name)
