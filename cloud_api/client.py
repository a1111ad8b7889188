"""``PasswordAuth``: httpx authentication against the API's ``POST /token``.

Fetches a token on first use and again when the API answers 401 (tokens live 15 minutes),
so a long-lived client (the demo, the tests' ``Cloud`` helper) keeps working.
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

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        url = request.url.copy_with(path=self._token_path, query=None)
        return httpx.Request("POST", url, data={"username": self.username,
                                                "password": self._password})

    def _keep(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise httpx.HTTPStatusError(f"login as {self.username} refused: "
                                        f"{response.status_code} {response.text[:200]}",
                                        request=response.request, response=response)
        self._token = str(response.json()["access_token"])

    def auth_flow(self, request: httpx.Request
                  ) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None:
            self._keep((yield self._token_request(request)))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            self._keep((yield self._token_request(request)))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request
