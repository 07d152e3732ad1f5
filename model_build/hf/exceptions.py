"""Why packaging a Hugging Face model stops. Subclasses of ``InvalidArtifact`` so the CLI's one
error path prints each as a one-line reason."""

from __future__ import annotations

from functions.core.exceptions import InvalidArtifact


class HfModelError(InvalidArtifact):
    """The directory is not a usable local encoder (missing file, unloadable, wrong shape)."""

    code = "invalid_model"
