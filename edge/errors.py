"""Errors that the CLI turns into one clear message and a non-zero exit."""

from __future__ import annotations

import re

# rtsp://user:pass@host and the password=... of cameras that take it in the path or the query.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+):[^@/\s]+@")
_PARAM_PASSWORD = re.compile(r"\b((?:password|passwd|pwd|pass|token)=)[^&;\s'\"]+", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide the passwords of camera URLs in what we print, log or send to the centre."""
    return _PARAM_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))


class XueliangError(Exception):
    """An error a user can fix; its message says what and how."""


class ConfigError(XueliangError):
    pass


class ModelError(XueliangError):
    pass


class SourceError(XueliangError):
    """A camera stream failed. Its message names the URL (FFmpeg's too), so it is redacted here: it
    goes to the log, the camera's ``last_error`` and the centre's fleet view."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))
