"""How the API reads its input, so that it takes exactly what its OpenAPI schema says (found by
``make fuzz``: DRF is lenient in ways the schema does not describe).

* ``InputSerializer`` — a JSON request body: each field's JSON type must be the documented one. DRF
  would turn ``0.1`` into ``"0.1"`` for a string field (a float's digits, for a money amount), ``"20"``
  into ``20`` and ``"true"`` into ``True``.
* ``DecimalStringField`` — a money amount, price or size: a JSON string in plain decimal notation
  (``core.money.decimal_from_text``), bounded per field; a refusal is a 400 with the field's
  stable code (``INVALID_SIZE``, ``INVALID_PRICE``, ``INVALID_AMOUNT``, …) and ``details.reason``.
* ``StrictJSONParser`` — request bodies: at most ``MAX_REQUEST_BODY_BYTES``, nested at most
  ``MAX_JSON_DEPTH`` deep (a body nested 50,000 deep was a RecursionError, a 500), no NUL character.
* ``QueryParamsSerializer`` — query parameters, read through a serializer like bodies so that a bad value
  is a 400 VALIDATION_ERROR, never ignored or a 500, and the schema documents each parameter
  (``extend_schema(parameters=[TheSerializer])``). A parameter is given at most once, and ``?until=`` is
  an empty value, not an absent one (DRF's HTML-form reading would drop it).
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from decimal import Decimal
from typing import IO, Any

from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

from core.errors import ApplicationError, ErrorCode
from core.money import DecimalInputError, DecimalShape, decimal_from_text

# (field class, the JSON types it takes, how to say it); the first matching class decides.
_JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int, float), "an integer"),
    (serializers.DecimalField, (str,), "a decimal string"),
    (serializers.CharField, (str,), "a string"),  # DecimalStringField too: "a decimal string" below
    (serializers.ListField, (list,), "a list"),
    (serializers.DictField, (dict,), "an object"),
)


def _type_error(field: serializers.Field, value: Any) -> str | None:
    for cls, types, expected in _JSON_TYPES:
        if isinstance(field, cls):
            wrong = not isinstance(value, types) or (
                # JSON's integers include 2.0, not true; DRF's IntegerField takes both
                cls is serializers.IntegerField
                and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()))
            )
            if wrong and isinstance(field, DecimalStringField):
                return 'Must be a decimal string such as "12.5".'
            return f"Must be {expected}." if wrong else None
    return None


class DecimalStringField(serializers.CharField):
    """A number in a JSON string, plain decimal notation only, within ``shape`` (the column's scale and
    integer digits bounded so derived amounts fit their columns: ``core.money``). Refusals are
    ``ApplicationError(code)`` with ``details = {"field", "reason"}`` (a 400 whose code the client can
    switch on); the validated value is a ``Decimal``."""

    def __init__(
        self,
        *,
        shape: DecimalShape,
        code: ErrorCode = ErrorCode.VALIDATION_ERROR,
        signed: bool = False,
        allow_zero: bool = False,
        min_value: Decimal | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_length", 40)
        kwargs["trim_whitespace"] = False  # " 1" is refused, not quietly repaired
        super().__init__(**kwargs)
        self.shape, self.code, self.signed, self.allow_zero = shape, code, signed, allow_zero
        self.min_value_decimal = min_value
        sign = "-?" if signed else ""
        integer = f"[0-9]{{1,{shape.integer_digits}}}"
        fraction = f"(\\.[0-9]{{1,{shape.decimal_places}}})?" if shape.decimal_places else ""
        self.pattern = f"^{sign}{integer}{fraction}$"

    def run_validation(self, data: Any = serializers.empty) -> Any:
        # "" goes to the parser (refused with the field's code, not DRF's "may not be blank"); anything
        # else is a string first (type, length, NUL), or None where allowed
        text = data if data == "" else super().run_validation(data)
        if text is None:
            return None
        try:
            value = decimal_from_text(text, self.shape, signed=self.signed, allow_zero=self.allow_zero)
        except DecimalInputError as exc:
            raise ApplicationError(
                self.code,
                f"{self.field_name}: {exc.message}.",
                {"field": self.field_name, "reason": exc.reason},
            ) from None
        if self.min_value_decimal is not None and value < self.min_value_decimal:
            raise ApplicationError(
                self.code,
                f"{self.field_name}: must be at least {self.min_value_decimal}.",
                {"field": self.field_name, "reason": "too_small"},
            )
        return value

    def to_representation(self, value: Any) -> str:
        return format(value, "f") if isinstance(value, Decimal) else str(value)


def _decimal_string_schema(field: DecimalStringField) -> dict[str, Any]:
    return {"type": "string", "pattern": field.pattern, "maxLength": field.max_length, "example": "12.5"}


try:  # document the pattern per field (drf-spectacular calls this for every DecimalStringField)
    from drf_spectacular.extensions import OpenApiSerializerFieldExtension

    class DecimalStringFieldExtension(OpenApiSerializerFieldExtension):  # type: ignore[misc]
        target_class = DecimalStringField
        match_subclasses = True

        def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
            schema = _decimal_string_schema(self.target)
            if self.target.allow_null:
                schema["nullable"] = True
            return schema
except ImportError:  # pragma: no cover - drf-spectacular is a dependency
    pass


def _too_deep(data: Any, limit: int) -> bool:
    """True when ``data`` nests containers more than ``limit`` deep, or holds a NUL character in a key
    or a string (iterative: no recursion of our own)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > limit:
                return True
            for key, item in value.items():
                if "\x00" in key:
                    raise ParseError("JSON strings must not contain the NUL character.")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > limit:
                return True
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and "\x00" in value:
            raise ParseError("JSON strings must not contain the NUL character.")
    return False


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with the limits a public endpoint needs: the body's size
    (``MAX_REQUEST_BODY_BYTES``, 413 REQUEST_TOO_LARGE; the ASGI server's own guard refuses larger
    bodies before they are read, ``core.request_guard``), its nesting (``MAX_JSON_DEPTH``: the
    C parser recurses, 50,000 levels were a RecursionError) and NUL characters (PostgreSQL refuses them
    in text and jsonb)."""

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = int(settings.MAX_REQUEST_BODY_BYTES)
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise ApplicationError(
                ErrorCode.REQUEST_TOO_LARGE,
                f"The request body is larger than {limit} bytes.",
                {"max_bytes": limit},
            )
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(raw, encoding)
            # DRF's json: NaN / Infinity refused (STRICT_JSON)
            data = json.loads(text) if self.strict else json.loads(text, parse_constant=None)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {settings.MAX_JSON_DEPTH} levels.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if _too_deep(data, int(settings.MAX_JSON_DEPTH)):
            raise ParseError(f"JSON nested deeper than {settings.MAX_JSON_DEPTH} levels.")
        return data


class InputSerializer(serializers.Serializer):
    """A request body's serializer: values of the wrong JSON type are refused before DRF coerces them
    (form bodies, whose values are all strings, are read as DRF does)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping) and not hasattr(data, "getlist"):
            errors = {}
            for name, field in self.fields.items():
                value = data.get(name)
                if field.read_only or value is None:
                    continue  # absent or null: the field's own required / allow_null rules answer
                message = _type_error(field, value)
                if message:
                    errors[name] = [message]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class QueryParamsSerializer(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "getlist"):
            names: list[str] = list(self.fields.keys())
            repeated = {name: ["Give this parameter once."] for name in names if len(data.getlist(name)) > 1}
            if repeated:
                raise serializers.ValidationError(repeated)
            data = {name: data.get(name) for name in data}  # plain values: "" stays a value
        return super().to_internal_value(data)


def query_params(serializer_class: type[QueryParamsSerializer], request: Any) -> dict[str, Any]:
    """The validated query parameters of ``request`` (raises ValidationError → 400)."""
    params = serializer_class(data=request.query_params)
    params.is_valid(raise_exception=True)
    return dict(params.validated_data)
