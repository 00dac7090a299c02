"""Renderings of a finished audit for people and CI systems: Markdown, JUnit XML, HTML.

Each takes the audit as the API returns it (`AuditRead`, with its gate) and its validated
`LeakageReport`, so the API, the CLI and the dashboard produce the same documents.
"""
