from __future__ import annotations

from functions.core.errors import NotFound


class ArtifactNotFound(NotFound):
    code = "artifact_not_found"


class ObjectNotFound(NotFound):
    code = "object_not_found"
