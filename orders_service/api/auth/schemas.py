from marshmallow import Schema, ValidationError, fields, validate

from orders_service.api.fields import Email, Text
from orders_service.auth.passwords import MAX_LENGTH, MIN_LENGTH, password_problem


def _acceptable_password(password: str) -> None:
    problem = password_problem(password)
    if problem:
        raise ValidationError(problem)


class RegisterSchema(Schema):
    email = Email(required=True, validate=validate.Length(max=254))
    password = Text(required=True, validate=_acceptable_password,
                    metadata={"minLength": MIN_LENGTH, "maxLength": MAX_LENGTH})
    name = Text(required=True, validate=validate.Length(min=1, max=200))


class LoginSchema(Schema):
    email = Text(required=True, validate=validate.Length(min=1, max=254))
    password = Text(required=True, validate=validate.Length(min=1, max=MAX_LENGTH))


class TokensSchema(Schema):
    customerId = fields.UUID()
    accessToken = fields.String()
    refreshToken = fields.String()


class AccessTokenSchema(Schema):
    accessToken = fields.String()
