"""The worker side of Wove: code that runs tasks sent from a weave in another process.

:mod:`wove.integrations.worker` holds the runtime every worker shares (the stdio process, the
network services, backend jobs) and the ``run``/``arun`` entry points backends call with a
signed payload; :mod:`wove.worker` is their public home. Importing this package imports nothing
else.
"""

from __future__ import annotations

__all__: list[str] = []
