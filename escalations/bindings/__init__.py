"""Helpdesk bindings: per helpdesk, everything that knows what its field values, tags, title
conventions, state names and create payloads mean (``base`` says what a binding is). The
domain and the jobs speak only to a binding; vendor names live here and in ``mappings/``."""
