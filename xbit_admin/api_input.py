"""How the API reads its input, so that it takes exactly what its OpenAPI schema says (found by
``make fuzz``: DRF is lenient in ways the schema does not describe).

* ``InputSerializer`` — a JSON request body: each field's JSON type must be the documented one. DRF
  would turn ``0.1`` into ``"0.1"`` for a string field (a float's digits, for a money amount), ``"20"``
  into ``20`` and ``"true"`` into ``True``.
* ``QueryParamsSerializer`` — query parameters, read through a serializer like bodies so that a bad value
  is a 400 VALIDATION_ERROR, never ignored or a 500, and the schema documents each parameter
  (``extend_schema(parameters=[TheSerializer])``). A parameter is given at most once, and ``?until=`` is
  an empty value, not an absent one (DRF's HTML-form reading would drop it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

# (field class, the JSON types it takes, how to say it); the first matching class decides.
_JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int, float), "an integer"),
    (serializers.DecimalField, (str,), "a decimal string"),
    (serializers.CharField, (str,), "a string"),
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
            return f"Must be {expected}." if wrong else None
    return None


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
