"""Flex Actions for Flask: custom admin buttons whose logic runs on the app's own server."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import fields
from .caller import Caller, current_caller
from .declare.actions import Action, ActionKind
from .declare.approval import Approval, ApprovalRequest
from .declare.hooks import Scope
from .declare.options import DynamicSelect
from .errors import (
    ActionError,
    AuthenticationError,
    FlexActionsError,
    PermissionDenied,
    ServiceUnavailable,
)
from .extension import FlexActions
from .run.answers import Result
from .run.audit import AuditRecord
from .run.progress import JobCancelled, report_progress

try:
    __version__ = version("flask-flexactions")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Action",
    "ActionError",
    "ActionKind",
    "Approval",
    "ApprovalRequest",
    "AuditRecord",
    "AuthenticationError",
    "Caller",
    "DynamicSelect",
    "FlexActions",
    "FlexActionsError",
    "JobCancelled",
    "PermissionDenied",
    "Result",
    "Scope",
    "ServiceUnavailable",
    "__version__",
    "current_caller",
    "fields",
    "report_progress",
]
