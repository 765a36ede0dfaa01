"""The hard copy of a closed escalation (DESIGN.md rule 8, seed 003: "a hard copy of all
escalations, archived for future reference"): its record (``record``), the printable PDF
(``pdf``) and the directory that holds them with every attachment and their checksums
(``directory``). The ``archive`` job (``jobs/archive.py``) puts them together."""
