from marshmallow import Schema, fields, validate

from orders_service.fields import Text


class RegisterSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = Text(required=True, validate=validate.Length(min=8, max=128))
    name = Text(required=True, validate=validate.Length(min=1, max=200))


class LoginSchema(Schema):
    email = Text(required=True, validate=validate.Length(min=1, max=254))
    password = Text(required=True, validate=validate.Length(min=1, max=128))


class TokensSchema(Schema):
    customerId = fields.UUID()
    accessToken = fields.String()
    refreshToken = fields.String()


class AccessTokenSchema(Schema):
    accessToken = fields.String()
