"""How the web process runs: the WSGI entry point gunicorn loads (`wsgi.py`), the worker class that spreads
kept-alive connections over the processes (`worker.py`), and the run gate (`gate.py`).

Nothing of the domain imports this package: the composition root hands the parts that wait (the payment
gateway, the password hasher) the gate's `outside_gate` as their "step out while waiting" context.
"""
