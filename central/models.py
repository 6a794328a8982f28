"""Imports every domain's models so that ``Base.metadata`` knows all tables (migrations, create_all)."""

from __future__ import annotations


def import_all() -> None:
    from central.alerts import models as _alerts  # noqa: F401
    from central.auth import models as _auth  # noqa: F401
    from central.dispatch import models as _dispatch  # noqa: F401
    from central.incidents import models as _incidents  # noqa: F401
    from central.media import models as _media  # noqa: F401
    from central.stations import models as _stations  # noqa: F401
    from central.webhooks import models as _webhooks  # noqa: F401
