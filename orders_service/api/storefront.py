"""The reference storefront: plain HTML, CSS and JavaScript (`orders_service/storefront/`) served at /shop/,
no build step.

The page calls the public API like any other client; nothing here knows about orders.
"""
from pathlib import Path

from flask import Blueprint, send_from_directory

FOLDER = Path(__file__).resolve().parent.parent / "storefront" / "static"

blp = Blueprint("storefront", __name__, url_prefix="/shop")


@blp.get("/")
def index():
    return send_from_directory(FOLDER, "index.html", max_age=0)


@blp.get("/<path:filename>")
def asset(filename: str):
    return send_from_directory(FOLDER, filename, max_age=0)  # a reference page: edits show on reload
