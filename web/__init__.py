"""What the gateway's web pages share: rendering under a strict CSP, sessions, CSRF-checked forms."""
