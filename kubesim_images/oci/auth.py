"""Registry authorisation: challenges, Basic credentials, and Bearer tokens cached per scope.

A registry says how it wants to be asked in its 401's `WWW-Authenticate` header (RFC 7235:
`Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`). Basic sends the
credential with every request; Bearer trades it (or nothing, for anonymous pulls) at the realm
for a token that is cached per (realm, service, scope) until it expires, as containerd's
authorizer does, so a pull's many blob requests cost one token request. Expiry is read on the
event loop's clock. Credentials and tokens never reach logs or error texts.
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass

import aiohttp

from kubesim_images.keyring import Credential

_DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, the token spec's default for a missing expires_in
_EXPIRY_MARGIN = 5.0  # renew a little early: a token must not expire in flight
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


class AuthError(Exception):
    """The token endpoint refused us or answered nonsense; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in one `WWW-Authenticate` value (schemes may be comma-separated)."""
    out: list[Challenge] = []
    rest = header.strip()
    while rest:
        scheme_match = re.match(r"([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)", rest)
        if scheme_match is None:
            break
        scheme = scheme_match.group(1).lower()
        rest = rest[scheme_match.end() :]
        params: dict[str, str] = {}
        while True:
            param = _PARAM_RE.match(rest)
            if param is None or not param.group(0).strip():
                break
            quoted, bare = param.group(2), param.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
            params[param.group(1).lower()] = value
            rest = rest[param.end() :]
        out.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return out


def basic_header(credential: Credential) -> str:
    raw = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Authorizer:
    """The `Authorization` header per host and repository, learnt from challenges."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._challenges: dict[str, Challenge] = {}  # host -> last challenge seen
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._fetching: dict[tuple[str, str, str], asyncio.Lock] = {}

    def learn(self, host: str, header: str) -> bool:
        """Remember a 401's challenge; False when it offers no scheme we speak."""
        for challenge in parse_challenges(header):
            if challenge.scheme == "bearer" and "realm" in challenge.params:
                self._challenges[host] = challenge
                return True
            if challenge.scheme == "basic":
                self._challenges[host] = challenge
                return True
        return False

    def knows(self, host: str) -> bool:
        return host in self._challenges

    def forget_token(self, host: str, repository: str) -> None:
        challenge = self._challenges.get(host)
        if challenge is not None and challenge.scheme == "bearer":
            self._tokens.pop(self._token_key(challenge, repository), None)

    async def header(self, host: str, repository: str, credential: Credential | None) -> str | None:
        challenge = self._challenges.get(host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return basic_header(credential) if credential is not None else None
        key = self._token_key(challenge, repository)
        loop = asyncio.get_running_loop()
        lock = self._fetching.setdefault(key, asyncio.Lock())
        async with lock:  # many blob requests at once ask the realm once
            cached = self._tokens.get(key)
            if cached is not None and cached[1] > loop.time():
                return f"Bearer {cached[0]}"
            token, lifetime = await self._fetch_token(challenge, key[2], credential)
            self._tokens[key] = (token, loop.time() + max(0.0, lifetime - _EXPIRY_MARGIN))
        return f"Bearer {token}"

    @staticmethod
    def _token_key(challenge: Challenge, repository: str) -> tuple[str, str, str]:
        scope = f"repository:{repository}:pull"
        return challenge.params["realm"], challenge.params.get("service", ""), scope

    async def _fetch_token(
        self, challenge: Challenge, scope: str, credential: Credential | None
    ) -> tuple[str, float]:
        query = {"scope": scope}
        if service := challenge.params.get("service"):
            query["service"] = service
        headers = {}
        if credential is not None and (credential.username or credential.password):
            headers["Authorization"] = basic_header(credential)
        realm = challenge.params["realm"]
        try:
            async with self._session.get(realm, params=query, headers=headers) as response:
                if response.status in {401, 403}:
                    raise AuthError(f"failed to fetch anonymous token: {response.status}")
                if response.status != 200:
                    raise AuthError(
                        f"failed to fetch token: unexpected status from GET request to "
                        f"{realm}: {response.status}"
                    )
                doc = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AuthError(f"failed to fetch token from {realm}: {type(exc).__name__}") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(f"the token endpoint {realm} answered without a token")
        expires = doc.get("expires_in")
        lifetime = float(expires) if isinstance(expires, int | float) and expires > 0 else None
        return token, lifetime or _DEFAULT_TOKEN_LIFETIME
