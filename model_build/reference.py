"""Build-time reference statistics of a model's inputs: the baseline live traffic's drift is
measured against (``functions.core.capture.drift``, population stability index).

Per numeric input whose samples have a fixed size, and per feature (an element of one sample,
row-major): the bin edges (the deciles of the build samples, deduplicated: a feature that is
always 0 has one edge) and the fraction of samples in each of the ``len(edges) + 1`` bins,
binned as the drift report bins live values (``searchsorted(side="left")`` is
``bisect_left``). Inputs that are text, have a dynamic non-batch axis (token ids), or more
than ``MAX_FEATURES`` elements per sample are left out: per-element PSI says little there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from functions.core.manifest import Signature

MAX_FEATURES = 1024
QUANTILES = tuple(q / 10 for q in range(1, 10))
MIN_ROWS = 10


def reference_statistics(
    *, signature: Signature, feeds: Mapping[str, np.ndarray]
) -> dict[str, Any] | None:
    """The manifest's ``reference`` section for ``feeds`` (the build samples), or None when
    no input qualifies."""
    import numpy as np

    inputs: dict[str, Any] = {}
    rows = 0
    for spec in signature.inputs:
        array = feeds.get(spec.name)
        if array is None or spec.datatype == "BYTES" or array.dtype.kind not in "biuf":
            continue
        if any(dim < 0 for dim in spec.shape[1:]) or array.ndim < 1 or array.shape[0] < MIN_ROWS:
            continue
        flat = np.asarray(array, dtype=np.float64).reshape(array.shape[0], -1)
        if flat.shape[1] > MAX_FEATURES:
            continue
        edges, fractions = [], []
        for column in flat.T:
            cuts = np.unique(np.quantile(column, QUANTILES))
            bins = np.searchsorted(cuts, column, side="left")
            counts = np.bincount(bins, minlength=len(cuts) + 1)
            edges.append([round(float(c), 6) for c in cuts])
            fractions.append([round(float(c) / len(column), 6) for c in counts])
        inputs[spec.name] = {"features": flat.shape[1], "edges": edges, "fractions": fractions}
        rows = max(rows, int(flat.shape[0]))
    if not inputs:
        return None
    return {"rows": rows, "binning": "deciles", "inputs": inputs}
