"""The benchmarks a decontamination filter reads: the `Benchmark` setting (a table of test items,
jsonl or parquet, and/or a folder of images) and the readers of its table's rows. A file that
cannot be read, or a column missing from every row, is a ConfigError naming the file and field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator, model_validator

from curation.config import ConfigError, StrictModel

TABLE_SUFFIXES = (".jsonl", ".parquet")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
ID_COLUMNS = ("id", "questionId")  # item ids when the benchmark names no `id` column


class Benchmark(StrictModel):
    """One benchmark: a table of its test items (jsonl or parquet) and/or a folder of its images."""

    name: str = Field(min_length=1)
    path: str | None = Field(
        None, description="A .jsonl or .parquet file of items (relative to the working folder)."
    )
    question: str = Field("question", description="The column holding an item's question.")
    answer: str | None = Field(
        "answer", description="The column of its answer (a string or a list); null: none."
    )
    id: str | None = Field(None, description="The column of item ids; default `id`/`questionId`.")
    images: str | None = Field(None, description="A folder of the benchmark's images.")
    image: str = Field(
        "image",
        description="The column naming each item's image file in `images` (or holding its bytes).",
    )

    @field_validator("path")
    @classmethod
    def _table_exists(cls, path: str | None) -> str | None:
        if path is not None:
            if not Path(path).is_file():
                raise ValueError(f"no benchmark file {path} (from {Path.cwd()})")
            if Path(path).suffix.lower() not in TABLE_SUFFIXES:
                raise ValueError(f"{path}: not a .jsonl or .parquet file")
        return path

    @field_validator("images")
    @classmethod
    def _folder_exists(cls, folder: str | None) -> str | None:
        if folder is not None and not Path(folder).is_dir():
            raise ValueError(f"no image folder {folder} (from {Path.cwd()})")
        return folder

    @model_validator(mode="after")
    def _has_something(self) -> Benchmark:
        if self.path is None and self.images is None:
            raise ValueError(f"benchmark {self.name}: give a `path`, an `images` folder or both")
        return self

    def image_files(self) -> list[tuple[str, Path]]:
        """(name relative to the folder, path) of every image in `images`, sorted."""
        if self.images is None:
            return []
        folder = Path(self.images)
        files = (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        return sorted((p.relative_to(folder).as_posix(), p) for p in files if p.is_file())

    def files(self) -> list[Path]:
        return ([Path(self.path)] if self.path else []) + [p for _, p in self.image_files()]


def jsonl_rows(path: Path) -> Iterator[dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}: line {number}: not JSON: {exc.msg}") from exc
                if not isinstance(row, dict):
                    raise ConfigError(f"{path}: line {number}: not a JSON object")
                yield row
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc


def parquet_rows(path: Path, columns: list[str]) -> Iterator[dict]:
    try:
        table = pq.ParquetFile(path)
        names = set(table.schema_arrow.names)
        for batch in table.iter_batches(
            batch_size=4096, columns=[c for c in columns if c in names]
        ):
            yield from batch.to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{path}: cannot read as parquet: {exc}") from exc


def table_rows(bench: Benchmark) -> Iterator[dict]:
    """The benchmark's rows (only the columns it reads); a column missing from every row is a
    ConfigError naming the file and the field."""
    path = Path(bench.path)
    roles = {"question": bench.question, "answer": bench.answer, "id": bench.id}
    wanted = [column for column in roles.values() if column]
    columns = [*wanted, *([] if bench.id else ID_COLUMNS), bench.image]
    rows = jsonl_rows(path) if path.suffix.lower() == ".jsonl" else parquet_rows(path, columns)
    seen: set[str] = set()
    for row in rows:
        seen.update(c for c in wanted if c in row)
        yield row
    for role, column in roles.items():
        if column and column not in seen:
            raise ConfigError(
                f"{path}: field '{role}': no column '{column}' in the benchmark file "
                f"(set `{role}:` on benchmark {bench.name} to the column's name)"
            )


def answer_texts(value: object) -> list[str]:
    """An item's answers: a string, a list of strings (DocVQA's), or nothing."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def item_id(bench: Benchmark, row: dict, number: int) -> str:
    for column in [bench.id] if bench.id else ID_COLUMNS:
        if row.get(column) not in (None, ""):
            return str(row[column])
    return str(number)
