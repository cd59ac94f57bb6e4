"""curation: synthetic multi-page instruction data for text-rich multi-image VLMs."""

__version__ = "0.1.0"
