"""The error every ingest backend raises for an unusable input."""


class IngestError(Exception):
    """An input that cannot be ingested: `code` is a short machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def check_size(size_bytes: int, max_file_mb: float) -> None:
    """Refuse a file over `ingest.max_file_mb` before anything reads it."""
    size_mb = size_bytes / 2**20
    if size_mb > max_file_mb:
        raise IngestError(
            "too_large", f"the file is {size_mb:.0f} MB (ingest.max_file_mb: {max_file_mb:g})"
        )
