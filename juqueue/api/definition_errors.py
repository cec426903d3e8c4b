"""The definition errors as the API shows them: the strings `definition_errors` always had, and
each one with its file and experiment (`definition_error_details`, and per experiment)."""

from __future__ import annotations

from typing import Iterable, Mapping

from juqueue.api.models.status import DefinitionErrorModel
from juqueue.definitions.models import DefinitionError


def error_details(texts: Iterable[str], known: Mapping[str, DefinitionError],
                  sources: Mapping[str, str]) -> list[DefinitionErrorModel]:
    """One structured error per string. `known` are the last applied definitions' errors by their
    text; a string not among them (clusters.yaml, an evaluation that failed as a whole) is tied
    to no file. `sources` (experiment -> its file) names the experiment of a file that defines
    exactly one when the error itself does not."""
    by_file: dict[str, list[str]] = {}
    for name, file in sources.items():
        by_file.setdefault(file, []).append(name)
    out = []
    for text in texts:
        err = known.get(text)
        if err is None:
            out.append(DefinitionErrorModel(text=text, message=text))
            continue
        experiment = err.experiment
        if experiment is None and len(by_file.get(err.file, [])) == 1:
            experiment = by_file[err.file][0]
        out.append(DefinitionErrorModel(text=text, file=err.file, experiment=experiment, run=err.run,
                                        field=err.field, message=err.message))
    return out

