"""The TFX pipeline for Fashion-MNIST: ingestion, one pipeline definition, runners."""
