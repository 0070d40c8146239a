"""Which models the explorer knows and how they load (see ``registry`` and ``loading``)."""
