"""The web dashboard: server-rendered pages of a tenant's audits and their leakage reports."""
