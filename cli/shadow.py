"""``modelway shadow``, ``modelway compare`` and ``modelway replay``: shadow traffic, request
capture, and judging a candidate version on real traffic.

``shadow MODEL [--alias A] [--version V | --off] [--percent P] [--capture P]`` sets the alias's
shadow version and rates (what is not given stays; recorded in ``modelway history``).
``compare MODEL [--alias A] [--since 24h] [--html FILE]`` reads the alias's captures into the
report: per version requests, error rate, p50/p99 latency and input drift (PSI), per pair the
agreement; ``--html`` also writes it as a web page. ``replay CAPTURE --version V`` scores the
captured requests (a captures key or prefix, or a local .jsonl of captures) with version V
through batch scoring and reports V's agreement with what the primary answered.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from functions.core.capture.records import CaptureRecord


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    shadow = subparsers.add_parser(
        "shadow",
        help="send a copy of an alias's traffic to a shadow version, and capture it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shadow.add_argument("model")
    shadow.add_argument("--alias", default="default")
    target = shadow.add_mutually_exclusive_group()
    target.add_argument("--version", type=int, default=None, help="the shadow version")
    target.add_argument("--off", action="store_true", help="stop shadowing")
    shadow.add_argument("--percent", type=int, default=None, help="requests shadowed, 0..100")
    shadow.add_argument(
        "--capture", type=int, default=None, metavar="PCT", help="requests captured, 0..100"
    )
    shadow.set_defaults(func=_shadow)

    compare = subparsers.add_parser(
        "compare", help="report on an alias's captured traffic: latency, errors, agreement, drift"
    )
    compare.add_argument("model")
    compare.add_argument("--alias", default="default")
    compare.add_argument("--since", default=None, help="an ISO date/time, or an age: 30m, 24h, 7d")
    compare.add_argument(
        "--html", type=Path, default=None, metavar="FILE", help="also write a web page"
    )
    compare.set_defaults(func=_compare)

    replay = subparsers.add_parser(
        "replay", help="score captured requests with another version through batch scoring"
    )
    replay.add_argument("capture", help="a captures/ key or prefix, or a local .jsonl of captures")
    replay.add_argument("--version", type=int, required=True)
    replay.add_argument(
        "--wait", type=float, default=900.0, help="seconds to wait for the job (AWS)"
    )
    replay.set_defaults(func=_replay)


def _shadow(args: argparse.Namespace) -> int:
    from cli import print_json
    from cli.actor import current_actor
    from cli.output import usage
    from functions.core.backends import current
    from functions.core.capture.traffic import set_traffic

    given: dict[str, Any] = {}
    if args.off:
        given["shadow_version"] = None
    elif args.version is not None:
        given["shadow_version"] = args.version
    if args.percent is not None:
        given["shadow_percent"] = args.percent
    if args.capture is not None:
        given["capture_percent"] = args.capture
    if not given:
        raise usage("give --version V, --off, --percent P or --capture P")
    alias = set_traffic(
        registry=current().registry,
        model=args.model,
        alias=args.alias,
        actor=current_actor(),
        **given,
    )
    from dataclasses import asdict

    print_json(asdict(alias))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from cli import print_json, print_table
    from cli.output import mode, print_note
    from functions.core.backends import current
    from functions.core.capture import compare_alias

    backends = current()
    report = compare_alias(
        registry=backends.registry,
        store=backends.store,
        model=args.model,
        alias=args.alias,
        since=args.since,
    )
    if args.html is not None:
        from functions.core.capture.html import render_html

        args.html.write_text(render_html(report), encoding="utf-8")
        print_note(f"wrote {args.html}")
    if mode.json:
        print_json(report)
        return 0
    rows = []
    for v in report["versions"]:
        drift = "; ".join(
            f"{name} {d['psi_max']} ({d['level']})"
            for name, d in ((v.get("drift") or {}).get("inputs") or {}).items()
            if d.get("rows")
        )
        rows.append(
            [
                f"v{v['version']}",
                v["role"],
                str(v["requests"]),
                f"{v['error_rate']:.2%}",
                str(v["p50_ms"]),
                str(v["p99_ms"]),
                drift or "-",
            ]
        )
    print_table(
        ["VERSION", "ROLE", "REQUESTS", "ERRORS", "P50 MS", "P99 MS", "DRIFT (MAX PSI)"], rows
    )
    pairs = [
        [
            f"v{p['primary']} vs v{p['shadow']}",
            str(p["compared"]),
            str(p["agreement"]),
            ", ".join(_describe(o) for o in p["outputs"]) or "-",
        ]
        for p in report["pairs"]
    ]
    if pairs:
        print_table(["PAIR", "COMPARED", "AGREEMENT", "BY OUTPUT"], pairs)
    return 0


def _describe(output: dict[str, Any]) -> str:
    if output["measure"] in ("argmax", "exact"):
        return f"{output['output']} {output['measure']} {output['agreement']}"
    if output["measure"] == "cosine":
        return f"{output['output']} cosine mean {output['mean']} min {output['min']}"
    return f"{output['output']} max|Δ| {output['max']}"


def _replay(args: argparse.Namespace) -> int:
    from cli import print_json
    from cli.batch import input_key, job_view
    from functions.batch.events import job_id_for, parse_notification
    from functions.batch.local import local_object_event
    from functions.batch.results import result_keys
    from functions.core.backends import current
    from functions.core.capture.exceptions import InvalidCapture, NoCaptures
    from functions.core.capture.replay import build_replay_input, replay_report
    from functions.core.clock import utc_now

    backends = current()
    records = list(_capture_records(backends.store, args.capture))
    if not records:
        raise NoCaptures(f"no capture records in {args.capture}")
    built = build_replay_input(records)
    if len(built.models) != 1:
        raise InvalidCapture(
            f"the captures are of {len(built.models)} models; replay one at a time"
        )
    (model,) = built.models
    version = backends.registry.get_version(model=model, version=args.version)
    if not built.lines:
        raise InvalidCapture(
            f"nothing to replay: {built.skipped_redacted} request(s) had their inputs hashed or "
            f"dropped, {built.skipped_failed} failed"
        )
    name = f"replay-{utc_now().replace(':', '').replace('.', '')}.jsonl"
    key = input_key(model=model, target=str(args.version), name=name)
    backends.store.put_object(key=key, body=built.body)
    event = (
        local_object_event(settings=backends.settings, key=key)
        if backends.settings.is_local
        else None
    )
    if event is not None:
        with contextlib.redirect_stdout(sys.stderr):  # the handler logs JSON to stdout
            from functions.batch.dispatch import RetryableBatchFailure
            from functions.batch.handler import handler

            # A failed job is reported below from its record, as ``modelway batch`` does.
            with contextlib.suppress(RetryableBatchFailure):
                handler(event, None)
        (ref,) = parse_notification(event)
        job = backends.registry.get_job(job_id=job_id_for(ref))
        # A running `modelway up` watches inputs/ too and may have taken the job first.
        deadline = time.monotonic() + args.wait
        while job.status == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            job = backends.registry.get_job(job_id=job.job_id)
    else:
        job = _wait_for_job(backends.registry, model=model, key=key, seconds=args.wait)
    if job.status not in ("succeeded", "partial"):
        print_json({"job": job_view(job)})
        return 1
    results_key, _ = result_keys(model=model, version=args.version, job_id=job.job_id, name=name)
    with backends.store.open_object(key=results_key) as stream:
        report = replay_report(
            built=built,
            results=iter(stream.readlines()),
            version=args.version,
            labels=version.manifest.get("labels"),
        )
    print_json({**report, "job": job.job_id, "input": job.input_uri})
    return 0


def _capture_records(store: Any, capture: str) -> list[CaptureRecord]:
    import json

    from functions.core.capture.reader import read_capture_object
    from functions.core.capture.records import CaptureRecord

    path = Path(capture)
    if path.is_file():
        with path.open("rb") as stream:
            return [CaptureRecord.from_dict(json.loads(line)) for line in stream if line.strip()]
    keys = sorted(store.list_objects(prefix=capture))
    return [
        r for key in keys if key.endswith(".jsonl") for r in read_capture_object(store, key=key)
    ]


def _wait_for_job(registry: Any, *, model: str, key: str, seconds: float) -> Any:
    """On AWS the bucket's notification starts the job: find it by its input and wait."""
    from functions.core.capture.exceptions import InvalidCapture

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for job in registry.list_jobs(model=model, limit=50):
            if job.input_uri.endswith(key) and job.status != "running":
                return job
        time.sleep(5)
    raise InvalidCapture(
        f"the replay job for {key} did not finish in {seconds:.0f} s; see modelway jobs"
    )
