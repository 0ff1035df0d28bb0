"""Read a model's catalog ``params`` into marshmallow fields: the other fields a request may send it."""

from marshmallow import fields
from marshmallow import validate

from ..errors import ConfigError


def param_field(name, spec, where):
    """Return the marshmallow field for one catalog parameter spec."""
    if isinstance(spec, list) and spec and all(isinstance(item, str) for item in spec):
        return fields.String(required=False, validate=validate.OneOf(spec))
    if spec == "string":
        return fields.String(validate=validate.Length(min=1, max=256))
    if isinstance(spec, dict) and spec.get("type") in ("integer", "number"):
        bounds = {bound: spec.get(bound) for bound in ("min", "max")}
        for bound, value in bounds.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{where}.params.{name}.{bound}: expected a number")
        limits = validate.Range(min=bounds["min"], max=bounds["max"])
        if spec["type"] == "integer":
            return fields.Integer(strict=True, validate=limits)
        return fields.Float(allow_nan=False, validate=limits)
    if isinstance(spec, dict) and spec.get("type") == "boolean":
        return fields.Boolean(truthy={True}, falsy={False})
    raise ConfigError(f"{where}.params.{name}: expected a list of values, \"string\" or a {{\"type\": ...}} object")
