"""cxrlt-polyloss: a separately installed cxrlt plugin that adds the ``poly1`` loss."""
