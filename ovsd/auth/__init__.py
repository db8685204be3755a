"""Identity and access: passwords, tokens, clients, OAuth 2 grants, role checks, rate limiting."""
