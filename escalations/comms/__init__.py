"""The communication plan: business time (``calendar``) and the duties a plan gives
(``duties``). Pure: no I/O, times in and out are aware UTC datetimes."""
