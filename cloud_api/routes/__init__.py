"""HTTP routes of the API, one module per resource family; ``deps`` holds what they share.

Every router is module-level and stateless: the ``ApiContext`` of the app serving a request
is read from ``request.app.state.ctx`` (see ``deps.get_ctx``).
"""
