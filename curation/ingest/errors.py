"""The error every ingest backend raises for an unusable input."""


class IngestError(Exception):
    """An input that cannot be ingested: `code` is a short machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
