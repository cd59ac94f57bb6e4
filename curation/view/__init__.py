"""`curation view`: browse an output folder (finished, or a run in progress) offline.

`site.build_site` writes a static site (the app in `static/` plus the data as scripts, so it
opens from file://); `serve.serve` builds one into a temporary folder and serves it read-only
on a local port. The output folder itself is only read.
"""
