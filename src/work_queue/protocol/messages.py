"""Every protocol-11 message, in one namespace: ``from work_queue.protocol import messages as m``.

The classes live by direction, each with its encoder (``encode``) beside its reader
(``from_parts``): ``sent_by_worker.py`` (worker -> manager, with :func:`parse_from_worker`),
``sent_by_manager.py`` (manager -> worker, with :func:`parse_from_manager`) and
``message_base.py`` (the base class and the messages both sides send).  This module only
re-exports them.
"""

from __future__ import annotations

from .message_base import Alive, AuthRequest, End, Feature, Message
from .resume import Leaving, Resume, Resumed, ResumeRefused, ResumeToken
from .sent_by_manager import (
    FROM_MANAGER,
    RESOURCE_FORMATS,
    Category,
    Check,
    Cmd,
    Coprocess,
    Dir,
    Env,
    Exit,
    Get,
    InvalidateFile,
    Kill,
    Monitor,
    Put,
    PutCmd,
    PutUrl,
    Release,
    SendResults,
    Symlink,
    TaskFile,
    TaskResource,
    TaskStart,
    Tlq,
    Unknown,
    Unlink,
    parse_from_manager,
)
from .sent_by_worker import (
    FROM_WORKER,
    STATUS_KINDS,
    AvailableResults,
    CacheInvalid,
    CacheUpdate,
    DirItem,
    FileItem,
    Hello,
    HttpGet,
    Info,
    MissingItem,
    MonitorSummary,
    NameQuery,
    ResourceReport,
    Result,
    StatusRequest,
    Update,
    parse_from_worker,
)

__all__ = [
    "FROM_MANAGER", "FROM_WORKER", "RESOURCE_FORMATS", "STATUS_KINDS",
    "Message", "parse_from_manager", "parse_from_worker",
    # both directions
    "Alive", "AuthRequest", "End", "Feature",
    # worker -> manager
    "AvailableResults", "CacheInvalid", "CacheUpdate", "DirItem", "FileItem", "Hello",
    "HttpGet", "Info", "MissingItem", "MonitorSummary", "NameQuery", "ResourceReport",
    "Result", "StatusRequest", "Update",
    # manager -> worker
    "Category", "Check", "Cmd", "Coprocess", "Dir", "Env", "Exit", "Get", "InvalidateFile",
    "Kill", "Monitor", "Put", "PutCmd", "PutUrl", "Release", "SendResults", "Symlink",
    "TaskFile", "TaskResource", "TaskStart", "Tlq", "Unknown", "Unlink",
    # the wq-py-resume extension (protocol/resume.py)
    "Leaving", "Resume", "ResumeRefused", "ResumeToken", "Resumed",
]
