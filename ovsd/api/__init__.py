"""The HTTPS API: Klein app, versioning, errors, OAuth 2, views."""
