"""Catalog server, client, filter language and status page (spec sections 2 and 3)."""
