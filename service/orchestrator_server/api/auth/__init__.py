"""Authentication of calls: API keys, bearer JWTs, client certificates and a trusted
proxy's forwarded identity (see `authenticator.py`)."""
