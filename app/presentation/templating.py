"""The one Jinja environment the dashboard's pages and the HTML report render with.

One set of rules for every template: autoescaping on, undefined names are errors (a typo fails
a test instead of rendering blank), the number formats as filters, the report's cell helpers as
globals. Template names are unique across the two folders it loads from.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from app.presentation.formatting import FILTERS

_APP = Path(__file__).resolve().parents[1]
TEMPLATE_DIRS = (_APP / "dashboard" / "templates", _APP / "reporting" / "templates")


@lru_cache
def environment() -> jinja2.Environment:
    from app.reporting import common

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in TEMPLATE_DIRS]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.globals.update(
        rule_title=common.RULE_TITLES.__getitem__,
        auc_cell=common.auc_cell,
        tpr_cell=common.tpr_cell,
        measured_cell=common.measured_cell,
        limit_cell=common.limit_cell,
    )
    return env
