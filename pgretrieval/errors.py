"""One exception hierarchy, so callers can catch `PgRetrievalError` and the CLI can print one clear line.

Every message says what was wrong and what to do about it. SQL functions raise with a SQLSTATE in the
``PR`` class (see ``sql/``); :func:`from_database_error` turns those into the typed exceptions below.
"""

from __future__ import annotations


class PgRetrievalError(Exception):
    """Base class of every error pgretrieval raises on purpose."""


class ConfigurationError(PgRetrievalError):
    """A setting (environment variable, CLI flag, argument) is missing or invalid."""


class ServerError(PgRetrievalError):
    """The embedded PostgreSQL server could not be started, stopped or reached."""


class DatabaseUnavailableError(PgRetrievalError):
    """The database named by the DSN cannot be reached or refuses the connection."""


class SchemaError(PgRetrievalError):
    """The pgretrieval schema is missing, outdated, or cannot be installed."""


class NotFoundError(PgRetrievalError):
    """A named collection, embedder or document does not exist."""


class InvalidInputError(PgRetrievalError):
    """An argument, filter, document field or query is malformed."""


class IngestError(PgRetrievalError):
    """A document could not be ingested; the message names the document and the field."""


class ModelError(PgRetrievalError):
    """A model could not be loaded or produced unusable output."""


# SQLSTATEs raised by the SQL functions (class "PR", user-defined). Kept in one place so SQL and Python agree.
SQLSTATE_TO_ERROR: dict[str, type[PgRetrievalError]] = {
    "PR001": NotFoundError,  # unknown collection / embedder / document
    "PR002": InvalidInputError,  # malformed argument (filter, count, dimension, ...)
    "PR003": SchemaError,  # schema state problem
    "22023": InvalidInputError,  # invalid_parameter_value
    "22P02": InvalidInputError,  # invalid_text_representation (bad json, bad number)
    "22007": InvalidInputError,  # invalid_datetime_format
    "22008": InvalidInputError,  # datetime_field_overflow
    "22021": InvalidInputError,  # character_not_in_repertoire (e.g. NUL in text)
    "2200N": InvalidInputError,  # invalid_xml_content (never expected; listed for completeness)
    "22032": InvalidInputError,  # invalid_json_text
    "54000": InvalidInputError,  # program_limit_exceeded (e.g. tsvector too large)
}


def from_database_error(exc: BaseException) -> PgRetrievalError | None:
    """Map a psycopg error raised by a pgretrieval SQL function onto a typed error, or None if unknown."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is None:
        return None
    cls = SQLSTATE_TO_ERROR.get(sqlstate)
    if cls is None:
        return None
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) or str(exc).splitlines()[0]
    hint = getattr(diag, "message_hint", None)
    message = f"{primary} ({hint})" if hint else primary
    err = cls(message)
    err.__cause__ = exc
    return err
