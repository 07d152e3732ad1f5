from __future__ import annotations

from functions.core.exceptions import NotFound


class ArtifactNotFound(NotFound):
    code = "artifact_not_found"


class ObjectNotFound(NotFound):
    code = "object_not_found"
