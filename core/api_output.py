"""Output serializers whose fields are built once per class.

DRF builds a serializer's fields for every instance it serializes (``ModelSerializer.get_fields``
introspects the model and deep-copies each field): for an order endpoint's one-object answer that was
a fifth of the view's CPU. ``BuiltOnce`` builds them on the first use and reuses them. Only for
serializers whose fields do not depend on the context (request, view) or on the instance."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from rest_framework.fields import Field
from rest_framework.relations import PKOnlyObject


class BuiltOnce:
    """Mix into a ``Serializer`` (before it in the bases): ``to_representation`` runs over fields built
    once for the class, bound to a template instance without context."""

    _built_fields: list[Field]

    def to_representation(self, instance: Any) -> dict[str, Any]:
        cls = type(self)
        fields = cls.__dict__.get("_built_fields")
        if fields is None:
            template = cls()
            fields = [field for field in template.fields.values() if not field.write_only]  # type: ignore[attr-defined]
            cls._built_fields = fields
        out: dict[str, Any] = OrderedDict()
        for field in fields:
            attribute = field.get_attribute(instance)
            check = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            out[field.field_name] = None if check is None else field.to_representation(attribute)
        return out
