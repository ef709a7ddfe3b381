"""Errors a user can act on. The CLI prints them as one line and exits non-zero, without a traceback."""


def shorten(text: str, limit: int = 60) -> str:
    """A user's value quoted back in an error, cut to a readable length."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class DriveRunnerError(Exception):
    """Base class: anything raised as a DriveRunnerError is the user's to fix, not a bug."""


class ConfigError(DriveRunnerError):
    """A config value that is unknown, of the wrong type or out of range.

    The message always names the offending key, so the one printed line says where to look.
    """

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class DatasetNotFoundError(DriveRunnerError):
    """A dataset is not on disk and could not be downloaded."""


class MaskError(DriveRunnerError):
    """A pruning mask broke an invariant (wrong survivor count, a masked weight not zero, non-finite scores)."""


class TrainingDiverged(DriveRunnerError):
    """The loss became NaN or infinite; the run cannot produce a meaningful result."""


class CheckpointError(DriveRunnerError):
    """A checkpoint that cannot be trusted: unreadable, not ours, corrupted or non-finite."""
