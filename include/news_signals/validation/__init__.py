"""news_signals.validation: Great Expectations suites for daily batches (and training snapshots)."""

from news_signals.validation.batch import (
    BatchLimits,
    BatchValidationError,
    ExpectationOutcome,
    ValidationReport,
    check_batch,
    quarantine_batch,
    validate_batch,
)

__all__ = [
    "BatchLimits",
    "BatchValidationError",
    "ExpectationOutcome",
    "ValidationReport",
    "check_batch",
    "quarantine_batch",
    "validate_batch",
]
