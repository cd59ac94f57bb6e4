"""`python -m curation.train CONFIG [options]`: the `curation train` command, as a module that
`accelerate launch --config_file train/fsdp.yaml -m curation.train ...` can start on every GPU."""

import sys

from curation.cli import app

app(["train", *sys.argv[1:]], prog_name="curation")
