from flask import Blueprint

blp = Blueprint("ops", __name__)


@blp.get("/healthz")
def healthz():
    return {"status": "ok"}
