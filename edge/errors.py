"""Errors that the CLI turns into one clear message and a non-zero exit."""


class XueliangError(Exception):
    """An error a user can fix; its message says what and how."""


class ConfigError(XueliangError):
    pass


class ModelError(XueliangError):
    pass


class SourceError(XueliangError):
    pass
