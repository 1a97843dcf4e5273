"""Exceptions that the CLI's single top-level handler maps to one line and an exit code."""

from __future__ import annotations


class NbmedicError(Exception):
    """A problem the user can fix (bad input, bad config): one line, exit code ``exit_code``."""

    exit_code = 1


class UsageError(NbmedicError):
    """Wrong command-line usage or configuration: exit code 2."""

    exit_code = 2
