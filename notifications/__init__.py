"""The outbox and the channels (email, SMS) that deliver it."""
