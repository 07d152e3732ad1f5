"""``modelway up`` from an empty state directory: builds, publishes, serves, prints a curl
that answers the right digit; Ctrl-C stops it cleanly; a second run reuses the model."""

from __future__ import annotations

import re
import shlex
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.up_testkit import start_up, stop

pytestmark = pytest.mark.integration


def run_printed_curl(output: str) -> dict[str, object]:
    """Run the curl the banner printed (parsed, then sent with httpx)."""
    command = re.search(r"^curl .*?(?=\n\n)", output, flags=re.S | re.M)
    assert command, output
    words = shlex.split(command.group(0).replace("\\\n", " "))
    url = words[words.index("-s") + 1]
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    body = words[words.index("-d") + 1]
    response = httpx.post(url, content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == "1"
    return response.json()  # type: ignore[no-any-return]


def test_up_serves_the_demo_model_and_its_curl_answers(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    home = tmp_path / "home"
    proc, seen = start_up(home, free_port(), free_port())
    try:
        output = "".join(seen)
        assert "building the digits demo model" in output
        held_out = int(re.search(r"a held-out (\d)", output).group(1))  # type: ignore[union-attr]
        answer = run_printed_curl(output)
        outputs = {o["name"]: o for o in answer["outputs"]}  # type: ignore[attr-defined]
        assert outputs["label"]["data"] == [held_out]
    finally:
        assert stop(proc) == 0

    # Again: the published model is reused, and a new admin secret is printed.
    old_key = re.search(r"admin key\s+(\S+)", output).group(1)  # type: ignore[union-attr]
    proc, seen = start_up(home, free_port(), free_port())
    try:
        output = "".join(seen)
        assert "building" not in output
        new_key = re.search(r"admin key\s+(\S+)", output).group(1)  # type: ignore[union-attr]
        assert new_key != old_key
        run_printed_curl(output)
        url = re.search(r"router\s+(\S+)", output).group(1)  # type: ignore[union-attr]
        versions = httpx.get(
            f"{url}/v1/models/digits/versions", headers={"x-api-key": new_key}
        ).json()
        assert [v["version"] for v in versions["versions"]] == [1]
        # The rotated-away secret no longer works.
        assert httpx.get(f"{url}/v1/models", headers={"x-api-key": old_key}).status_code == 401
    finally:
        # SIGTERM (a service manager's stop) is as clean as Ctrl-C.
        assert stop(proc, signal.SIGTERM) == 0
    # Both servers went down with it.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v2/health/live", timeout=2)
