"""The gateway's OAuth2 authorization server (client credentials, RFC 9068 JWTs) and token validation."""

from gateway.oauth.clients import ClientRegistry, OAuthClient
from gateway.oauth.component import OAuth
from gateway.oauth.keys import SigningKeys
from gateway.oauth.server import OAuthServer
from gateway.oauth.validator import TokenValidator

__all__ = ["ClientRegistry", "OAuth", "OAuthClient", "OAuthServer", "SigningKeys", "TokenValidator"]
