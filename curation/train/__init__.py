"""Fine-tune a multi-image VLM on curated datasets: mixture, collate, model, loop, launch."""
