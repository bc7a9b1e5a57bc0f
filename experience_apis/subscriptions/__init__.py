"""Events out to subscribers: Standard Webhooks subscriptions, a durable dispatcher, the delivery log."""
