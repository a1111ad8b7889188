"""``PasswordAuth``: httpx authentication against the API's ``POST /token``.

Fetches a token on first use. When the API answers 401 (access tokens live 15 minutes) it
renews it with the refresh token (``POST /token/refresh``, which rotates it), and logs in
with the password only when that is refused, so a long-lived client (the demo, the tests'
``Cloud`` helper) keeps working without a new login every quarter of an hour.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx


class PasswordAuth(httpx.Auth):
    requires_response_body = True

    def __init__(self, username: str, password: str, token_path: str = "/token") -> None:
        self.username = username
        self._password = password
        self._token_path = token_path
        self._token: str | None = None
        self._refresh: str | None = None

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        url = request.url.copy_with(path=self._token_path, query=None)
        return httpx.Request("POST", url, data={"username": self.username,
                                                "password": self._password})

    def _refresh_request(self, request: httpx.Request, refresh: str) -> httpx.Request:
        url = request.url.copy_with(path=f"{self._token_path}/refresh", query=None)
        return httpx.Request("POST", url, data={"refresh_token": refresh})

    def _keep(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise httpx.HTTPStatusError(f"login as {self.username} refused: "
                                        f"{response.status_code} {response.text[:200]}",
                                        request=response.request, response=response)
        body = response.json()
        self._token = str(body["access_token"])
        self._refresh = body.get("refresh_token")

    def auth_flow(self, request: httpx.Request
                  ) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None:
            self._keep((yield self._token_request(request)))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code != 401:
            return
        renewed = None
        if self._refresh is not None:
            renewed = yield self._refresh_request(request, self._refresh)
        if renewed is None or renewed.status_code != 200:
            renewed = yield self._token_request(request)  # refused or none: log in again
        self._keep(renewed)
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
