"""Routes for the shop's staff: every one needs the admin role."""
