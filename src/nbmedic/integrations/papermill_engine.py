"""A papermill engine (entry point ``papermill.engine``, name ``nbmedic``)."""

from __future__ import annotations
