"""Publishing and moving aliases while the model's endpoint is ``Updating``.

The fake endpoint (``sagemaker_testkit.SageMaker``) models SageMaker's update: after
``UpdateEndpoint`` it is ``Updating`` and keeps serving its old fleet until the test says the
update finished (``finish_update``). An alias moves when its target can answer; until then
the move is pending and the alias answers from its current target. A publish either
completes or can be finished by publishing the same file again.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.deploy import rollout
from functions.core.registry.base import PendingMove
from tests.deploy.sagemaker_testkit import SageMaker, make_deployer


def default_version(registry: Any) -> int:
    return int(registry.get_alias(model="digits", alias="default").version)


def test_an_alias_moves_only_once_its_target_is_live(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)  # UpdateEndpoint adds v2: the endpoint is Updating
    assert sagemaker.status() == "Updating"
    deployer = make_deployer(sagemaker)
    assert deployer.live_versions(model="digits") == {1}

    outcome = rollout.set_alias(
        registry=aws_registry,
        deployer=deployer,
        model="digits",
        alias="default",
        version=2,
        actor="a",
    )
    assert isinstance(outcome, PendingMove)
    # Not moved: v2 is not serving yet, and the alias keeps answering from v1.
    assert default_version(aws_registry) == 1
    assert (
        rollout.complete_pending_moves(registry=aws_registry, deployer=deployer, model="digits")
        == []
    )
    assert default_version(aws_registry) == 1

    sagemaker.finish_update()
    (moved,) = rollout.complete_pending_moves(
        registry=aws_registry, deployer=deployer, model="digits"
    )
    assert (moved.alias, moved.version, moved.updated_by) == ("default", 2, "a")
    assert default_version(aws_registry) == 2
    assert aws_registry.list_pending_moves(model="digits") == []
    # Repeating it (SageMaker sends several events per change) changes nothing.
    assert (
        rollout.complete_pending_moves(registry=aws_registry, deployer=deployer, model="digits")
        == []
    )


def test_a_publish_with_an_alias_during_an_update_completes_once_the_endpoint_can_take_it(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    """Once: 409 endpoint_busy after registering, and a retry that said "already published"
    and never moved the alias. Now the move waits, and the endpoint change it needs starts
    when the update in progress is done."""
    publish(b"model one")
    publish(b"model two", alias=None)
    assert sagemaker.status() == "Updating"

    result = publish(b"model three", alias="default")  # the endpoint is busy: no change yet
    assert result.created
    assert [(m.alias, m.version) for m in result.pending] == [("default", 3)]
    assert default_version(aws_registry) == 1

    deployer = make_deployer(sagemaker)
    sagemaker.finish_update()  # v2's update done: v3 is not on the endpoint yet
    assert (
        rollout.complete_pending_moves(registry=aws_registry, deployer=deployer, model="digits")
        == []
    )
    assert sagemaker.status() == "Updating"  # ... so completing started the change adding v3
    assert default_version(aws_registry) == 1
    sagemaker.finish_update()
    (moved,) = rollout.complete_pending_moves(
        registry=aws_registry, deployer=deployer, model="digits"
    )
    assert (moved.alias, moved.version) == ("default", 3)
    assert default_version(aws_registry) == 3


def test_a_publish_that_failed_half_way_is_finished_by_publishing_again(
    publish: Any, aws_registry: Any, sagemaker: SageMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(b"model one")
    deployer = make_deployer(sagemaker)
    calls = {"n": 0}
    apply = deployer.apply

    def flaky(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("ThrottlingException: Rate exceeded")
        return apply(**kwargs)

    monkeypatch.setattr(deployer, "apply", flaky)
    with pytest.raises(RuntimeError):
        publish(b"model two", alias="default", deployer=deployer)
    assert default_version(aws_registry) == 1  # registered, not deployed, alias not moved

    again = publish(b"model two", alias="default", deployer=deployer)
    assert not again.created
    assert again.version.version == 2
    assert [(m.alias, m.version) for m in again.pending] == [("default", 2)]
    sagemaker.finish_update()
    rollout.complete_pending_moves(registry=aws_registry, deployer=deployer, model="digits")
    assert default_version(aws_registry) == 2
    # And once done, publishing again is the no-op it always was.
    final = publish(b"model two", alias="default", deployer=deployer)
    assert (final.created, final.aliases, final.pending) == (False, (), ())


def test_a_new_alias_is_recorded_at_once(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    """Nothing answered for an alias that did not exist: it names its target at once (and
    answers 503 with Retry-After until the endpoint serves it)."""
    publish(b"model one")
    publish(b"model two", alias=None)
    outcome = rollout.set_alias(
        registry=aws_registry,
        deployer=make_deployer(sagemaker),
        model="digits",
        alias="beta",
        version=2,
        actor="a",
    )
    assert not isinstance(outcome, PendingMove)
    assert aws_registry.get_alias(model="digits", alias="beta").version == 2


def test_the_endpoints_in_service_event_makes_the_waiting_move(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    """What the endpoint-events function does when SageMaker reports the endpoint
    ``IN_SERVICE``: the move that waited for the update is made, with its requester."""
    from functions.endpoint_events.in_service import handle_event
    from tests.deploy.sagemaker_testkit import ENDPOINT, PREFIX

    publish(b"model one")
    publish(b"model two", alias=None)
    deployer = make_deployer(sagemaker)
    rollout.set_alias(
        registry=aws_registry,
        deployer=deployer,
        model="digits",
        alias="default",
        version=2,
        actor="b",
    )
    sagemaker.finish_update()
    event = {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Endpoint State Change",
        "detail": {"EndpointName": ENDPOINT, "EndpointStatus": "IN_SERVICE"},
    }
    result = handle_event(event=event, prefix=PREFIX, deployer=deployer, registry=aws_registry)
    assert result["moved"] == ["default->v2"]
    alias = aws_registry.get_alias(model="digits", alias="default")
    assert (alias.version, alias.updated_by) == (2, "b")


def test_the_api_answers_202_for_a_move_that_waits_for_its_target(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    from fastapi.testclient import TestClient

    from functions.api.app import create_app
    from functions.core import keys
    from functions.core.settings import Settings
    from tests.aws_testkit import REGION, TABLE
    from tests.deploy.sagemaker_testkit import PREFIX

    publish(b"model one")
    publish(b"model two", alias=None)
    settings = Settings(env="test", region=REGION, table_name=TABLE, endpoint_prefix=PREFIX)
    app = create_app(settings=settings)
    state = app.state.modelway
    state.backends = state.backends.replace(
        registry=aws_registry, deployer=make_deployer(sagemaker)
    )
    _, admin = keys.create_key(registry=aws_registry, name="ops", models=["*"], admin=True)
    with TestClient(app) as client:
        answer = client.put(
            "/v1/models/digits/aliases/default", json={"version": 2}, headers={"x-api-key": admin}
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["pending"] is True
        assert answer.json()["version"] == 2
        assert default_version(aws_registry) == 1
        sagemaker.finish_update()
        # The next move of the model (or the InService event) makes it.
        again = client.put(
            "/v1/models/digits/aliases/default", json={"version": 2}, headers={"x-api-key": admin}
        )
        assert again.status_code == 200, again.text
    assert default_version(aws_registry) == 2


def test_a_pending_move_to_a_version_rejected_meanwhile_is_dropped_where_gated(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    """The gate holds when a pending move is made, not only when it was asked for: v2 was
    approved when the move was requested, rejected while the endpoint updated, and the
    InService event (endpoint-events, as the prod handler calls it) does not move to it."""
    from functions.core import approval
    from functions.endpoint_events.in_service import handle_event
    from tests.deploy.sagemaker_testkit import ENDPOINT, PREFIX

    publish(b"model one")
    publish(b"model two", alias=None)
    deployer = make_deployer(sagemaker)
    approval.decide(
        registry=aws_registry,
        model="digits",
        version=2,
        decision="approved",
        actor="b",
        two_person=True,
    )
    outcome = rollout.set_alias(
        registry=aws_registry,
        deployer=deployer,
        model="digits",
        alias="default",
        version=2,
        actor="b",
        require_approval=True,
    )
    assert isinstance(outcome, PendingMove)
    approval.decide(
        registry=aws_registry,
        model="digits",
        version=2,
        decision="rejected",
        actor="c",
        reason="bad labels",
        two_person=True,
    )
    sagemaker.finish_update()
    event = {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Endpoint State Change",
        "detail": {"EndpointName": ENDPOINT, "EndpointStatus": "IN_SERVICE"},
    }
    result = handle_event(
        event=event, prefix=PREFIX, deployer=deployer, registry=aws_registry, require_approval=True
    )
    assert result["moved"] == []
    assert default_version(aws_registry) == 1
    assert aws_registry.list_pending_moves(model="digits") == []
