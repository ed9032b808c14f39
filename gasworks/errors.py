"""The one error hierarchy. The CLI turns any GasworksError into one line on stderr."""

from __future__ import annotations


class GasworksError(Exception):
    """Base for every error a user can cause or fix. `exit_code` is what the CLI returns."""

    exit_code = 1


class NotARepoError(GasworksError):
    """The directory is not inside a git repository."""


class NotInitializedError(GasworksError):
    """The repository has no .gasworks/ yet."""


class ConfigError(GasworksError):
    """A config file or value is invalid; the message names the key and what is accepted."""


class NotFoundError(GasworksError):
    """No task (or other record) with that id."""

    exit_code = 3


class AmbiguousIdError(GasworksError):
    """A partial id matches more than one task."""


class InvalidValueError(GasworksError):
    """A field value is out of range or not one of the accepted values."""


class TransitionError(GasworksError):
    """A status change is not allowed from the task's current status, or the status moved meanwhile."""


class ClaimError(GasworksError):
    """A task could not be claimed (already claimed, not open, or blocked)."""


class CycleError(GasworksError):
    """A dependency would close a cycle; the message names the cycle."""


class ImportFormatError(GasworksError):
    """A file to import is malformed; the message names the file and line."""


class StoreError(GasworksError):
    """The store cannot be used (newer schema, corrupt file, locked too long)."""


class GitError(GasworksError):
    """A git command failed; the message carries git's own words."""


class RunningError(GasworksError):
    """Another `gasworks run` already works on this repository."""


class ModelError(GasworksError):
    """A model endpoint answered with an error or something unreadable."""


class EndpointDownError(ModelError):
    """A model endpoint cannot be reached or keeps answering busy: not the task's fault."""


class MissingExtraError(GasworksError):
    """An optional feature needs packages that are not installed; the message names the pip extra."""


class TrackerError(GasworksError):
    """The `bd` CLI (tracker = "beads") is missing, failed or answered something unreadable; the
    message names the bd command and bd's own words."""


class SuiteError(GasworksError):
    """An eval suite is malformed, or names a suite, project or file that does not exist."""
