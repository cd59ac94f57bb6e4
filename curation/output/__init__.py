"""Output: shards in the Docmatix layout, rejects, errors and the manifest."""
