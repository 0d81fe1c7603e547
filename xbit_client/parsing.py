"""Turns the API's JSON into the client's dataclasses, by the fields' annotations.

Money, prices and sizes arrive as decimal strings and become ``Decimal`` (never float); timestamps
become aware ``datetime``; nested objects and lists of them are parsed recursively. Fields the server
adds later are kept in ``extra`` so an older client still sees them."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, TypeVar, Union, cast

T = TypeVar("T")


class ParseError(ValueError):
    """The server's answer did not have the shape the client expects."""


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        # never through binary floating point: the repr is what the server meant
        return Decimal(repr(value))
    if isinstance(value, int | str):
        try:
            return Decimal(value)
        except InvalidOperation:
            raise ParseError(f"not a decimal: {value!r}") from None
    raise ParseError(f"not a decimal: {value!r}")


def to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise ParseError(f"not a timestamp: {value!r}")


def convert(annotation: Any, value: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return convert(args[0], value) if len(args) == 1 else value
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ParseError(f"expected a list, got {value!r}")
        return [convert(item, v) for v in value]
    if origin is dict or annotation is Any:
        return value
    if annotation is Decimal:
        return to_decimal(value)
    if annotation is datetime:
        return to_datetime(value)
    if annotation is bool:
        return bool(value)
    if annotation is int:
        return int(value)
    if annotation is str:
        return "" if value is None else str(value)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return parse(annotation, value)
    return value


def parse(cls: type[T], data: Any) -> T:
    """``cls`` (a dataclass with an ``extra`` dict field) from one JSON object."""
    if not isinstance(data, dict):
        raise ParseError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = _hints(cast(Any, cls))
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name, value in data.items():
        if name in names and name != "extra":
            try:
                kwargs[name] = convert(hints[name], value)
            except (ParseError, ValueError, TypeError) as exc:
                raise ParseError(f"{cls.__name__}.{name}: {exc}") from None
        else:
            extra[name] = value
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        missing = field.name not in kwargs and field.name != "extra"
        if missing and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            kwargs[field.name] = None  # absent from this server version: None rather than a crash
    if "extra" in names:
        kwargs["extra"] = extra
    return cls(**kwargs)


def parse_list(cls: type[T], data: Any) -> list[T]:
    if not isinstance(data, list):
        raise ParseError(f"expected a list of {cls.__name__}, got {type(data).__name__}")
    return [parse(cls, item) for item in data]
