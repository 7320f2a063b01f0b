"""Customers: registration, login, lookup."""
from __future__ import annotations

import uuid

from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orders_service.auth.models import Customer, Role
from orders_service.auth.passwords import Passwords
from orders_service.errors import Conflict, Unauthorized


def register_customer(session: Session, passwords: Passwords, email: str, password: str, name: str,
                      role: str = Role.CUSTOMER) -> Customer:
    """Create a customer; 409 when the email is taken."""
    customer = Customer(email=email.strip().lower(), name=name.strip(), password_hash=passwords.hash(password),
                        role=role)
    try:
        with session.begin():
            session.add(customer)
    except IntegrityError:
        raise Conflict("A customer with this email already exists") from None
    return customer


def authenticate(session: Session, passwords: Passwords, email: str, password: str) -> Customer:
    """The customer with these credentials; 401 otherwise."""
    with session.begin():
        customer = session.scalar(select(Customer).where(Customer.email == email.strip().lower()))
    try:
        passwords.verify(customer.password_hash if customer else passwords.dummy_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        customer = None
    if customer is None:
        raise Unauthorized("Invalid email or password")
    return customer


def ensure_customer(session: Session, passwords: Passwords, email: str, name: str, role: str = Role.CUSTOMER,
                    password: str | None = None) -> Customer:
    """Find a customer by email or create it (demo data and the token CLI)."""
    with session.begin():
        customer = session.scalar(select(Customer).where(Customer.email == email.lower()))
        if customer is None:
            customer = Customer(
                email=email.lower(), name=name, role=role,
                password_hash=passwords.hash(password or uuid.uuid4().hex),
            )
            session.add(customer)
    return customer


def customer_for_token(session: Session, customer_id: uuid.UUID) -> Customer:
    """The customer a refresh token names, as the database has it now; 401 when it is gone."""
    with session.begin():
        customer = session.get(Customer, customer_id)
    if customer is None:
        raise Unauthorized("Unknown token subject")
    return customer
