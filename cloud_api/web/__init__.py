"""Clinicians' web pages: HTML shells, one vanilla JS file, SVG charts; no build step.

The pages carry no patient data: the script calls the API with the bearer token the login
page keeps in ``sessionStorage`` (no cookie, so no cross-site request can act in the user's
name). Text is French or English (``i18n``), chosen from ``Accept-Language`` and a toggle.
"""
