"""Twilio voice: webhooks, TwiML, signature checks and the offline call simulator."""
