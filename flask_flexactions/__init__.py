"""Flex Actions for Flask: custom admin buttons whose logic runs on the app's own server."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import fields
from .actions import Action, ActionKind
from .answers import Result
from .caller import Caller, current_caller
from .errors import (
    ActionError,
    AuthenticationError,
    FlexActionsError,
    PermissionDenied,
    ServiceUnavailable,
)
from .extension import FlexActions
from .jobs import JobCancelled, report_progress
from .options import DynamicSelect

try:
    __version__ = version("flask-flexactions")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Action",
    "ActionError",
    "ActionKind",
    "AuthenticationError",
    "Caller",
    "DynamicSelect",
    "FlexActions",
    "FlexActionsError",
    "JobCancelled",
    "PermissionDenied",
    "Result",
    "ServiceUnavailable",
    "__version__",
    "current_caller",
    "fields",
    "report_progress",
]
