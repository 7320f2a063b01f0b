"""Authentication: JWTs (flask-jwt-extended) and the decorator that declares a route needs one.

A token is accepted when it is HS256-signed with JWT_SECRET_KEY, its `sub` is a customer UUID and
its `role` claim is `customer` or `admin`; any other token is a 401 (docs/api.md, "Authentication").
"""
from __future__ import annotations

import uuid
from datetime import timedelta
from functools import wraps

from flask import Flask
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    verify_jwt_in_request,
)

from orders_service.api.blueprint import document
from orders_service.api.errors import error_response
from orders_service.auth.actor import Actor
from orders_service.auth.models import Role
from orders_service.errors import Forbidden, Unauthorized

jwt = JWTManager()


def init_jwt(app: Flask, secret: str, access_minutes: int) -> None:
    app.config.update(
        JWT_SECRET_KEY=secret,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=access_minutes),
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(days=30),
        JWT_TOKEN_LOCATION=["headers"],
        # Tokens minted by another identity provider carry no `type`/`jti`/`fresh` claims.
        JWT_VERIFY_SUB=False,
    )
    jwt.init_app(app)

    def unauthorized(message):
        return error_response(401, message)

    jwt.unauthorized_loader(lambda reason: unauthorized("Missing or malformed Authorization header"))
    jwt.invalid_token_loader(lambda reason: unauthorized("Invalid token"))
    jwt.expired_token_loader(lambda header, payload: unauthorized("Token has expired"))
    jwt.revoked_token_loader(lambda header, payload: unauthorized("Token has been revoked"))
    jwt.needs_fresh_token_loader(lambda header, payload: unauthorized("Fresh token required"))
    jwt.user_lookup_error_loader(lambda header, payload: unauthorized("Unknown token subject"))
    jwt.token_verification_failed_loader(lambda header, payload: unauthorized("Invalid token"))


def mint_tokens(customer_id: uuid.UUID, role: str) -> dict:
    claims = {"role": role}
    return {
        "accessToken": create_access_token(identity=str(customer_id), additional_claims=claims),
        "refreshToken": create_refresh_token(identity=str(customer_id), additional_claims=claims),
    }


def mint_access_token(customer_id: uuid.UUID, role: str, expires: timedelta | None = None) -> str:
    kwargs = {} if expires is None else {"expires_delta": expires}
    return create_access_token(identity=str(customer_id), additional_claims={"role": role}, **kwargs)


def _actor_from_claims() -> Actor:
    claims = get_jwt()
    if "exp" not in claims:  # a token that never expires is not one we accept
        raise Unauthorized("Invalid token")
    try:
        customer_id = uuid.UUID(str(claims.get("sub")))
    except ValueError:
        raise Unauthorized("Invalid token") from None
    role = claims.get("role")
    if role not in Role.ALL:
        raise Unauthorized("Invalid token")
    return Actor(customer_id, role)


def current_actor() -> Actor:
    return _actor_from_claims()


def authenticated(role: str | None = None, refresh: bool = False):
    """Require a valid bearer token; with `role`, require that role (403 otherwise)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            verify_jwt_in_request(refresh=refresh)
            actor = _actor_from_claims()
            if role is not None and actor.role != role:
                raise Forbidden("This action requires the admin role")
            return view(*args, **kwargs)

        return document(wrapper, auth=role or "any")  # the OpenAPI document: its security, 401 and 403

    return decorator
