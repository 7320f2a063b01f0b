"""Outbound webhooks: order events for other systems (a warehouse, an ERP, a CRM).

`events.py` records an event in the transaction of the change it reports (`orders/actions.py` is its one
caller); `sequencer.py` numbers committed events in commit order and fans them out to the endpoints
that subscribe; `engine.py` runs the senders in each worker process, `sending.py` claims, sends and
records deliveries, `sender.py` is the HTTP connection and `urls.py` the address checks, `signing.py`
the Standard Webhooks signatures. `endpoints.py` and `deliveries.py` are the operators' use cases (the
admin routes, the feed, retention). No Flask here: the routes are `api/admin/webhooks.py`.
"""
