"""Loader protocol and registry: a loader turns one source row into PreferencePairs or a DataError."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from omni_rl.data.paths import resolve_media
from omni_rl.data.schema import TASKS, DataError, PreferencePair

REGISTRY: dict[str, type[Loader]] = {}


SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")


class FileError(Exception):
    """The file as a whole cannot be read (missing, a folder, wrong type, not valid json/parquet).

    Its message is one line naming the file and what to do; CLIs print it and exit 2.
    """

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(f"{path}: {message}")


def check_file(path: Path, allow_dir: bool = False) -> None:
    """Fail early, naming the file, when it is missing, a folder (unless allowed) or of an unknown type."""
    if not path.exists():
        raise FileError(path, "file not found; check the path (data.path= / path=)")
    if path.is_dir():
        if allow_dir:
            return
        raise FileError(path, f"is a folder; pass one {'/'.join(SUFFIXES)} file inside it")
    if path.suffix.lower() not in SUFFIXES:
        raise FileError(path, f"unsupported file type {path.suffix or '(none)'!r}; use {', '.join(SUFFIXES)}")


class LoaderOptionError(ValueError):
    """A loader option the loader does not know, or a value it does not accept (a user typo)."""


@dataclass
class Reject:
    """A skipped row: where it came from and why, so nothing is dropped silently."""

    source: str
    file: str
    row: str | int | None
    field: str
    reason: str
    raw: dict[str, Any] | None = None

    def to_json(self, max_raw_chars: int = 2000) -> str:
        """One jsonl line; the raw row is truncated so a rejects file stays readable."""
        raw = json.dumps(self.raw, ensure_ascii=False, default=str) if self.raw is not None else None
        if raw is not None and len(raw) > max_raw_chars:
            raw = raw[:max_raw_chars] + "…"
        d = {k: getattr(self, k) for k in ("source", "file", "row", "field", "reason")}
        return json.dumps({**d, "raw": raw}, ensure_ascii=False)


@dataclass
class LoadContext:
    """Per-file state shared by a loader's rows: where media live and where inline bytes go."""

    source: str
    path: Path
    media_root: Path
    cache_dir: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def media(self, row: str | int | None, fld: str, value: Any) -> list[str]:
        """Resolve a media value against media_root (rejects escaping paths)."""
        return resolve_media(row, fld, value, self.media_root, self.cache_dir)


def register(cls: type[Loader]) -> type[Loader]:
    """Class decorator: make a loader selectable by its `name` from configs and the CLI."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"loader name {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def get_loader(name: str) -> type[Loader]:
    """Look up a loader class by name with a helpful error listing the known ones."""
    # No import of the package here: importing this module already ran omni_rl/data/loaders/__init__.py,
    # which imports (and so registers) every loader module.
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown loader {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def read_records(path: Path, batch_size: int = 1024, lenient: bool = False) -> Iterator[Any]:
    """Stream rows from .jsonl/.json/.parquet; a json file may be a list or {"data"|"rows": [...]}.

    A jsonl line that is not valid JSON raises DataError, or with lenient=True is yielded as a
    DataError value so the caller can reject that one line and carry on.
    """
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        err = DataError(f"line {lineno}", "<line>", f"{path.name}: invalid json ({e})")
                        if not lenient:
                            raise err from e
                        yield err
    elif suffix == ".json":
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict):
            data = next((data[k] for k in ("data", "rows", "items") if isinstance(data.get(k), list)), None)
        if not isinstance(data, list):
            raise FileError(
                path, 'expected a json list of rows (or {"data": [...]}); is this the benchmark file?'
            )
        yield from data
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()
    else:
        raise FileError(path, f"unsupported file type {suffix!r}; use {', '.join(SUFFIXES)}")


def need(row: dict[str, Any], key: str, row_id: str | int | None) -> Any:
    """Fetch a required field or raise DataError naming it."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(row_id, key, "missing or empty")
    return value


def text_field(row: dict[str, Any], key: str, row_id: str | int | None, required: bool = True) -> str:
    """A text field; required ones must be non-empty strings."""
    value = need(row, key, row_id) if required else row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(row_id, key, f"expected text, got {type(value).__name__}")
    return value


def check_task(task: str, row_id: str | int | None, fld: str = "task") -> str:
    """Normalise a task name (case-insensitive) or raise naming the field."""
    t = str(task).strip().lower()
    if t not in TASKS:
        raise DataError(row_id, fld, f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return t


class Loader:
    """Base loader: subclasses set `name` and implement `convert`; `finish` checks whole-file invariants."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    accepts_dir: ClassVar[bool] = False  # True: `path` may be a benchmark folder the loader walks
    # Options this loader reads (name -> what it does); anything else is a typo and an error.
    OPTIONS: ClassVar[dict[str, str]] = {}
    COMMON_OPTIONS: ClassVar[dict[str, str]] = {"source_name": "name written as the pairs' `source`"}
    # Options whose value must be one of a fixed set (checked before any row is read).
    OPTION_CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        self.options = ctx.options
        self.rows_read = 0  # every row of the file read so far, rejected ones included (iter_records counts)
        self.check_options(ctx.options)

    @classmethod
    def valid_options(cls) -> dict[str, str]:
        """Every option this loader understands, with what it does."""
        return {**cls.COMMON_OPTIONS, **cls.OPTIONS}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Unknown option names are an error listing the valid ones (a typo must not be ignored)."""
        valid = cls.valid_options()
        unknown = sorted(set(options) - set(valid))
        if unknown:
            listed = "; ".join(f"{k}: {v}" for k, v in valid.items())
            raise LoaderOptionError(
                f"loader {cls.name!r}: unknown option(s) {', '.join(map(repr, unknown))}; valid options: {listed}"
            )
        for key, choices in cls.OPTION_CHOICES.items():
            if key in options and str(options[key]) not in choices:
                raise LoaderOptionError(
                    f"loader {cls.name!r}: {key}={options[key]!r}; expected one of {', '.join(choices)}"
                )

    def option_choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """An option restricted to a fixed set of values; anything else names the valid ones."""
        value = str(self.options.get(key, default))
        if value not in choices:
            raise LoaderOptionError(
                f"loader {self.name!r}: {key}={value!r}; expected one of {', '.join(choices)}"
            )
        return value

    def read(self) -> Iterator[dict[str, Any] | DataError]:
        """Raw rows of the file (a bad jsonl line comes through as a DataError value)."""
        return read_records(self.ctx.path, lenient=True)

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """One source row -> zero or more pairs; raise DataError for a bad row."""
        raise NotImplementedError

    def finish(self) -> None:
        """Called after the last row (never when a caller stops early); raise DataError for a file-level fact."""

    def facts(self) -> dict[str, Any]:
        """File-level facts for reports (e.g. subset sizes and whether a whole-file check ran)."""
        return {"rows": self.rows_read}

    @classmethod
    def default_media_root(cls, path: Path) -> Path:
        """Where relative media paths resolve when the user names no media_root: the file's folder."""
        return path if path.is_dir() else path.parent

    def knows_source_order(self, pair: PreferencePair) -> bool:
        """Whether the pair records which response the source showed first (needed by order=source)."""
        return "source_first_is_chosen" in pair.meta

    def row_id(self, row: dict[str, Any], index: int, key: str = "id") -> str:
        """The row's own id, or a stable `<file stem>-<index>` when the source has none."""
        value = row.get(key)
        return str(value) if value not in (None, "") else f"{self.ctx.path.stem}-{index}"
