"""Everything that exists only while localstripe, the Stripe emulator, stands in for Stripe (development and
tests, `STRIPE_EMULATOR`): its gateway (`gateway.py`), the card flow its Stripe.js forces on the browser
(`checkout.py`, served by `api/emulator.py`), and a launcher that runs it (`server.py`). The composition
root (`runtime.py`) picks this gateway by configuration; production code never imports this package.
"""
