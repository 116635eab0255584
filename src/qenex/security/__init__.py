"""Identity and access: API keys, OAuth2 client credentials with signed JWTs, roles and
scopes, human operators (argon2id password + TOTP, lockout, sessions) and rate limiting.

The library is framework-agnostic (plain functions over psycopg and Redis);
`qenex.security.fastapi_deps` adapts it to FastAPI. Submodules are imported explicitly
(``from qenex.security import apikeys``) so that importing one does not pull in the rest.
"""
