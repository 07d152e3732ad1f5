"""``modelway cost``: the GPU instance-hours a month each environment's configuration (cdk.json)
implies, at its minimum and at its maximum, hosted as production variants (before) and as
inference components (after).

The arithmetic, per model (a month is 730 hours):

- variants: every version the endpoint keeps (``--kept``: alias targets, rollback targets,
  the newest, as ``functions.core.deploy.plan`` decides) is a production variant with its own
  instances, between ``min_instance_count`` (at least 1) and ``max_instance_count`` each;
- components: one fleet per model, which SageMaker's managed instance scaling keeps between
  ``min_instance_count`` and ``max_instance_count``. At the minimum only the versions an alias
  points at (``--hot``) hold copies (``components.min_copies`` each); the others are at zero.
  Copies are packed onto instances by what one needs (accelerators, memory), so the minimum is
  the instances those copies take, and never below the fleet's own minimum.

Nothing here asks AWS: the instance sizes come from the table below (SageMaker's published
GPU count and memory per type).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.output import usage

if TYPE_CHECKING:
    from infra.config import EnvironmentConfig

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

HOURS_PER_MONTH = 730
CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
# (GPUs, memory GiB) per SageMaker hosting instance type.
INSTANCE_SIZES: dict[str, tuple[int, int]] = {
    **{
        f"ml.{family}.{size}": spec
        for family in ("g5", "g6")
        for size, spec in {
            "xlarge": (1, 16),
            "2xlarge": (1, 32),
            "4xlarge": (1, 64),
            "8xlarge": (1, 128),
            "12xlarge": (4, 192),
            "16xlarge": (1, 256),
            "24xlarge": (4, 384),
            "48xlarge": (8, 768),
        }.items()
    },
    "ml.g4dn.xlarge": (1, 16),
    "ml.g4dn.2xlarge": (1, 32),
    "ml.g4dn.4xlarge": (1, 64),
    "ml.g4dn.8xlarge": (1, 128),
    "ml.g4dn.12xlarge": (4, 192),
    "ml.g4dn.16xlarge": (1, 256),
    "ml.p4d.24xlarge": (8, 1152),
    "ml.m5.xlarge": (0, 16),
    "ml.m5.2xlarge": (0, 32),
    "ml.m5.4xlarge": (0, 64),
    "ml.c5.xlarge": (0, 8),
    "ml.c5.2xlarge": (0, 16),
    "ml.c5.4xlarge": (0, 32),
}


class UnknownInstanceType(ValueError):
    pass


@dataclass(frozen=True)
class Estimate:
    env: str
    instance_type: str
    copies_per_instance: int
    # Instances the aliased versions' copies take; above the fleet's maximum they cannot all
    # be placed (SageMaker leaves the rest pending).
    hot_instances: int
    fleet_max: int
    variants_min: int
    variants_max: int
    components_min: int
    components_max: int


def copies_per_instance(*, instance_type: str, accelerators: int, memory_mb: int) -> int:
    """How many copies of a component fit on one instance (at least one: SageMaker refuses a
    component that fits none, which is a configuration to fix, not a cost)."""
    if instance_type not in INSTANCE_SIZES:
        known = ", ".join(sorted(INSTANCE_SIZES))
        raise UnknownInstanceType(f"no size known for {instance_type} (known: {known})")
    gpus, memory_gib = INSTANCE_SIZES[instance_type]
    by_memory = (memory_gib * 1024) // memory_mb
    by_gpus = gpus // accelerators if accelerators else by_memory
    return max(1, min(by_gpus, by_memory))


def estimate(config: EnvironmentConfig, *, models: int, kept: int, hot: int) -> Estimate:
    sm = config.sagemaker
    ic = sm.components
    per_instance = copies_per_instance(
        instance_type=sm.instance_type, accelerators=ic.accelerators, memory_mb=ic.memory_mb
    )
    hot = min(hot, kept)
    hot_instances = math.ceil(hot * ic.min_copies / per_instance)
    fleet_min = min(max(sm.min_instance_count, hot_instances), sm.max_instance_count)
    return Estimate(
        env=config.name,
        instance_type=sm.instance_type,
        copies_per_instance=per_instance,
        hot_instances=hot_instances,
        fleet_max=sm.max_instance_count,
        variants_min=models * kept * max(sm.min_instance_count, 1) * HOURS_PER_MONTH,
        variants_max=models * kept * sm.max_instance_count * HOURS_PER_MONTH,
        components_min=models * fleet_min * HOURS_PER_MONTH,
        components_max=models * sm.max_instance_count * HOURS_PER_MONTH,
    )


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="instance-hours a month per environment: variants vs inference components",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--env", help="one environment of cdk.json (default: all)")
    parser.add_argument("--models", type=int, default=1, help="models served (default 1)")
    parser.add_argument(
        "--kept",
        type=int,
        default=3,
        help="versions each endpoint keeps: alias and rollback targets, the newest (default 3)",
    )
    parser.add_argument(
        "--hot",
        type=int,
        default=1,
        help="versions an alias points at, per model (default 1; a canary makes it 2)",
    )
    parser.add_argument("--cdk-json", type=Path, default=CDK_JSON, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from cli import output
    from infra.config import ConfigError, load_environment

    if min(args.models, args.kept, args.hot) < 1:
        raise usage("--models, --kept and --hot must be at least 1")
    environments: dict[str, Any] = json.loads(args.cdk_json.read_text())["context"]["environments"]
    names = [args.env] if args.env else list(environments)
    found_all: list[Estimate] = []
    for name in names:
        try:
            config = load_environment(environments, name)
            found = estimate(config, models=args.models, kept=args.kept, hot=args.hot)
        except (ConfigError, UnknownInstanceType) as exc:
            raise usage(str(exc)) from exc
        found_all.append(found)
    if output.mode.json:
        output.print_json([dataclasses.asdict(found) for found in found_all])
        return 0
    rows = [
        [
            found.env,
            found.instance_type,
            str(found.copies_per_instance),
            f"{found.variants_min:,}",
            f"{found.variants_max:,}",
            f"{found.components_min:,}",
            f"{found.components_max:,}",
        ]
        for found in found_all
    ]
    output.print_table(
        [
            "ENV",
            "INSTANCE",
            "COPIES PER INSTANCE",
            "VARIANTS MIN",
            "VARIANTS MAX",
            "COMPONENTS MIN",
            "COMPONENTS MAX",
        ],
        rows,
    )
    for found in found_all:
        if found.hot_instances > found.fleet_max:
            output.print_note(
                f"{found.env}: the copies aliases keep need {found.hot_instances} instances, "
                f"over max_instance_count {found.fleet_max}: raise it or lower min_copies"
            )
    output.print_note(
        f"instance-hours a month ({HOURS_PER_MONTH} h) for {args.models} model(s), "
        f"{args.kept} version(s) kept per endpoint, {args.hot} an alias points at"
    )
    return 0
