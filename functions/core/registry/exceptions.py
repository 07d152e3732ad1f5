from __future__ import annotations

from typing import TYPE_CHECKING

from functions.core.exceptions import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from functions.core.registry.base import ModelVersion


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class KeyNotFound(NotFound):
    code = "key_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class VersionExists(Conflict):
    code = "version_exists"


class DuplicateArtifact(Conflict):
    """The same model file (sha256) is already registered; ``existing`` says as which version."""

    code = "duplicate_artifact"

    def __init__(self, message: str, *, existing: ModelVersion) -> None:
        super().__init__(message)
        self.existing = existing


class VersionInUse(Conflict):
    code = "version_in_use"


class VersionRetired(Conflict):
    code = "version_retired"


class NothingToRollBack(Conflict):
    code = "nothing_to_roll_back"


class JobChanged(Conflict):
    """A conditional job update found the job changed since it was read (another runner or
    delivery wrote it first); re-read it before deciding anything."""

    code = "job_changed"


class InvalidAliasTarget(InvalidInput):
    code = "invalid_alias"
