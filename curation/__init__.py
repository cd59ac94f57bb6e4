"""curation: synthetic multi-page instruction data for text-rich multi-image VLMs."""

import sys

__version__ = "0.1.0"

# PyMuPDF 2 imports its optional layout analyzer (the pymupdf-layout package it depends on) on
# `import pymupdf`, which loads an ONNX model: 0.4 s and 56 MiB in every process that reads a
# PDF, every Ray worker included. curation never calls `Page.get_layout`, so that import is
# declined here (pymupdf then runs without it, as when the package is absent), unless the
# process imported it already.
sys.modules.setdefault("pymupdf.layout", None)
