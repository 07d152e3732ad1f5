"""``modelway batch submit FILE --model M [--alias A | --version V]`` and ``modelway jobs``.

``batch submit`` puts the file where an S3 upload would land, ``inputs/{model}/{target}/{name}``
in the data area, and (locally) runs the batch Lambda handler on the ``ObjectCreated`` event
S3 would send, then prints the job. On an AWS environment it uploads to the data bucket and
the bucket's notification starts the job; follow it with ``modelway jobs``.

``modelway jobs [--model M]`` lists batch jobs, newest first; ``modelway jobs show ID`` prints
one job in full.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.core.backends import current

if TYPE_CHECKING:
    from functions.core.registry.base import Job

_CHUNK = 1 << 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    batch = subparsers.add_parser("batch", help="score a file of inputs as a batch job")
    actions = batch.add_subparsers(dest="batch_command", required=True, metavar="ACTION")
    submit = actions.add_parser(
        "submit",
        help="upload a .jsonl/.csv file of inputs and score it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    submit.add_argument("file", type=Path, help="JSON Lines (.jsonl/.ndjson) or CSV (.csv)")
    submit.add_argument("--model", required=True)
    target = submit.add_mutually_exclusive_group()
    target.add_argument("--alias", default=None, help="score with this alias (default: default)")
    target.add_argument("--version", type=int, default=None, help="score with this version")
    submit.add_argument("--name", default=None, help="object name (default: the file's name)")
    submit.set_defaults(func=_submit)

    jobs = subparsers.add_parser("jobs", help="list batch jobs, or show one")
    jobs.add_argument("--model", default=None, help="only this model's jobs")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.set_defaults(func=_list)
    job_actions = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    show = job_actions.add_parser("show", help="print one job in full")
    show.add_argument("job_id")
    show.set_defaults(func=_show)


def input_key(*, model: str, target: str, name: str) -> str:
    return f"inputs/{model}/{target}/{name}"


def upload_input(*, store: Any, key: str, source: Path) -> str:
    """Stream ``source`` into the data area at ``key`` (multipart on S3); returns its URI."""
    from functions.core import progress

    size, sent = source.stat().st_size, 0
    writer = store.open_writer(key=key)
    try:
        with open(source, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                writer.write(chunk)
                sent += len(chunk)
                progress.report("uploading the input", done=sent, total=size)
    except BaseException:
        writer.abort()
        raise
    uri: str = writer.commit()
    return uri


def stage_event_inputs(*, event: dict[str, Any], settings: Any, search_dir: Path) -> list[str]:
    """Copy into the local data area the inputs an S3 event names but the area lacks, taking
    each from ``search_dir`` by its file name; returns the keys staged. Lets
    ``modelway invoke batch events/s3-put.json`` run on a fresh local stack, with the sample
    input shipped beside the event (``events/sample.jsonl``)."""
    from functions.batch.events import parse_notification
    from functions.core.backends import Backends

    store = Backends.from_settings(settings).store
    staged = []
    for ref in parse_notification(event):
        if settings.data_dir.joinpath(*ref.key.split("/")).exists():
            continue
        source = search_dir / ref.key.rsplit("/", 1)[-1]
        if source.is_file():
            upload_input(store=store, key=ref.key, source=source)
            staged.append(ref.key)
    return staged


def _submit(args: argparse.Namespace) -> int:
    from cli import print_json
    from cli.output import EXIT_USAGE, print_error, print_note
    from functions.batch.dispatch import RetryableBatchFailure
    from functions.batch.events import job_id_for, parse_notification
    from functions.batch.local import local_object_event

    source: Path = args.file
    if not source.is_file():
        print_error(f"no file {source}", "file_not_found")
        return EXIT_USAGE
    target = str(args.version) if args.version is not None else (args.alias or "default")
    key = input_key(model=args.model, target=target, name=args.name or source.name)
    backends = current()
    settings = backends.settings
    uri = upload_input(store=backends.store, key=key, source=source)
    if not settings.is_local:
        print_json({"input": uri, "status": "uploaded"})
        print_note(f"the bucket's notification starts the job: modelway jobs --model {args.model}")
        return 0

    event = local_object_event(settings=settings, key=key)
    # The handler logs (Powertools JSON) to stdout: keep stdout for the job.
    with contextlib.redirect_stdout(sys.stderr):
        from functions.batch.handler import handler

        try:
            handler(event, None)
        except RetryableBatchFailure as exc:
            print_note(f"warning: {exc.message}")
    (ref,) = parse_notification(event)
    job = current().registry.get_job(job_id=job_id_for(ref))
    print_json(job_view(job))
    return 0 if job.status in ("succeeded", "partial") else 1


def job_view(job: Job) -> dict[str, Any]:
    view = asdict(job)
    extra = view.pop("extra", {})
    for name in ("format", "started_at", "finished_at", "duration_seconds", "requests"):
        if name in extra:
            view[name] = extra[name]
    if "first_unscored_record" in extra:
        view["first_unscored_record"] = extra["first_unscored_record"]
    return view


def _list(args: argparse.Namespace) -> int:
    from cli import print_table

    rows = [
        [
            j.job_id,
            j.model,
            j.target,
            str(j.version or "-"),
            j.status,
            str(j.records),
            str(j.ok),
            str(j.errors),
            j.created_at,
            j.input_uri,
        ]
        for j in current().registry.list_jobs(model=args.model, limit=args.limit)
    ]
    headers = ["JOB ID", "MODEL", "TARGET", "VERSION", "STATUS", "RECORDS", "OK", "ERRORS"]
    print_table([*headers, "CREATED", "INPUT"], rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    from cli import print_json

    job = current().registry.get_job(job_id=args.job_id)
    print_json({**asdict(job)})
    return 0
