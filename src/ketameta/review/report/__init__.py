"""The reproducible report (``ketameta report``)."""
