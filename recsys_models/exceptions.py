"""The library's own exceptions; public boundaries raise these or ValueError/TypeError."""


class RecsysError(Exception):
    """Base class of every error the library raises on purpose."""


class DataSourceError(RecsysError):
    """A data source cannot be read: missing, unreachable, malformed beyond row level."""


class NotFittedError(RecsysError):
    """A model was asked to score before `fit` or `load`."""


class UnknownFamilyError(RecsysError, ValueError):
    """A model family name that the registry does not know."""


class TrainingDiverged(RecsysError, FloatingPointError):
    """Training produced a non-finite figure, or a validation error far worse than a trivial baseline's.

    A `FloatingPointError` too, as the library's earlier NaN checks raised, so callers catching that still do.
    """
