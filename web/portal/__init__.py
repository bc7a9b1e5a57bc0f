"""The developer portal: sign-up, applications and their credentials, plans, usage — served by the gateway."""
