"""orders-service: orders and payments for a shop. The web app is built by `orders_service.app.create_app`."""
