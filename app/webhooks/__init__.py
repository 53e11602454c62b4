"""Outbound webhooks: endpoints admins register, deliveries that follow the committed changes."""
