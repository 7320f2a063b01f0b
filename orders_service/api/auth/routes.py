
"""Accounts and tokens: register, sign in, refresh."""
from orders_service.api.auth.schemas import AccessTokenSchema, LoginSchema, RegisterSchema, TokensSchema
from orders_service.api.blueprint import Blueprint
from orders_service.api.context import db_session, passwords
from orders_service.api.rate_limits import AUTH, counting_failed_logins, limited
from orders_service.api.security import authenticated, current_actor, mint_access_token, mint_tokens
from orders_service.auth import service

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Accounts and tokens")


@blp.route("/register", methods=["POST"])
@limited(AUTH)
@blp.arguments(RegisterSchema)
@blp.response(201, TokensSchema)
@blp.alt_response(409, description="The email is taken")
@blp.alt_response(429, description="Too many attempts from this address (AUTH_RATE_LIMIT); see Retry-After")
def register(body):
    customer = service.register_customer(db_session(), passwords(), **body)
    return {"customerId": customer.id, **mint_tokens(customer.id, customer.role)}


@blp.route("/login", methods=["POST"])
@limited(AUTH)
@blp.arguments(LoginSchema)
@blp.response(200, TokensSchema)
@blp.alt_response(401, description="Wrong credentials")
@blp.alt_response(429, description="Too many attempts from this address, or wrong passwords for this account; "
                                   "see Retry-After")
def login(body):
    with counting_failed_logins(body["email"]):
        customer = service.authenticate(db_session(), passwords(), body["email"], body["password"])
    return {"customerId": customer.id, **mint_tokens(customer.id, customer.role)}


@blp.route("/refresh", methods=["POST"])
@authenticated(refresh=True)
@blp.response(200, AccessTokenSchema)
def refresh():
    # A refresh token lives 30 days: the customer is read again, so a deleted one is refused and a
    # changed role takes effect.
    customer = service.customer_for_token(db_session(), current_actor().customer_id)
    return {"accessToken": mint_access_token(customer.id, customer.role)}
