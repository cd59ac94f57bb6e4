"""curation: synthetic multi-page instruction data for text-rich multi-image VLMs."""

import os
import sys

__version__ = "0.1.0"

# PyMuPDF 2 imports its optional layout analyzer (the pymupdf-layout package it depends on) on
# `import pymupdf`, which loads an ONNX model: 0.4 s and 56 MiB in every process that reads a
# PDF, every Ray worker included. curation never calls `Page.get_layout`, so that import is
# declined here (pymupdf then runs without it, as when the package is absent), unless the
# process imported it already.
sys.modules.setdefault("pymupdf.layout", None)

# onnxruntime (imported by pymupdf's helpers and by RapidOCR) sends usage telemetry to Microsoft
# from 1.29 on Linux and, when imported, writes a device id under
# ~/.cache/Microsoft/DeveloperTools: outside the output folder, before a run has claimed it (even
# a run that is then refused). Off in every process that imports curation, Ray workers
# included, unless the environment says otherwise; it must be set before onnxruntime loads.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
